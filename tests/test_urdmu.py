"""UR-DMU: shapes, each loss term, paper/official options, and import of official checkpoints."""

import math

import pytest
import torch
from torch import nn

from official_urdmu import OfficialURDMU
from vadedge.train.cli import convert_main
from vadedge.train.checkpoint import load_model
from vadedge.train.layers import local_distance_matrix
from vadedge.train.losses import URDMULoss, gaussian_kl
from vadedge.train.models import URDMU, URDMUConfig, create_model

SMALL = dict(feature_dim=24, dim=16, heads=2, head_dim=8, mlp_dim=16, head_hidden=8, normal_slots=20, abnormal_slots=12)


def test_published_size_and_shapes():
    model = create_model("urdmu").eval()
    assert 6.4e6 < sum(p.numel() for p in model.parameters()) < 6.6e6  # "about 6.5 M"
    assert model(torch.randn(2, 37, 1024)).shape == (2, 37)
    assert model(torch.randn(1, 1, 1024)).shape == (1, 1)  # T = 1
    x = torch.randn(1, 3, 11, 1024)  # crops are averaged
    assert torch.allclose(model(x), model(x[0]).mean(0, keepdim=True), atol=1e-6)


def test_test_path_is_deterministic_and_in_unit_interval():
    model = URDMU(URDMUConfig(**SMALL)).eval()
    x = torch.randn(3, 50, 24)
    a, b = model(x), model(x)
    assert torch.equal(a, b) and (a >= 0).all() and (a <= 1).all()


@pytest.mark.parametrize("norm,axis", [("row", -1), ("column", -2)])
def test_local_matrix_normalisation(norm, axis):
    m = local_distance_matrix(9, 1.0, norm)
    assert torch.allclose(m.sum(axis), torch.ones(9))
    # Within one normalised line, neighbours keep the exp(-|i-j| / e) ratio.
    ratio = m[0, 1] / m[0, 0] if norm == "row" else m[1, 0] / m[0, 0]
    assert ratio.item() == pytest.approx(math.exp(-1 / math.e), rel=1e-5)


def test_train_outputs_and_every_loss_term():
    torch.manual_seed(0)
    cfg = URDMUConfig(**SMALL)
    model = URDMU(cfg).train()
    out = model.forward_train(torch.randn(3, 40, 24), torch.randn(3, 40, 24))
    assert out.scores.shape == (6, 40) and out.a_att.shape == (3, 40) and out.anchor.shape == (3, 16)
    labels = torch.tensor([0.0, 0, 0, 1, 1, 1])
    losses = URDMULoss(cfg)(out, labels)
    k = 40 // 16 + 1
    bce = nn.functional.binary_cross_entropy
    tk = lambda x: x.topk(k, -1).values.mean(-1)  # noqa: E731
    assert losses["cls"].item() == pytest.approx(bce(tk(out.scores), labels).item(), rel=1e-6)
    ones = torch.ones(3)
    memory = bce(tk(out.a_att), ones) + bce(tk(1 - out.n_a_att), ones) + bce(out.n_att, torch.ones(3, 40)) + bce(out.a_n_att, torch.zeros(3, 40))
    assert losses["memory"].item() == pytest.approx(memory.item(), rel=1e-6)
    norm = nn.functional.normalize
    trip = nn.TripletMarginLoss(margin=1.0)(norm(out.anchor, dim=-1), norm(out.positive, dim=-1), norm(out.negative, dim=-1))
    assert losses["triplet"].item() == pytest.approx(trip.item(), rel=1e-6)
    kl = torch.mean(-0.5 * torch.sum(1 + out.logvar - out.mu**2 - out.logvar.exp(), dim=1))  # official, over time
    assert losses["kl"].item() == pytest.approx(kl.item(), rel=1e-6)
    dist = torch.relu(100 - out.abnormal_latent.norm(dim=-1) + out.normal_latent.norm(dim=-1)).mean()
    assert losses["distance"].item() == pytest.approx(dist.item(), rel=1e-6)
    total = losses["cls"] + 0.1 * losses["memory"] + 0.1 * losses["triplet"] + 1e-3 * losses["kl"] + 1e-4 * losses["distance"]
    assert losses["loss"].item() == pytest.approx(total.item(), rel=1e-6)
    losses["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())


def test_paper_preset_uses_paper_formulas():
    cfg = URDMUConfig.paper(**SMALL)
    assert (cfg.local_norm, cfg.kl_reduction, cfg.distance_norm, cfg.memory_positive) == ("row", "feature_mean", "squared_l2", "direct")
    mu, logvar = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    paper_kl = (-1 / (2 * 4) * (1 + logvar - mu**2 - logvar.exp()).sum(-1)).mean()
    assert gaussian_kl(mu, logvar, "feature_mean") == pytest.approx(paper_kl.item(), rel=1e-6)
    torch.manual_seed(1)
    model = URDMU(cfg).train()
    out = model.forward_train(torch.randn(2, 20, 24), torch.randn(2, 20, 24))
    losses = URDMULoss(cfg)(out, torch.tensor([0.0, 0, 1, 1]))
    dist = torch.relu(100 - out.abnormal_latent.norm(dim=-1) ** 2 + out.normal_latent.norm(dim=-1) ** 2).mean()
    assert losses["distance"].item() == pytest.approx(dist.item(), rel=1e-6)


def test_official_checkpoint_import_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    official = OfficialURDMU(f=64, d=32, heads=4, dh=8, mlp=32, slots=60).eval()
    torch.save(official.official_state_dict(), tmp_path / "ucf_trans_2022.pkl")
    assert convert_main([str(tmp_path / "ucf_trans_2022.pkl"), str(tmp_path / "urdmu.safetensors")]) == 0
    model, info = load_model(tmp_path / "urdmu.safetensors")
    assert (model.config.feature_dim, model.config.dim, model.config.head_dim, model.config.head_hidden) == (64, 32, 8, 128)
    for t in (1, 17, 200):
        x = torch.randn(2, t, 64)
        with torch.no_grad():
            torch.testing.assert_close(model(x), official(x), rtol=1e-5, atol=1e-6)


def test_import_rejects_foreign_and_pickled_objects(tmp_path, capsys):
    torch.save({"backbone.weight": torch.zeros(2)}, tmp_path / "other.pkl")
    assert convert_main([str(tmp_path / "other.pkl"), str(tmp_path / "o.safetensors")]) == 2
    assert "backbone.weight" in capsys.readouterr().err
    torch.save({"state": object()}, tmp_path / "evil.pkl")  # needs full unpickling: refused
    assert convert_main([str(tmp_path / "evil.pkl"), str(tmp_path / "o.safetensors")]) == 2
    assert "weights_only" in capsys.readouterr().err
