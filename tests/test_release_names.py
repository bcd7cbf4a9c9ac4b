"""Feature-release names, labels that cannot silently go wrong (missing annotations, NaN scores),
UR-DMU's AP on anomalous videos, and the ShanghaiTech weakly-supervised split (masks and lists made here)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, precision_recall_curve

from vadedge.errors import VadInputError
from vadedge.train.checkpoint import save_checkpoint
from vadedge.train.cli import eval_main, gt_main, train_main
from vadedge.train.data.features import read_list
from vadedge.train.data.names import read_split_labels, video_label, video_name
from vadedge.train.gt import build_gt, build_mask_gt, load_gt, read_ucf_annotations
from vadedge.train.metrics import VideoResult, frame_report
from vadedge.train.models import URDMU, URDMUConfig


@pytest.mark.parametrize("token,name,crop", [
    ("Abuse028_x264__5.npy", "Abuse028_x264", 5),  # UR-DMU / VadCLIP crop files
    ("Abuse028_x264_i3d.npy", "Abuse028_x264", None),  # RTFM / PEL4VAD
    (r"D:\\feats\\UCF\\Normal_Videos_003_x264__0.npy", "Normal_Videos_003_x264", 0),  # Windows list path
    ("/data/xd/v=abc__#1_label_B2-0-0__3.npy", "v=abc__#1_label_B2-0-0", 3),
    ("A.Beautiful.Mind.2001__#00-25-20_00-31-20_label_A.npy", "A.Beautiful.Mind.2001__#00-25-20_00-31-20_label_A", None),
    ("01_0014_i3d.npy", "01_0014", None),  # ShanghaiTech (RTFM)
    ("Abuse/Abuse028_x264.mp4", "Abuse028_x264", None),  # annotation token
])
def test_release_names_map_to_annotation_names(token, name, crop):
    assert video_name(token) == (name, crop)


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)
    return path


@pytest.mark.shared
def test_rtfm_names_give_the_public_gt(ucf_dir, tmp_path, capsys):
    """The RTFM release's `Abuse028_x264_i3d.npy` [T, 10, D] files: the GT equals the public one."""
    ref = load_gt(ucf_dir / "test_frame_gt.npz")
    names = ["Abuse028_x264", "Normal_Videos_003_x264", "Arson011_x264", "Normal_Videos_006_x264"]
    lines = [str(_save(tmp_path / "rtfm" / f"{n}_i3d.npy", np.zeros((len(ref[n]) // 16, 10, 4), np.float32))) for n in names]
    (tmp_path / "test.list").write_text("\n".join(lines) + "\n")
    out = tmp_path / "gt.npz"
    assert gt_main(["--dataset", "ucf", "--annotation", str(ucf_dir / "UCF_Annotation.txt"), "--test-list",
                    str(tmp_path / "test.list"), "--out", str(out)]) == 0
    gt = load_gt(out)
    assert list(gt) == names and all(np.array_equal(gt[n], ref[n]) for n in names)
    assert gt["Abuse028_x264"].sum() > 0 and gt["Arson011_x264"].sum() > 0


def test_anomalous_name_without_annotation_is_an_error(tmp_path, capsys):
    ann = tmp_path / "ann.txt"
    ann.write_text("Abuse/Abuse028_x264.mp4 1412 Abuse 165 240 -1 -1\n")
    with pytest.raises(VadInputError, match="video Arson011_x264: its name says anomalous"):
        build_gt(read_ucf_annotations(ann), lengths={"Abuse028_x264": 88, "Arson011_x264": 10}, order=["Abuse028_x264", "Arson011_x264"])
    gt = build_gt(read_ucf_annotations(ann), lengths={"Normal_Videos_001_x264": 3, "Abuse028_x264": 88},
                  order=["Normal_Videos_001_x264", "Abuse028_x264"])
    assert gt["Normal_Videos_001_x264"].tolist() == [0] * 48 and gt["Abuse028_x264"].sum() == 75
    (tmp_path / "order.txt").write_text("Abuse028_x264\nRobbery050_x264\n")
    assert gt_main(["--dataset", "ucf", "--annotation", str(ann), "--order", str(tmp_path / "order.txt"),
                    "--out", str(tmp_path / "g.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: video Robbery050_x264") and "\n" not in err
    assert not (tmp_path / "g.npz").exists()


def _urdmu_ckpt(tmp_path):
    torch.manual_seed(0)
    cfg = URDMUConfig(feature_dim=8, dim=16, heads=2, head_dim=8, mlp_dim=16, head_hidden=8, normal_slots=20, abnormal_slots=20)
    return save_checkpoint(tmp_path / "m.safetensors", URDMU(cfg))


def test_nan_scores_end_with_one_line_naming_the_video(tmp_path, capsys):
    gt = {"Abuse001_x264": np.r_[np.zeros(32), np.ones(32)].astype(np.uint8), "Normal_Videos_001_x264": np.zeros(64, np.uint8)}
    np.savez(tmp_path / "gt.npz", **gt)
    # from a scores file (keys in the RTFM naming)
    np.savez(tmp_path / "s.npz", Abuse001_x264_i3d=np.array([0.1, np.nan, 0.8, 0.9]), Normal_Videos_001_x264_i3d=np.full(4, 0.1))
    assert eval_main(["--scores", str(tmp_path / "s.npz"), "--gt", str(tmp_path / "gt.npz")]) == 2
    captured = capsys.readouterr()
    assert "AUC" not in captured.out
    err = captured.err.strip()
    assert err.startswith("error: video Abuse001_x264: 1 of 4 snippet scores") and "s.npz" in err and "\n" not in err
    # from the model: a finite 3.4e38 feature passes the input check and turns the scores NaN
    feats = np.zeros((4, 8), np.float32)
    feats[2, 0] = 3.4e38
    _save(tmp_path / "f" / "Abuse001_x264__0.npy", feats)
    _save(tmp_path / "f" / "Normal_Videos_001_x264__0.npy", np.zeros((4, 8), np.float32))
    (tmp_path / "t.list").write_text("Abuse001_x264__0.npy\nNormal_Videos_001_x264__0.npy\n")
    assert eval_main(["--ckpt", str(_urdmu_ckpt(tmp_path)), "--test-list", str(tmp_path / "t.list"), "--root", str(tmp_path / "f"),
                      "--gt", str(tmp_path / "gt.npz")]) == 2
    captured = capsys.readouterr()
    last = captured.err.replace("\r", "\n").strip().splitlines()[-1]  # after the progress bar
    assert "AUC" not in captured.out and last.startswith("error: video Abuse001_x264:")
    assert "NaN or inf" in last and "from the model" in last


def test_pr_auc_trapz_on_anomalous_videos():
    rng = np.random.default_rng(3)
    videos = []
    for i, label in enumerate([1, 1, 0, 0]):
        gt = np.zeros(16 * 20, np.uint8)
        if label:
            gt[16 * 5: 16 * (9 + i)] = 1
        videos.append(VideoResult(f"v{i}", "X" if label else "Normal", label, np.round(rng.random(20), 1), gt))
    report = frame_report(videos)
    a_s = np.concatenate([v.frame_scores for v in videos[:2]])
    a_y = np.concatenate([v.gt for v in videos[:2]])
    p, r, _ = precision_recall_curve(a_y, a_s)
    assert report["pr_auc_trapz_abnormal"] == pytest.approx(auc(r, p))
    # by hand on a tiny case: scores [0.9 (pos), 0.5 (neg), 0.1 (pos)] -> PR points (R, P): (0, 1) (0.5, 1) (0.5, 0.5) (1, 2/3)
    tiny = frame_report([VideoResult("a", "X", 1, np.array([0.9, 0.5, 0.1]), np.repeat([1, 0, 1], 16).astype(np.uint8))])
    assert tiny["pr_auc_trapz_abnormal"] == pytest.approx(0.5 * 1 + 0.5 * (0.5 + 2 / 3) / 2)


# ---------------------------------------------------------------- ShanghaiTech
SH_TRAIN = {"01_001": 0, "01_002": 0, "02_003": 0, "01_0015": 1, "01_0016": 1, "03_0031": 1}
SH_TEST = {"04_001": 0, "01_0014": 1, "02_0161": 1, "01_0017": 0}  # 01_0017: from the original test set, but normal


def _sh(tmp_path, rng=np.random.default_rng(0)):
    """SH-style data made here: RTFM-named [T, 10, D] features, split lists, frame masks of the anomalous test videos."""
    d = 8
    lengths = {}
    for split, videos in (("train", SH_TRAIN), ("test", SH_TEST)):
        lines = []
        for name, label in videos.items():
            t = int(rng.integers(12, 30))
            x = rng.normal(0, 1, (t, 10, d)).astype(np.float32)
            if label:
                x[t // 3: 2 * t // 3, :, 0] += 4.0
            lines.append(str(_save(tmp_path / "feats" / f"{name}_i3d.npy", x)))
            lengths[name] = t
        (tmp_path / f"sh_{split}.list").write_text("\n".join(lines) + "\n")
        (tmp_path / f"sh_{split}_split.txt").write_text("".join(f"{n} {lab}\n" for n, lab in videos.items()))
    for name, label in SH_TEST.items():
        if label:
            mask = np.zeros(16 * lengths[name] + 7, np.uint8)  # frame count not a multiple of 16
            mask[16 * (lengths[name] // 3): 16 * (2 * lengths[name] // 3)] = 1
            _save(tmp_path / "masks" / f"{name}.npy", mask)
    return lengths


def test_sh_labels_come_from_the_split_list(tmp_path):
    _sh(tmp_path)
    with pytest.raises(VadInputError, match="01_001.*ShanghaiTech names carry no label"):
        read_list(tmp_path / "sh_train.list")
    labels = read_split_labels(tmp_path / "sh_train_split.txt")
    videos = read_list(tmp_path / "sh_train.list", naming="sh", labels=labels)
    assert {v.name: v.label.label for v in videos} == SH_TRAIN
    assert {v.label.cls for v in videos} == {"Normal", "Anomaly"}
    assert video_label("01_0014", "sh", {"01_0014": 1}).label == 1
    (tmp_path / "bad.txt").write_text("01_001 normal\n")
    with pytest.raises(VadInputError, match="bad.txt:1: expected 'NAME LABEL'"):
        read_split_labels(tmp_path / "bad.txt")
    with pytest.raises(VadInputError, match="04_001.*not in the split list"):
        read_list(tmp_path / "sh_test.list", naming="sh", labels=labels)


def test_sh_gt_from_frame_masks(tmp_path, capsys):
    lengths = _sh(tmp_path)
    out = tmp_path / "sh_gt.npz"
    assert gt_main(["--dataset", "sh", "--masks", str(tmp_path / "masks"), "--labels", str(tmp_path / "sh_test_split.txt"),
                    "--test-list", str(tmp_path / "sh_test.list"), "--out", str(out)]) == 0
    gt = load_gt(out)
    assert list(gt) == list(SH_TEST)
    for name, label in SH_TEST.items():
        assert len(gt[name]) == 16 * lengths[name]  # aligned to the features' snippets
        assert bool(gt[name].any()) == bool(label)
    mask = np.load(tmp_path / "masks" / "01_0014.npy")
    assert np.array_equal(gt["01_0014"], mask[: 16 * lengths["01_0014"]])
    # lengths from frame counts alone: F // 16 snippets (drop) or ceil (pad, the last frame's label repeated)
    masks = {"01_0014": np.r_[np.zeros(20), np.ones(20)].astype(np.uint8)}
    assert len(build_mask_gt(masks, ["01_0014"])["01_0014"]) == 32
    padded = build_mask_gt(masks, ["01_0014"], trailing="pad")["01_0014"]
    assert len(padded) == 48 and padded[40:].tolist() == [1] * 8
    # an anomalous test video without a mask, or a normal one whose mask marks anomalies: one line naming it
    with pytest.raises(VadInputError, match="video 02_0161: anomalous in the split list but it has no frame mask"):
        build_mask_gt(masks, ["02_0161"], lengths=lengths, labels=SH_TEST)
    with pytest.raises(VadInputError, match="video 01_0014: normal in the split list"):
        build_mask_gt(masks, ["01_0014"], labels={"01_0014": 0})
    assert gt_main(["--dataset", "sh", "--masks", str(tmp_path / "masks"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "--labels" in capsys.readouterr().err


def test_sh_train_and_eval_end_to_end(tmp_path, capsys):
    _sh(tmp_path)
    gt = tmp_path / "sh_gt.npz"
    assert gt_main(["--dataset", "sh", "--masks", str(tmp_path / "masks"), "--labels", str(tmp_path / "sh_test_split.txt"),
                    "--test-list", str(tmp_path / "sh_test.list"), "--out", str(gt)]) == 0
    labels = tmp_path / "sh_labels.txt"
    labels.write_text((tmp_path / "sh_train_split.txt").read_text() + (tmp_path / "sh_test_split.txt").read_text())
    out = tmp_path / "run"
    args = ["--train-list", str(tmp_path / "sh_train.list"), "--test-list", str(tmp_path / "sh_test.list"), "--gt", str(gt),
            "--naming", "sh", "--labels", str(labels), "--out", str(out), "--no-progress", "--iterations", "6",
            "--batch-normal", "4", "--batch-abnormal", "4", "--seq-len", "16", "--eval-every", "3",
            "--set", "feature_dim=8", "--set", "dim=16", "--set", "heads=2", "--set", "head_dim=8", "--set", "mlp_dim=16",
            "--set", "normal_slots=20", "--set", "abnormal_slots=20", "--set", "head_hidden=8"]
    assert train_main(args) == 0
    assert eval_main(["--ckpt", str(out / "best.safetensors"), "--test-list", str(tmp_path / "sh_test.list"), "--gt", str(gt),
                      "--labels", str(labels), "--json", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert "AUC (ROC)" in printed and "AUC Anomaly vs normal" in printed
    assert train_main([a for a in args if a not in ("--labels", str(labels), "--naming", "sh")]) == 2
    assert "ShanghaiTech names carry no label" in capsys.readouterr().err


def test_training_on_synthetic_features_marks_the_checkpoint(tmp_path, capsys):
    """Data carrying SYNTHETIC.json (every synthetic generator writes one) makes a synthetic checkpoint without --demo,
    so the runtime's warning and events' ``synthetic_model`` follow it; real-looking data (no marker) does not."""
    import shutil

    from vadedge.train.checkpoint import load_model
    from vadedge.train.data.synthetic import SyntheticSpec, write_dataset

    data = write_dataset(tmp_path / "syn", SyntheticSpec(feature_dim=8, crops=1, train_normal=6, train_abnormal=6,
                                                         test_normal=2, test_abnormal=2, min_len=8, max_len=12))
    small = ["--iterations", "2", "--batch-normal", "2", "--batch-abnormal", "2", "--seq-len", "8", "--no-progress",
             "--set", "feature_dim=8", "--set", "dim=16", "--set", "heads=2", "--set", "head_dim=8", "--set", "mlp_dim=16",
             "--set", "normal_slots=4", "--set", "abnormal_slots=4", "--set", "head_hidden=8"]
    assert train_main(["--model", "urdmu", "--train-list", str(data / "train.list"), "--root", str(data),
                       "--out", str(tmp_path / "a"), *small]) == 0
    assert "training on SYNTHETIC features" in capsys.readouterr().out
    assert load_model(tmp_path / "a" / "best.safetensors")[1].extra["synthetic"] is True
    (data / "SYNTHETIC.json").unlink()  # the same numbers without the marker: nothing says they are synthetic
    assert train_main(["--model", "urdmu", "--train-list", str(data / "train.list"), "--root", str(data),
                       "--out", str(tmp_path / "b"), *small]) == 0
    assert load_model(tmp_path / "b" / "best.safetensors")[1].extra["synthetic"] is False
