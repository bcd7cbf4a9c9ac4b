"""Ground-truth builder against the real public UCF-Crime frame GT (1,109,680 frames)."""

import numpy as np
import pytest

from vadedge.train.cli import gt_main
from vadedge.train.gt import (UCF_PUBLIC_I3D_SHORT, build_gt, load_gt, read_order, read_ucf_annotations,
                              read_xd_annotations)

pytestmark = pytest.mark.shared


def _reference(ucf_dir):
    ref = load_gt(ucf_dir / "test_frame_gt.npz")
    order = read_order(ucf_dir / "test_order.txt")
    return ref, order


def _assert_equal(gt, ref, order):
    assert list(gt) == order
    assert len(gt) == 290
    assert sum(len(v) for v in gt.values()) == 1_109_680
    assert np.array_equal(np.concatenate(list(gt.values())), np.concatenate([ref[k] for k in order]))


def test_frame_counts_reproduce_public_gt_exactly(ucf_dir, tmp_path):
    ref, order = _reference(ucf_dir)
    assert gt_main(["--dataset", "ucf", "--annotation", str(ucf_dir / "UCF_Annotation.txt"),
                    "--order", str(ucf_dir / "test_order.txt"), "--out", str(tmp_path / "gt.npz")]) == 0
    _assert_equal(load_gt(tmp_path / "gt.npz"), ref, order)
    assert gt_main(["--dataset", "ucf", "--annotation", str(ucf_dir / "UCF_Annotation.txt"),
                    "--order", str(ucf_dir / "test_order.txt"), "--out", str(tmp_path / "gt.npy")]) == 0
    assert np.load(tmp_path / "gt.npy").shape == (1_109_680,)


def test_plain_convention_differs_only_on_the_short_feature_videos(ucf_dir):
    ref, order = _reference(ucf_dir)
    gt = build_gt(read_ucf_annotations(ucf_dir / "UCF_Annotation.txt"), order=order, convention="plain")
    differing = {k for k in order if len(gt[k]) != len(ref[k])}
    assert differing == UCF_PUBLIC_I3D_SHORT
    for k in differing:  # one snippet longer; the labels agree on the shared frames
        assert len(gt[k]) == len(ref[k]) + 16 and np.array_equal(gt[k][: len(ref[k])], ref[k])


def test_official_annotation_plus_feature_lengths(ucf_dir, tmp_path):
    """Temporal_Anomaly_Annotation.txt has no frame counts: lengths come from the features (T*16)."""
    ref, order = _reference(ucf_dir)
    root = tmp_path / "feats"
    root.mkdir()
    for name in order:  # stand-in feature files carrying the public features' snippet counts
        np.save(root / f"{name}__0.npy", np.zeros((len(ref[name]) // 16, 1), np.float32))
    (tmp_path / "test.list").write_text("".join(f"C:\\UCF\\test\\{n}__0.npy\n" for n in order))
    out = tmp_path / "gt.npz"
    assert gt_main(["--dataset", "ucf", "--annotation", str(ucf_dir / "Temporal_Anomaly_Annotation.txt"),
                    "--test-list", str(tmp_path / "test.list"), "--root", str(root), "--out", str(out)]) == 0
    _assert_equal(load_gt(out), ref, order)


def test_xd_annotations_and_normal_videos(tmp_path):
    ann = tmp_path / "annotations.txt"
    ann.write_text("Movie__#1_label_B1-0-0 16 32 48 50\n")
    gt = build_gt(read_xd_annotations(ann), lengths={"Movie__#1_label_B1-0-0": 4, "Other__#2_label_A": 2},
                  order=["Other__#2_label_A", "Movie__#1_label_B1-0-0"])
    assert gt["Other__#2_label_A"].tolist() == [0] * 32
    expected = np.zeros(64, np.uint8)
    expected[16:32] = 1
    expected[48:50] = 1
    assert gt["Movie__#1_label_B1-0-0"].tolist() == expected.tolist()


def test_bad_annotation_line_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "a.txt"
    bad.write_text("Abuse028_x264 Abuse 165\n")
    assert gt_main(["--dataset", "ucf", "--annotation", str(bad), "--out", str(tmp_path / "g.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "a.txt:1" in err and "\n" not in err
