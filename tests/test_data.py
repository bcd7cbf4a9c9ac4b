"""Community-format feature data: list resolution, layouts, labels, resampling, batches, bad input."""

import numpy as np
import pytest

from vadedge.errors import VadInputError
from vadedge.train.data import BalancedBatches, TrainCrops, load_video, read_list, resample_segments, video_label
from vadedge.train.evaluate import build_results


def official_process_feat(feat, length):
    """The official loop, written out independently of the vectorised version."""
    new = np.zeros((length, feat.shape[1]), dtype=np.float32)
    r = np.linspace(0, len(feat), length + 1, dtype=int)
    for i in range(length):
        new[i] = feat[r[i]:r[i + 1]].mean(0) if r[i] != r[i + 1] else feat[r[i]]
    return new


@pytest.mark.parametrize("t", [1, 3, 17, 199, 200, 201, 1000, 4321])
def test_resample_matches_official_loop(t):
    feat = np.random.default_rng(t).normal(size=(t, 8)).astype(np.float32)
    np.testing.assert_allclose(resample_segments(feat, 200), official_process_feat(feat, 200), rtol=1e-5, atol=1e-6)


def test_short_video_is_upsampled_by_repetition():
    feat = np.arange(3, dtype=np.float32)[:, None]
    out = resample_segments(feat, 6)
    assert out[:, 0].tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("name,label,cls", [
    ("Abuse028_x264", 1, "Abuse"), ("Normal_Videos_872_x264", 0, "Normal"), ("Normal_Videos308_3_x264", 0, "Normal"),
    ("RoadAccidents021_x264", 1, "RoadAccidents"),
    ("Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6", 1, "Explosion"),
    ("A.Beautiful.Mind.2001__#00-25-20_00-31-20_label_A", 0, "Normal"),
    ("v=abc__#1_label_B2-0-0", 1, "Shooting"),
])
def test_labels_from_names(name, label, cls):
    got = video_label(name)
    assert (got.label, got.cls) == (label, cls)


def _write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)


def test_windows_list_paths_resolve_against_root(tmp_path):
    root = tmp_path / "feats"
    for crop in range(3):
        _write(root / "Abuse" / f"Abuse001_x264__{crop}.npy", np.full((5, 4), crop, np.float32))
    _write(root / "Normal" / "Normal_Videos_001_x264__0.npy", np.zeros((7, 4), np.float32))
    lst = tmp_path / "train.list"
    lst.write_text("".join(f"D:\\\\data\\UCF\\all_rgbs\\Abuse\\Abuse001_x264__{c}.npy\n" for c in range(3))
                   + "/home/someone/UCF/Normal/Normal_Videos_001_x264__0.npy\n")
    videos = read_list(lst, root)
    assert [v.name for v in videos] == ["Abuse001_x264", "Normal_Videos_001_x264"]
    assert [v.label.label for v in videos] == [1, 0]
    feats = load_video(videos[0], 4)
    assert feats.shape == (3, 5, 4) and feats[2].mean() == 2


def test_single_file_crop_layout(tmp_path):
    _write(tmp_path / "Arson001_x264.npy", np.random.rand(9, 5, 4).astype(np.float32))
    _write(tmp_path / "Normal_Videos_002_x264.npy", np.random.rand(6, 5, 4).astype(np.float32))
    (tmp_path / "l.list").write_text("Arson001_x264.npy\nNormal_Videos_002_x264.npy\n")
    videos = read_list(tmp_path / "l.list", tmp_path)
    assert load_video(videos[0], 4).shape == (5, 9, 4)
    crops = TrainCrops(videos, seq_len=16, feature_dim=4)
    assert len(crops) == 10  # every crop is a sample
    x, y = crops[0]
    assert x.shape == (16, 4) and y == 1


@pytest.mark.parametrize("arr,needle", [
    (np.zeros((0, 4), np.float32), "empty video"),
    (np.zeros((5, 3), np.float32), "feature dim 3, the model expects 4"),
    (np.array([[np.nan] * 4] * 5, np.float32), "NaN or inf"),
    (np.zeros((2, 2, 2, 4), np.float32), "expected shape"),
])
def test_bad_feature_files_name_the_file(tmp_path, arr, needle):
    _write(tmp_path / "Abuse001_x264__0.npy", arr)
    (tmp_path / "l.list").write_text("Abuse001_x264__0.npy\n")
    videos = read_list(tmp_path / "l.list", tmp_path)
    with pytest.raises(VadInputError, match=needle) as err:
        load_video(videos[0], 4)
    assert "Abuse001_x264__0.npy" in str(err.value)


def test_missing_file_names_list_line(tmp_path):
    (tmp_path / "l.list").write_text("\nD:\\x\\Missing001_x264__0.npy\n")
    with pytest.raises(VadInputError, match=r"l.list:2: feature file .*Missing001_x264__0.npy.* not found"):
        read_list(tmp_path / "l.list", tmp_path)


def test_gt_length_mismatch_names_video(tmp_path):
    _write(tmp_path / "Abuse001_x264__0.npy", np.zeros((5, 4), np.float32))
    (tmp_path / "l.list").write_text("Abuse001_x264__0.npy\n")
    videos = read_list(tmp_path / "l.list", tmp_path)
    with pytest.raises(VadInputError, match="video Abuse001_x264: ground truth has 64 frames but .* 5 snippets"):
        build_results(videos, [np.zeros(5)], {"Abuse001_x264": np.zeros(64)})
    with pytest.raises(VadInputError, match="missing from the ground-truth"):
        build_results(videos, [np.zeros(5)], {})


def test_balanced_batches_are_balanced_without_replacement_and_resumable():
    labels = np.array([0] * 10 + [1] * 7)
    sampler = BalancedBatches(labels, 3, 2, seed=5)
    batches = [sampler.batch(s) for s in range(3)]
    for b in batches:
        assert (labels[b[:3]] == 0).all() and (labels[b[3:]] == 1).all()
    normals = np.concatenate([b[:3] for b in batches])
    assert len(set(normals.tolist())) == 9  # one pass: no repeats
    assert list(BalancedBatches(labels, 3, 2, seed=5).steps(1, 3)) == [b.tolist() for b in batches[1:]]
    with pytest.raises(VadInputError, match="8 abnormal samples but the training list has 7"):
        BalancedBatches(labels, 3, 8, seed=0)
