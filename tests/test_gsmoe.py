"""GS-MoE: batched experts, each stage's forward/backward, masking, K-means, checkpoint, and the pipeline."""

import json

import numpy as np
import pytest
import torch

from vadedge.errors import VadInputError
from vadedge.train.checkpoint import load_model, save_checkpoint
from vadedge.train.config import config_from_dict
from vadedge.train.cli import eval_main, train_main
from vadedge.train.data.synthetic import SynClass, SyntheticSpec, write_dataset
from vadedge.train.layers import ExpertBank
from vadedge.train.models import GSMoE, GSMoEConfig, URDMUConfig, create_model
from vadedge.train.losses import GateLoss, URDMUTGSLoss
from vadedge.train.pipelines.gsmoe import kmeans

ENC = URDMUConfig(feature_dim=16, dim=16, heads=2, head_dim=8, mlp_dim=16, head_hidden=8, normal_slots=20, abnormal_slots=20)


def small(experts=("A", "B", "C")):
    return GSMoEConfig(encoder=ENC, experts=list(experts), expert_dim=16, gate_dim=16)


def test_batched_experts_equal_each_expert_alone():
    torch.manual_seed(0)
    bank = ExpertBank(3, 10, 8, heads=4, dropout=0.0).eval()
    x = torch.randn(2, 7, 10)
    together = bank(x)
    for e in range(3):
        alone = ExpertBank(1, 10, 8, heads=4, dropout=0.0).eval()
        alone.load_state_dict({k: v[e:e + 1] for k, v in bank.state_dict().items()})
        torch.testing.assert_close(alone(x)[0], together[e], rtol=1e-5, atol=1e-6)


def _two_by_two():
    """A small GS-MoE and a batch of 2 normal + 2 anomalous videos of 40 snippets."""
    torch.manual_seed(0)
    return GSMoE(small()), torch.randn(2, 40, 16), torch.randn(2, 40, 16), torch.tensor([0.0, 0, 1, 1])


def test_stage_forward_backward_and_freezing():
    model, normal, abnormal, labels = _two_by_two()
    # stage 2: encoder with TGS
    out = model.encoder.forward_train(normal, abnormal)
    URDMUTGSLoss(model.config)(out, labels, step=5)["loss"].backward()
    assert model.encoder.head.fc1.weight.grad is not None
    # stage 3: experts on task features
    model.zero_grad()
    task = model.encoder.task_features(torch.cat([normal, abnormal])).detach()
    model.experts(task).sum().backward()
    assert model.experts.proj.weight.grad is not None and model.encoder.head.fc1.weight.grad is None
    # stage 4: gate only
    model.zero_grad()
    GateLoss(model.config)(model.forward_train(normal, abnormal), labels, step=9)["loss"].backward()
    assert model.gate.mlp[0].weight.grad is not None
    assert model.experts.proj.weight.grad is None and model.encoder.head.fc1.weight.grad is None


def test_detailed_outputs_and_masking_changes_scores():
    torch.manual_seed(0)
    model = GSMoE(small()).eval()
    x = torch.randn(2, 30, 16)
    out = model.forward_detailed(x)
    assert out["scores"].shape == (2, 30) and out["expert_scores"].shape == (2, 30, 3)
    assert torch.equal(out["dominant_expert"], out["expert_scores"].argmax(-1))
    masked = model.forward_detailed(x, torch.tensor([1.0, 0.0, 1.0]))
    assert (masked["expert_scores"][..., 1] == 0).all()
    assert not torch.allclose(masked["scores"], out["scores"])
    assert torch.allclose(model(x[:, None].repeat(1, 2, 1, 1)), out["scores"], atol=1e-6)  # crops averaged


def test_checkpoint_rebuilds_nested_config(tmp_path):
    model = GSMoE(small(("Arson", "Fighting"))).eval()
    path = save_checkpoint(tmp_path / "g.safetensors", model)
    loaded, info = load_model(path)
    assert info.model == "gsmoe" and loaded.config.experts == ["Arson", "Fighting"] and loaded.config.encoder == ENC
    x = torch.randn(1, 12, 16)
    assert torch.equal(loaded(x), model(x))


