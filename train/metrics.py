"""Frame-level WSVAD metrics (scikit-learn computes the curves).

Names are explicit because the community uses "AP" for two different numbers:
``ap`` is sklearn's ``average_precision_score`` (VadCLIP, PEL4VAD); ``pr_auc_trapz`` is the
trapezoidal area under the PR curve, ``auc(recall, precision)``, which UR-DMU's code reports as AP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vadedge.errors import VadInputError

SNIPPET_FRAMES = 16


def _check(labels, scores) -> tuple[np.ndarray, np.ndarray] | None:
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise VadInputError(f"metrics: {labels.size} labels but {scores.size} scores")
    if labels.size == 0 or labels.min() == labels.max():
        return None  # undefined with a single class
    return labels, scores


def roc_auc(labels, scores) -> float:
    """sklearn ``roc_auc_score`` (UR-DMU's ``auc(roc_curve)``); NaN with a single class."""
    from sklearn.metrics import roc_auc_score

    checked = _check(labels, scores)
    return float("nan") if checked is None else float(roc_auc_score(*checked))


def average_precision(labels, scores) -> float:
    """Step-wise AP = Σ (R_n − R_{n−1}) P_n: sklearn ``average_precision_score`` (VadCLIP, PEL4VAD)."""
    from sklearn.metrics import average_precision_score

    checked = _check(labels, scores)
    return float("nan") if checked is None else float(average_precision_score(*checked))


def pr_auc_trapz(labels, scores) -> float:
    """Trapezoidal PR-AUC: sklearn ``auc(recall, precision)`` over ``precision_recall_curve`` (UR-DMU's "AP")."""
    from sklearn.metrics import auc, precision_recall_curve

    checked = _check(labels, scores)
    if checked is None:
        return float("nan")
    precision, recall, _ = precision_recall_curve(*checked)
    return float(auc(recall, precision))


def false_alarm_rate(normal_scores, threshold: float = 0.5) -> float:
    """Fraction of normal-video frames scored at or above ``threshold``."""
    normal_scores = np.asarray(normal_scores).ravel()
    return float(np.mean(normal_scores >= threshold)) if normal_scores.size else float("nan")


@dataclass
class VideoResult:
    """One test video: snippet scores and frame-level ground truth (len(gt) == 16 * len(scores))."""

    name: str
    cls: str
    label: int
    scores: np.ndarray  # [T] snippet scores
    gt: np.ndarray  # [16 T] frame labels

    @property
    def frame_scores(self) -> np.ndarray:
        return np.repeat(self.scores, SNIPPET_FRAMES)


def check_scores(result: VideoResult, source: str = "the model") -> None:
    """Scores must be finite: a NaN would silently change every metric (one line naming the video)."""
    bad = ~np.isfinite(np.asarray(result.scores, dtype=np.float64))
    if bad.any():
        raise VadInputError(f"video {result.name}: {int(bad.sum())} of {bad.size} snippet scores from {source} are NaN or inf "
                            f"(first at snippet {int(np.argmax(bad))}); no metrics computed")


def check_lengths(result: VideoResult) -> None:
    if len(result.gt) != SNIPPET_FRAMES * len(result.scores):
        raise VadInputError(
            f"video {result.name}: ground truth has {len(result.gt)} frames but the features give "
            f"{len(result.scores)} snippets x {SNIPPET_FRAMES} = {SNIPPET_FRAMES * len(result.scores)}"
        )


def frame_report(results: list[VideoResult], far_threshold: float = 0.5) -> dict:
    """All frame-level metrics over videos concatenated in order (the public convention)."""
    if not results:
        raise VadInputError("evaluation: no videos to score")
    for r in results:
        check_lengths(r)
        check_scores(r)
    scores = np.concatenate([r.frame_scores for r in results])
    gt = np.concatenate([r.gt for r in results]).astype(np.int64)
    abnormal = [r for r in results if r.label == 1]
    normal = [r for r in results if r.label == 0]
    a_scores = np.concatenate([r.frame_scores for r in abnormal]) if abnormal else np.zeros(0)
    a_gt = np.concatenate([r.gt for r in abnormal]) if abnormal else np.zeros(0)
    n_scores = np.concatenate([r.frame_scores for r in normal]) if normal else np.zeros(0)
    per_class = {}
    for cls in sorted({r.cls for r in abnormal}):
        members = [r for r in results if r.cls == cls or r.label == 0]
        per_class[cls] = roc_auc(np.concatenate([r.gt for r in members]), np.concatenate([r.frame_scores for r in members]))
    return {
        "videos": len(results),
        "frames": int(gt.size),
        "auc": roc_auc(gt, scores),
        "ap": average_precision(gt, scores),
        "pr_auc_trapz": pr_auc_trapz(gt, scores),
        "auc_abnormal": roc_auc(a_gt, a_scores),
        "ap_abnormal": average_precision(a_gt, a_scores),
        "pr_auc_trapz_abnormal": pr_auc_trapz(a_gt, a_scores),  # UR-DMU's AP on anomalous videos (trapezoid)
        "far": false_alarm_rate(n_scores, far_threshold),
        "far_threshold": far_threshold,
        "video_accuracy": float(np.mean([(r.scores.max() > 0.5) == bool(r.label) for r in results])),
        "per_class_auc": per_class,
    }


def format_report(report: dict) -> str:
    rows = [
        ("videos / frames", f"{report['videos']} / {report['frames']}"),
        ("AUC (ROC)", _pct(report["auc"])),
        ("AP (sklearn average precision)", _pct(report["ap"])),
        ("PR-AUC trapezoid (UR-DMU 'AP')", _pct(report["pr_auc_trapz"])),
        ("AUC_A (anomalous videos only)", _pct(report["auc_abnormal"])),
        ("AP_A (anomalous videos only)", _pct(report["ap_abnormal"])),
        ("PR-AUC trapezoid, anomalous videos only", _pct(report.get("pr_auc_trapz_abnormal", float("nan")))),
        (f"FAR @ {report['far_threshold']:g} (normal videos)", _pct(report["far"])),
        ("video accuracy (max > 0.5)", _pct(report["video_accuracy"])),
    ]
    rows += [(f"  AUC {cls} vs normal", _pct(v)) for cls, v in report["per_class_auc"].items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:6.2f}"
