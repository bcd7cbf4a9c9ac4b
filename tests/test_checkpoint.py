"""Checkpoints rebuild their model alone, never unpickle, write atomically, and resume exactly."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vadedge.errors import VadInputError
from vadedge.train.checkpoint import load_model, read_header, save_checkpoint
from vadedge.train.config import TrainConfig
from vadedge.train.data import read_list
from vadedge.train.data.synthetic import SynClass, SyntheticSpec, write_dataset
from vadedge.train.models import URDMU, URDMUConfig
from vadedge.train.trainer import train

SMALL = URDMUConfig(feature_dim=16, dim=16, heads=2, head_dim=8, mlp_dim=16, head_hidden=8, normal_slots=20, abnormal_slots=20)


def test_round_trip_rebuilds_model_from_file_alone(tmp_path):
    model = URDMU(URDMUConfig.paper(feature_dim=16, dim=16, heads=2, head_dim=8, mlp_dim=16)).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, step=7, metrics={"auc": 0.5})
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left behind
    loaded, info = load_model(path)
    assert info.model == "urdmu" and info.step == 7 and info.model_config["local_norm"] == "row"
    x = torch.randn(2, 33, 16)
    assert torch.equal(loaded(x), model(x))
    header = read_header(path)
    assert header.package_version and header.metrics == {"auc": 0.5}


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    torch.save({"a": 1}, tmp_path / "pickle.safetensors")  # a pickle under a safetensors name
    with pytest.raises(VadInputError, match="not a vadedge safetensors checkpoint"):
        load_model(tmp_path / "pickle.safetensors")
    with pytest.raises(VadInputError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    path = save_checkpoint(tmp_path / "m.safetensors", URDMU(SMALL))
    raw = bytearray(path.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["vadedge"])
    meta["model_config"]["dim"] = "big"
    header["__metadata__"]["vadedge"] = json.dumps(meta)
    blob = json.dumps(header).encode()
    (tmp_path / "edited.safetensors").write_bytes(len(blob).to_bytes(8, "little") + blob + bytes(raw[8 + n:]))
    with pytest.raises(VadInputError, match=r"model_config\[urdmu\]\.dim: expected int, got 'big'"):
        load_model(tmp_path / "edited.safetensors")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    spec = SyntheticSpec(feature_dim=16, crops=1, train_normal=12, train_abnormal=12, test_normal=4, test_abnormal=4,
                         min_len=20, max_len=60, classes=(SynClass("SynBurst", 3.0, 0.1, 0.3),))
    return write_dataset(root, spec)


def test_resume_continues_exactly(tmp_path, tiny_data):
    videos = read_list(tiny_data / "train.list", tiny_data)
    cfg = dict(batch_normal=4, batch_abnormal=4, seq_len=32, eval_every=3, seed=3, lr=1e-3)
    train("urdmu", SMALL, videos, tmp_path / "a", cfg=TrainConfig(iterations=6, **cfg), progress=False)
    train("urdmu", SMALL, videos, tmp_path / "b", cfg=TrainConfig(iterations=3, **cfg), progress=False)
    train("urdmu", SMALL, videos, tmp_path / "b", cfg=TrainConfig(iterations=6, **cfg), progress=False, resume=True)
    a, b = load_file(tmp_path / "a" / "last.safetensors"), load_file(tmp_path / "b" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    first = load_file(tmp_path / "b" / "last.state.safetensors")
    assert any(k.startswith("opt.") for k in first)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_training_needs_both_kinds_of_video(tmp_path, tiny_data):
    normal_only = [v for v in read_list(tiny_data / "train.list", tiny_data) if v.label.label == 0]
    with pytest.raises(VadInputError, match="both normal and anomalous"):
        train("urdmu", SMALL, normal_only, tmp_path, cfg=TrainConfig(iterations=1), progress=False)
    assert np.load(tiny_data / "test_gt.npz").files  # the tiny set is real on-disk data