def test_config_saved_before_the_prominence_finder_keeps_its_peak_finder(tmp_path):
    from vadedge.train.config import config_from_dict, config_to_dict

    old = config_to_dict(small())
    for key in ("tgs_peaks", "tgs_smooth", "tgs_prominence", "tgs_min_width", "tgs_rel_height", "tgs_render"):
        old.pop(key)  # what a checkpoint written before these fields holds
    assert config_from_dict(GSMoEConfig, old, legacy=True).tgs_peaks == "local-max"
    assert create_model("gsmoe", old).config.tgs_peaks == "local-max"  # how a checkpoint's config is read back
    assert GSMoEConfig().tgs_peaks == "prominence" and config_from_dict(GSMoEConfig, config_to_dict(small())).tgs_peaks == "prominence"
    # A new config with only some fields (the CLI's --demo / --set path) gets today's defaults, not the legacy ones.
    assert config_from_dict(GSMoEConfig, {"expert_dim": 16}).tgs_peaks == "prominence"
    # saved during issue 17 (tgs_peaks present, tgs_prominence_of not): trained with the absolute threshold
    mid = config_to_dict(small())
    mid.pop("tgs_prominence_of")
    assert create_model("gsmoe", mid).config.tgs_prominence_of == "absolute"
    assert GSMoEConfig().tgs_prominence_of == "range" and config_from_dict(GSMoEConfig, {}).tgs_prominence_of == "range"


def test_the_model_does_not_import_its_training_pipeline():
    import subprocess
    import sys

    code = "import sys, vadedge.train.models.gsmoe; print('vadedge.train.pipelines.gsmoe' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_stage2_and_gate_warm_up_on_topk_norm_only():
    model, normal, abnormal, labels = _two_by_two()
    out = model.encoder.forward_train(normal, abnormal)
    loss = URDMUTGSLoss(model.config, warmup_steps=3)
    assert loss(out, labels, step=2)["tgs"].item() < loss(out, labels, step=3)["tgs"].item()  # BCE to ŷ joins after warm-up
    gate = GateLoss(model.config, warmup_steps=3)
    warm, full = gate(model.forward_train(normal, abnormal), labels, step=0), gate(model.forward_train(normal, abnormal), labels, step=3)
    assert warm["splat"].item() == 0 and full["splat"].item() > 0


def test_warm_up_epoch_counts_crops_not_files(tmp_path):
    from vadedge.train.config import TrainConfig
    from vadedge.train.data.features import read_list
    from vadedge.train.pipelines.gsmoe import warmup_steps

    lines = []
    for name, crops in (("Abuse001_x264", 10), ("Arson002_x264", 10), ("Normal_Videos_001_x264", 10)):
        np.save(tmp_path / f"{name}.npy", np.zeros((20, crops, 16), np.float32))  # [T, ncrop, D]: one file, 10 samples
        lines.append(str(tmp_path / f"{name}.npy"))
    (tmp_path / "train.list").write_text("\n".join(lines) + "\n")
    videos = read_list(tmp_path / "train.list")
    assert warmup_steps(videos, TrainConfig(batch_abnormal=4, seq_len=8), 16) == 20 // 4  # 2 files x 10 crops


def test_kmeans_recovers_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    x = np.concatenate([c + rng.normal(0, 0.5, (20, 2)) for c in centres])
    assign = kmeans(x, 3, seed=1)
    for block in range(3):
        assert len(set(assign[block * 20:(block + 1) * 20])) == 1
    assert len(set(assign)) == 3


@pytest.fixture(scope="module")
def class_data(tmp_path_factory):
    spec = SyntheticSpec(feature_dim=16, crops=1, train_normal=24, train_abnormal=24, test_normal=6, test_abnormal=6, min_len=24,
                         max_len=64, classes=(SynClass("SynBurst", 3.0, 0.1, 0.3), SynClass("SynDrift", 2.0, 0.2, 0.4)))
    return write_dataset(tmp_path_factory.mktemp("gs"), spec)


def _args(data, out, *extra):
    return ["--model", "gsmoe", "--train-list", str(data / "train.list"), "--test-list", str(data / "test.list"),
            "--root", str(data), "--gt", str(data / "test_gt.npz"), "--out", str(out), "--no-progress",
            "--set", "encoder.feature_dim=16", "--set", "encoder.dim=16", "--set", "encoder.heads=2", "--set", "encoder.head_dim=8",
            "--set", "encoder.mlp_dim=16", "--set", "encoder.normal_slots=20", "--set", "encoder.abnormal_slots=20",
            "--set", "expert_dim=16", "--set", "gate_dim=16", "--batch-normal", "4", "--batch-abnormal", "4",
            "--seq-len", "32", "--eval-every", "4", "--expert-batch", "4", "--stage-iterations", "4,4,4,4", *extra]


