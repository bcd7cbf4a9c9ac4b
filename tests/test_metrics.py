"""Each metric against an independent computation (scikit-learn)."""

import numpy as np
import pytest
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from vadedge.train.metrics import (VideoResult, average_precision, false_alarm_rate, format_report, frame_report,
                                   pr_auc_trapz, roc_auc)


@pytest.mark.parametrize("seed", range(6))
def test_curve_metrics_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 3000)
    s = np.round(rng.random(3000) * 0.7 + 0.3 * y, 2)  # rounding makes many ties
    p, r, _ = precision_recall_curve(y, s)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert pr_auc_trapz(y, s) == pytest.approx(auc(r, p), abs=1e-12)


def test_single_class_is_nan_and_far():
    assert np.isnan(roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert false_alarm_rate([0.1, 0.5, 0.7, 0.2], 0.5) == 0.5


def _videos(rng):
    vids = []
    for i, cls in enumerate(["Abuse", "Abuse", "Arson", "Normal", "Normal"]):
        t = int(rng.integers(5, 30))
        gt = np.zeros(16 * t, np.uint8)
        if cls != "Normal":
            gt[16 * 2: 16 * 4] = 1
        scores = np.clip(rng.random(t) * 0.6 + 0.4 * gt[::16], 0, 1)
        vids.append(VideoResult(f"{cls}{i:03d}_x264", cls, int(cls != "Normal"), scores, gt))
    return vids


def test_frame_report_subsets_follow_the_definitions():
    vids = _videos(np.random.default_rng(0))
    rep = frame_report(vids, far_threshold=0.5)
    all_s = np.concatenate([np.repeat(v.scores, 16) for v in vids])
    all_y = np.concatenate([v.gt for v in vids])
    assert rep["frames"] == len(all_y)
    assert rep["auc"] == pytest.approx(roc_auc_score(all_y, all_s))
    ab = [v for v in vids if v.label]
    ab_s, ab_y = np.concatenate([np.repeat(v.scores, 16) for v in ab]), np.concatenate([v.gt for v in ab])
    assert rep["auc_abnormal"] == pytest.approx(roc_auc_score(ab_y, ab_s))
    assert rep["ap_abnormal"] == pytest.approx(average_precision_score(ab_y, ab_s))
    normal_s = np.concatenate([np.repeat(v.scores, 16) for v in vids if not v.label])
    assert rep["far"] == pytest.approx(np.mean(normal_s >= 0.5))
    arson = [v for v in vids if v.cls in ("Arson", "Normal")]
    assert rep["per_class_auc"]["Arson"] == pytest.approx(
        roc_auc_score(np.concatenate([v.gt for v in arson]), np.concatenate([np.repeat(v.scores, 16) for v in arson])))
    assert set(rep["per_class_auc"]) == {"Abuse", "Arson"}
    table = format_report(rep)
    assert "PR-AUC trapezoid" in table and "AUC Arson vs normal" in table
