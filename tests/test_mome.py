"""MoME: LGT-Adapter, top-1 routing, sparse/dense equivalence, APR on real CLIP prototypes, the external
memory rule, each loss term, checkpoints, and end-to-end training on the SYNTHETIC 512-d set."""

import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from vadedge.errors import VadInputError
from vadedge.train.checkpoint import load_model, save_checkpoint
from vadedge.train.cli import eval_main, train_main
from vadedge.train.config import TrainConfig
from vadedge.train.layers.lgt import LGTAdapter, WindowAttentionBlock
from vadedge.train.layers.routing import cv_squared, top1_route
from vadedge.train.losses import MoMELoss
from vadedge.train.models import MoME, MoMEConfig
from vadedge.train.trainer import lr_at

SMALL = dict(feature_dim=32, embed_dim=16, expert_hidden=8, lgt_layers=1, lgt_window=4, lgt_max_len=16, head_hidden=8,
             normal_experts=4, explicit_experts=3, implicit_anomaly_experts=2, num_prototypes=5, internal_slots=10, external_slots=12)


def small_model(seed=0, **kw) -> MoME:
    torch.manual_seed(seed)
    return MoME(MoMEConfig(**{**SMALL, **kw}))


# ---------------------------------------------------------------- LGT-Adapter
def test_window_attention_equals_block_diagonal_mask():
    torch.manual_seed(0)
    block = WindowAttentionBlock(8, 2, window=4)
    x = torch.randn(2, 12, 8)
    valid = torch.ones(2, 12, dtype=torch.bool)
    ours = block.attention(x, valid)
    # Reference: full attention with VadCLIP's block-diagonal -inf mask.
    q, k, v = block.qkv(x).reshape(2, 12, 3, 2, 4).permute(2, 0, 3, 1, 4)
    win = torch.arange(12) // 4
    mask = torch.where(win[:, None] == win[None, :], 0.0, -math.inf)
    ref = torch.softmax(q @ k.transpose(-1, -2) / 2.0 + mask, -1) @ v
    ref = block.proj(ref.transpose(1, 2).reshape(2, 12, 8))
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)


def test_lgt_padding_is_masked_and_long_videos_are_chunked():
    torch.manual_seed(0)
    lgt = LGTAdapter(dim=8, layers=1, heads=1, window=4, max_len=16).eval()
    x = torch.randn(1, 10, 8)
    with torch.no_grad():
        whole = lgt(x)
        # T=10 is padded to 12 inside; the result must equal running on the exact, unpadded window grid
        # with the two padded keys masked, i.e. not depend on what the padding holds.
        assert lgt.chunk_length(10) == 12
        long = torch.randn(1, 40, 8)  # 3 chunks of 16 (last one 8 valid)
        out = lgt(long)
        parts = torch.cat([lgt(long[:, :16]), lgt(long[:, 16:32]), lgt(long[:, 32:])], 1)
    assert whole.shape == (1, 10, 8) and torch.isfinite(whole).all()
    torch.testing.assert_close(out, parts, atol=1e-5, rtol=1e-5)