def test_pipeline_end_to_end_with_class_experts(class_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(_args(class_data, out)) == 0
    printed = capsys.readouterr().out
    assert "urdmu_tgs" in printed and "gsmoe" in printed
    comparison = json.loads((out / "comparison.json").read_text())
    assert set(comparison) >= {"urdmu", "urdmu_tgs", "gsmoe", "expert_masking"}
    assert set(comparison["expert_masking"]) == {"SynBurst", "SynDrift"}
    model, info = load_model(out / "gsmoe.safetensors")
    assert info.model == "gsmoe" and model.config.experts == ["SynBurst", "SynDrift"]
    groups = json.loads((out / "stage3_experts" / "groups.json").read_text())
    assert set(groups["video_expert"].values()) == {0, 1}
    # stages are resumable one by one: a second run finds every stage done and only re-evaluates
    mtime = (out / "stage1_encoder" / "best.safetensors").stat().st_mtime_ns
    assert train_main(_args(class_data, out)) == 0
    assert (out / "stage1_encoder" / "best.safetensors").stat().st_mtime_ns == mtime
    assert eval_main(["--ckpt", str(out / "gsmoe.safetensors"), "--test-list", str(class_data / "test.list"), "--root", str(class_data),
                      "--gt", str(class_data / "test_gt.npz"), "--expert-masking", "--json", str(tmp_path / "r.json")]) == 0
    assert "SynBurst" in json.loads((tmp_path / "r.json").read_text())["expert_masking"]


def test_pipeline_with_cluster_experts(class_data, tmp_path):
    out = tmp_path / "run"
    assert train_main(_args(class_data, out, "--clusters", "3", "--tgs-warmup", "0", "--gate-warmup", "2")) == 0
    model, info = load_model(out / "gsmoe.safetensors")
    assert model.config.experts == ["cluster0", "cluster1", "cluster2"] and model.config.expert_mode == "cluster"
    assert info.extra["stages"]["tgs_warmup"] == 0 and info.extra["stages"]["gate_warmup"] == 2  # the CLI's warm-up flags


def test_cli_encoder_keys_need_no_prefix(tmp_path, capsys):
    """``--set feature_dim=...`` works for GS-MoE as for the other models (the key is its encoder's); a key neither
    config has is still one line naming it."""
    data = write_dataset(tmp_path / "d", SyntheticSpec(feature_dim=8, crops=1, train_normal=2, train_abnormal=2,
                                                       test_normal=1, test_abnormal=1, min_len=4, max_len=6))
    base = ["--model", "gsmoe", "--train-list", str(data / "train.list"), "--root", str(data), "--out", str(tmp_path / "o")]
    assert train_main([*base, "--set", "feature_dim=8", "--set", "no_such_key=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no_such_key" in err and "feature_dim" not in err and "\n" not in err


@pytest.mark.parametrize("field,value", [("tgs_prominence_of", "foo"), ("tgs_peaks", "bar"), ("tgs_render", "softmax"),
                                         ("tgs_kernel_sigma", "x"), ("pseudo_source", "teacher"), ("tgs_prominence", -1.0),
                                         ("tgs_smooth", -0.5), ("tgs_rel_height", 0.0), ("tgs_window", 0)])
def test_bad_tgs_fields_fail_when_the_config_is_made(field, value):
    """--set tgs_*=bad is a one-line error before any training (was: a traceback after stage 1, or silently saved)."""
    with pytest.raises(VadInputError, match=field):
        config_from_dict(GSMoEConfig, {field: value}, where="--set")


@pytest.mark.parametrize("field,value", [("tgs_warmup", -5), ("gate_warmup", -2), ("expert_batch", 0), ("encoder_iterations", -3),
                                         ("clusters", -1)])
def test_bad_stage_values_are_one_line_errors(field, value):
    """--tgs-warmup -5 used to mean one epoch silently; -1 is the only sentinel, counts are >= 0."""
    from vadedge.train.pipelines.gsmoe import GSMoEStages

    with pytest.raises(VadInputError, match=f"{field} {value}: expected an integer >= "):
        GSMoEStages(**{field: value})
    assert GSMoEStages(tgs_warmup=-1, gate_warmup=0).tgs_warmup == -1