def test_lgt_gcn_adjacencies_match_the_formulas():
    torch.manual_seed(0)
    lgt = LGTAdapter(dim=6, layers=1, heads=1, window=2, max_len=8, sim_threshold=0.1, dis_sigma=1.0)
    x = torch.randn(1, 8, 6)
    valid = torch.ones(1, 8, dtype=torch.bool)
    xn = x / x.norm(dim=-1, keepdim=True)
    sim = xn @ xn.transpose(1, 2)
    sim = torch.where(sim > 0.1, sim, torch.zeros_like(sim))
    i = torch.arange(8.0)
    dis = -(i[None] - i[:, None]).abs()
    expected = F.gelu(lgt.gcn.weight(torch.cat([torch.softmax(sim, -1) @ x, torch.softmax(dis, -1) @ x], -1)))
    torch.testing.assert_close(lgt.gcn(x, valid), expected, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------- routing
def test_top1_routing_sends_each_snippet_to_exactly_one_expert():
    torch.manual_seed(0)
    logits = torch.randn(500, 6)
    r = top1_route(logits)
    p = r.dispatch()
    assert torch.equal(p.sum(1), torch.ones(500))
    assert torch.equal(r.index, logits.argmax(-1))
    torch.testing.assert_close(r.weight, torch.softmax(logits, -1).max(-1).values)
    load = r.load()
    assert int(load.sum()) == 500 and torch.equal(load, p.sum(0).long())


def test_sparse_dispatch_equals_dense_gather():
    model = small_model().eval()
    x = torch.randn(3, 21, 32)
    with torch.no_grad():
        dense, sparse = model.run(x, sparse=False), model.run(x, sparse=True)
    for name in ("h", "score", "query", "ext_sim"):
        for mix in ("normal", "anomaly"):
            torch.testing.assert_close(getattr(getattr(sparse, mix), name), getattr(getattr(dense, mix), name), atol=1e-6, rtol=1e-6)
    assert (sparse.scores - dense.scores).abs().max() <= 1e-6
    assert torch.equal(sparse.normal_route.index, dense.normal_route.index)
    # True sparse dispatch: every expert saw exactly its own snippets.
    assert int(sparse.normal_route.load().sum()) == 3 * 21


def test_apr_routes_real_clip_prototypes(ucf_dir):
    """The APR with PEL4VAD's CLIP ViT-B/16 class embeddings (row 0 'normal event' dropped)."""
    model = MoME(MoMEConfig(feature_dim=512, expert_hidden=8, lgt_layers=1, normal_experts=2, explicit_experts=13, num_prototypes=13))
    model.load_prototypes(str(ucf_dir / "class_prompts_clip_vitb16.npy"), drop_rows=[0])
    apr = model.anomaly_router.apr
    emb = np.delete(np.load(ucf_dir / "class_prompts_clip_vitb16.npy"), 0, axis=0)
    # Each prototype routes to itself with tau = 3e-3, and to the expert whose assignment row favours it.
    probs = apr.prototype_probs(torch.from_numpy(emb))
    assert torch.equal(probs.argmax(-1), torch.arange(13))
    assert (probs.max(-1).values > 0.99).all()
    g = apr(torch.from_numpy(emb))
    torch.testing.assert_close(g, probs @ apr.assignment().t())
    with torch.no_grad():
        apr.assignment_logits.copy_(10 * torch.eye(13).roll(3, dims=1))  # expert e owns prototype e+3
    assert torch.equal(apr(torch.from_numpy(emb)).argmax(-1), (torch.arange(13) - 3) % 13)
    with pytest.raises(VadInputError, match="expected \\[13, 512\\] prototypes"):
        model.load_prototypes(str(ucf_dir / "class_prompts_clip_vitb16.npy"), drop_rows=[])  # 14 rows: the normal row kept
    with pytest.raises(VadInputError, match="rows have no class names, so normal rows cannot be dropped"):
        model.load_prototypes(str(ucf_dir / "class_prompts_clip_vitb16.npy"))  # was: 14 prototypes, 'normal event' one of them


def test_external_memory_update_rule():
    model = small_model()
    bank = model.normal_experts
    old = bank.external.clone()
    q, sim = torch.randn(7, 16), torch.rand(7, 12)
    bank.update_external(q, sim, rate=0.1)
    expected = old.clone()
    for i in range(12):
        w = sim[:, i] / sim.sum(-1)
        expected[i] = old[i] * (1 - 0.1 * w.mean()) + 0.1 * (w[:, None] * q).sum(0) / 7
    torch.testing.assert_close(bank.external, expected)
    assert not bank.external.requires_grad


def test_training_step_moves_external_memory_without_gradients():
    model = small_model().train()
    loss_fn = MoMELoss(model.config)
    out = model.forward_train(torch.randn(2, 16, 32), torch.randn(2, 16, 32))
    losses = loss_fn(out, torch.tensor([0.0, 0, 1, 1]))
    losses["loss"].backward()
    assert "external" not in dict(model.named_parameters())
    before = model.anomaly_experts.external.clone()
    model.after_step(out)
    assert not torch.equal(before, model.anomaly_experts.external)
    assert all(p.grad is not None for n, p in model.named_parameters() if "latent" in n or "router" in n)


# ---------------------------------------------------------------- losses
def test_each_loss_term_against_an_independent_computation():
    model = small_model(seed=3).train()
    c = model.config
    out = model.forward_train(torch.randn(2, 16, 32), torch.randn(2, 16, 32))
    got = MoMELoss(c)(out, torch.tensor([0.0, 0, 1, 1]))
    b, k = out.batch, 16 // 16 + 1
    scores = b.scores
    # Anomaly filter: the T_a abnormal snippets with the lowest normal-memory match.
    sn = b.normal.score.reshape(4, 16)
    assert torch.equal(out.filtered.sort(1).values, torch.topk(-sn[2:], k, 1).indices.sort(1).values)
    bce = lambda x, y: -(y * torch.log(x) + (1 - y) * torch.log(1 - x)).mean()  # noqa: E731
    top = torch.topk(scores[2:], k, 1).values
    torch.testing.assert_close(got["cls"], bce(scores[:2], 0.0) + bce(top, 1.0))
    sa = b.anomaly.score.reshape(4, 16)
    pick = lambda m: torch.stack([m[2 + i, out.filtered[i]] for i in range(2)])  # noqa: E731
    memory = bce(sn[:2], 1.0) + bce(pick(sn), 0.0) + bce(pick(sa), 1.0) + bce(sa[:2], 0.0)
    torch.testing.assert_close(got["memory"], memory)
    imp_n, imp_a = b.normal_route.probs.sum(0), b.anomaly_route.probs.sum(0)
    cv2 = lambda v: v.var(unbiased=False) / v.mean() ** 2  # noqa: E731
    torch.testing.assert_close(got["balance"], cv2(imp_n) + cv2(imp_a))
    a = torch.softmax(model.anomaly_router.apr.assignment_logits, -1)
    reg = (a * a.log()).sum(-1).mean() + ((a @ a.t() - torch.eye(3)) ** 2).sum() + cv2(a.sum(0))
    torch.testing.assert_close(got["reg"], reg)
    dists = []
    for bank in (model.normal_experts, model.anomaly_experts):
        m = F.normalize(bank.internal, dim=-1).flatten(1)
        e = m.shape[0]
        dists.append(sum((m[i] - m[j]).abs().mean() for i in range(e) for j in range(e) if i != j) / (e * (e - 1)))
    torch.testing.assert_close(got["div"], -0.5 * (dists[0] + dists[1]))
    target = b.temporal.reshape(-1, 16).detach()
    rows = torch.cat([out.filtered[i] + (2 + i) * 16 for i in range(2)])
    rec = (F.mse_loss(model.normal_decoder(b.normal.h[:32]), target[:32])
           + F.mse_loss(model.anomaly_decoder(b.anomaly.h[rows]), target[rows]))
    torch.testing.assert_close(got["rec"], rec)
    total = got["cls"] + got["memory"] + c.w_balance * got["balance"] + c.w_reg * got["reg"] + c.w_div * got["div"] + c.w_rec * got["rec"]
    torch.testing.assert_close(got["loss"], total)
    assert 1.0 <= float(got["load_normal_max"]) <= 4.0


def test_cv_squared_is_zero_when_balanced():
    assert float(cv_squared(torch.full((8,), 3.0))) == 0.0
    assert float(cv_squared(torch.tensor([1.0, 0, 0, 0]))) == pytest.approx(3.0)


def test_paper_lr_schedule_is_a_function_of_the_step():
    cfg = TrainConfig(lr=1e-4, lr_milestones=[127], lr_gamma=0.5)
    assert [lr_at(cfg, s) for s in (0, 126, 127, 1000)] == [1e-4, 1e-4, 5e-5, 5e-5]


def test_xd_preset_has_the_paper_weights():
    c = MoMEConfig.xd()
    assert (c.w_balance, c.w_reg, c.w_div, c.w_rec) == (7e-5, 4e-5, 2e-5, 7e-4) and c.lgt_window == 64 and c.lgt_layers == 1
    u = MoMEConfig()
    assert (u.w_balance, u.w_reg, u.w_div, u.w_rec, u.tau, u.internal_slots, u.external_rate) == (1e-2, 1, 1e-5, 1e-3, 3e-3, 60, 1e-3)


def test_full_size_model_matches_the_paper_scale():
    model = MoME(MoMEConfig())
    inference = sum(p.numel() for n, p in model.named_parameters() if "decoder" not in n)
    assert abs(inference / 1e6 - 42.29) < 1.0  # paper Table 2: 42.29 M


def test_checkpoint_keeps_prototypes_and_external_memory(tmp_path):
    model = small_model()
    with torch.no_grad():
        model.anomaly_router.apr.prototypes.normal_()
        model.normal_experts.external.add_(1.0)
    save_checkpoint(tmp_path / "m.safetensors", model)
    loaded, info = load_model(tmp_path / "m.safetensors")
    assert info.model == "mome"
    x = torch.randn(1, 20, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model.eval()(x))


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_demo_training_reaches_auc_and_balanced_load(tmp_path, capsys):
    out = tmp_path / "mome"
    assert train_main(["--model", "mome", "--demo", "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "best_report.json").read_text())
    assert report["auc"] >= 0.85, report["auc"]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"load_normal_max", "load_anomaly_max", "balance"} <= set(log[-1])
    data = out / "synthetic_data"
    capsys.readouterr()
    assert eval_main(["--ckpt", str(out / "best.safetensors"), "--test-list", str(data / "test.list"), "--root", str(data),
                      "--gt", str(data / "test_gt.npz"), "--expert-load", "--json", str(tmp_path / "r.json")]) == 0
    loads = {k: np.array(v) for k, v in json.loads((tmp_path / "r.json").read_text())["expert_load"].items()}
    # The normal mixture is routed by a latent router under L_b: no expert above 3x its fair share.
    assert loads["normal"].max() <= 3 * loads["normal"].mean(), loads["normal"]
    # The anomaly mixture's explicit half is routed by class prototypes (the APR), so its load follows the
    # synthetic set's 4 classes rather than L_b; what must hold is no collapse onto one or a few experts.
    anomaly = loads["anomaly"]
    assert anomaly.max() <= 0.5 * anomaly.sum() and (anomaly > 0).sum() >= 4, anomaly


# ---------------------------------------------------------------- paper configuration and prototypes
def test_default_is_the_papers_expert_set_and_the_old_one_is_named():
    from vadedge.train.models.mome import EXPERT_SETS

    c = MoMEConfig()
    assert (c.normal_experts, c.explicit_experts, c.implicit_anomaly_experts) == (24, 12, 12)
    assert c.explicit_experts / c.anomaly_experts == 0.5
    model = MoME(c)
    assert model.anomaly_router.apr is not None and model.anomaly_router.latent is not None  # both routers: fuser on
    old = MoMEConfig.with_experts("explicit-only")
    assert (old.normal_experts, old.explicit_experts, old.implicit_anomaly_experts, old.expert_hidden) == (12, 12, 0, 1408)
    for name in EXPERT_SETS:  # both at the paper's scale
        m = MoME(MoMEConfig.with_experts(name))
        assert abs(sum(p.numel() for n, p in m.named_parameters() if "decoder" not in n) / 1e6 - 42.29) < 1.0
    with pytest.raises(VadInputError, match="expert set"):
        MoMEConfig.with_experts("all-implicit")


def test_checkpoint_config_without_new_fields_keeps_its_expert_set():
    from vadedge.train.config import config_from_dict, config_to_dict

    old = config_to_dict(MoMEConfig.with_experts("explicit-only"))
    old.pop("prototype_classes")  # a checkpoint written before the field existed
    c = config_from_dict(MoMEConfig, old)
    assert (c.normal_experts, c.implicit_anomaly_experts, c.prototype_classes) == (12, 0, [])


def _write_shared_style(ucf_dir):
    return ucf_dir / "class_prompts_clip_vitb16.npy", ucf_dir / "class_prompts.txt"


def test_prototype_files_from_public_code(ucf_dir, tmp_path):
    from vadedge.train.data.prototypes import load_prototypes

    emb, names = _write_shared_style(ucf_dir)
    full = np.load(emb)
    p = load_prototypes(emb, names)  # CLIP class embeddings + names: 'normal event' dropped
    assert p.embeddings.shape == (13, 512) and p.classes[0] == "abuse" and "normal event" not in p.classes
    np.testing.assert_array_equal(p.embeddings, full[1:])
    np.save(tmp_path / "ucf-prompt.npy", full)  # PEL4VAD style: normal first, dropped by name convention
    np.testing.assert_array_equal(load_prototypes(tmp_path / "ucf-prompt.npy").embeddings, full[1:])
    assert load_prototypes(tmp_path / "ucf-prompt.npy", drop_rows=[]).embeddings.shape == (14, 512)
    rng = np.random.default_rng(0)
    expanded = rng.normal(size=(13, 4, 512)).astype(np.float32)  # 4 prototypes per class
    np.save(tmp_path / "expanded.npy", expanded)
    with pytest.raises(VadInputError, match="expanded.npy: rows have no class names"):
        load_prototypes(tmp_path / "expanded.npy")  # unnamed rows: which is normal is unknown
    p = load_prototypes(tmp_path / "expanded.npy", drop_rows=[])
    assert p.embeddings.shape == (52, 512) and p.classes[:5] == ["class0"] * 4 + ["class1"]
    np.savez(tmp_path / "per_class.npz", normal=full[0], Abuse=expanded[0, :3], Arson=expanded[1, :1])
    p = load_prototypes(tmp_path / "per_class.npz")
    assert p.classes == ["Abuse"] * 3 + ["Arson"] and p.embeddings.shape == (4, 512)
    (tmp_path / "names.txt").write_text("a\nb\n")
    with pytest.raises(VadInputError, match="2 names for 14 embedding rows"):
        load_prototypes(emb, tmp_path / "names.txt")
    np.save(tmp_path / "bad.npy", np.zeros((3, 512), np.float32))
    with pytest.raises(VadInputError, match="bad.npy: prototype embeddings contain NaN, inf or all-zero rows"):
        load_prototypes(tmp_path / "bad.npy", drop_rows=[])


@pytest.fixture(scope="module")
def clip_data(tmp_path_factory):
    from vadedge.train.data.synthetic import SyntheticSpec, write_dataset

    spec = SyntheticSpec(feature_dim=512, crops=1, train_normal=8, train_abnormal=8, test_normal=3, test_abnormal=3, min_len=16, max_len=24)
    return write_dataset(tmp_path_factory.mktemp("clip"), spec)


def _mome_args(split_args, data, out, *extra):
    return ["--model", "mome", *split_args(data, out), "--set", "embed_dim=16", "--set", "expert_hidden=8", "--set", "lgt_layers=1", "--set", "lgt_max_len=16",
            "--set", "head_hidden=8", "--set", "internal_slots=10", "--set", "external_slots=10",
            "--iterations", "2", "--batch-normal", "2", "--batch-abnormal", "2", "--seq-len", "16", "--eval-every", "2", *extra]


def test_cli_requires_prototypes_and_loads_them_into_the_checkpoint(ucf_dir, clip_data, tmp_path, capsys, split_args):
    emb, names = _write_shared_style(ucf_dir)
    assert train_main(_mome_args(split_args, clip_data, tmp_path / "none")) == 2
    assert "--prototypes is required" in capsys.readouterr().err
    assert train_main(_mome_args(split_args, clip_data, tmp_path / "run", "--prototypes", str(emb), "--prototype-names", str(names))) == 0
    model, info = load_model(tmp_path / "run" / "best.safetensors")
    c = model.config
    assert (c.normal_experts, c.explicit_experts, c.implicit_anomaly_experts, c.num_prototypes) == (24, 12, 12, 13)
    assert c.prototype_classes[0] == "abuse" and c.prototypes_file == str(emb)
    np.testing.assert_allclose(model.anomaly_router.apr.prototypes.numpy(),
                               F.normalize(torch.from_numpy(np.load(emb)[1:]), dim=-1).numpy(), atol=1e-6)
    assert train_main(_mome_args(split_args, clip_data, tmp_path / "old", "--prototypes", str(emb), "--prototype-names", str(names),
                                 "--expert-set", "explicit-only")) == 0
    assert load_model(tmp_path / "old" / "best.safetensors")[0].config.implicit_anomaly_experts == 0
