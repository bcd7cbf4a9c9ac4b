"""Linear-memory offline scoring: the O(T) local branch, fused global attention and bounded crop groups
give the same scores as the dense formulation they replaced (issue 16)."""

import math
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F

from export_models import small_model
from vadedge.train.layers.experts import ExpertBank
from vadedge.train.layers.temporal import GLAttention, decay_scan, local_attention, local_distance_matrix, local_weight_sums
from vadedge.train.models import URDMUConfig, create_model
from vadedge.train.models.crops import mean_over_crops
from vadedge.train.models.gsmoe import Gate

LENGTHS = (1, 2, 7, 63, 64, 65, 129, 1031, 4099)  # around the scan's block of 64, and lengths that divide nothing


def dense_gl_forward(self, x):
    """GLAttention.forward as it was before issue 16: explicit softmax and the dense local matrix."""
    b, t, _ = x.shape
    q, k, v, loc = (p.reshape(b, t, self.heads, self.head_dim).transpose(1, 2) for p in self.qkvt(x).chunk(4, dim=-1))
    attn = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim), dim=-1)
    local = local_distance_matrix(t, self.local_tau, self.local_norm, device=x.device, dtype=x.dtype)
    out = torch.cat([torch.matmul(attn, v), torch.matmul(local, loc)], dim=-1)
    return self.drop(self.proj(out.transpose(1, 2).reshape(b, t, 2 * self.heads * self.head_dim)))


def expanded_experts_forward(self, x):
    """ExpertBank.forward as it was: a shared input expanded to every expert."""
    if x.dim() == 3:
        x = x.unsqueeze(0).expand(self.experts, -1, -1, -1)
    h = self.block(self.proj(x))
    return torch.sigmoid(self.head2(F.gelu(self.head1(h)))).squeeze(-1)


@pytest.fixture
def dense(monkeypatch):
    """Switch the models back to the dense formulation (call it to apply)."""
    def apply():
        monkeypatch.setattr(GLAttention, "forward", dense_gl_forward)
        monkeypatch.setattr(ExpertBank, "forward", expanded_experts_forward)
        monkeypatch.setattr(Gate, "_block", lambda self, s: self.block(s))  # nn.TransformerEncoderLayer's own forward
    return apply


@pytest.mark.parametrize("t", [1, 5, 64, 65, 200, 1000])
def test_decay_scan_is_the_first_order_recursion(t):
    x = torch.randn(3, t, 4, dtype=torch.float64)
    r = math.exp(-1 / math.e)
    want, acc = torch.empty_like(x), torch.zeros(3, 4, dtype=torch.float64)
    for i in range(t):
        acc = x[:, i] + r * acc
        want[:, i] = acc
    torch.testing.assert_close(decay_scan(x, math.log(r), block=16), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tau", [0.0, 1.0, 4.0])  # e^4 = 55: the kernel spans several scan blocks
def test_closed_form_normalisers(tau):
    for t in (1, 2, 65, 300):
        weight = torch.exp(-(torch.arange(t)[None] - torch.arange(t)[:, None]).abs().double() / math.exp(tau))
        torch.testing.assert_close(local_weight_sums(t, -1 / math.exp(tau), dtype=torch.float64), weight.sum(-1))


@pytest.mark.parametrize("norm", ["column", "row"])
@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_local_attention_equals_dense_matrix(norm, tau):
    for t in LENGTHS:
        x = torch.randn(2, 3, t, 8)
        got = local_attention(x, tau, norm)
        want = local_distance_matrix(t, tau, norm) @ x
        assert (got - want).abs().max().item() <= 1e-5, (t, norm, tau)


@pytest.mark.parametrize("norm", ["column", "row"])
def test_urdmu_scores_equal_dense(norm, dense):
    torch.manual_seed(0)
    cfg = URDMUConfig(feature_dim=48, dim=32, heads=2, head_dim=16, mlp_dim=32, head_hidden=16, local_norm=norm)
    model = create_model("urdmu", cfg).eval()
    xs = [torch.randn(2, t, 48) for t in LENGTHS[:-1] + (2053,)]
    with torch.no_grad():
        fast = [model(x) for x in xs]
        dense()
        for x, f in zip(xs, fast):
            assert (f - model(x)).abs().max().item() <= 1e-5, x.shape


@pytest.mark.parametrize("name", ["urdmu", "gsmoe", "mome"])
def test_all_models_score_as_before_with_crops(name, dense):
    """Three models, several T, 10 crops (whole, and in groups of at most 700 snippets) vs today's one dense batch
    (MoME: its test path now dispatches sparsely; today's was the dense gather of every expert)."""
    model = small_model(name)
    xs = [torch.randn(1, 10, t, 64) for t in (1, 9, 65, 333)]
    with torch.no_grad():
        fast = [(model(x), mean_over_crops(model, x, max_snippets=700)) for x in xs]
        dense()
        for x, (whole, grouped) in zip(xs, fast):
            want = (model(x[0], sparse=False) if name == "mome" else model(x[0])).mean(0, keepdim=True)
            assert (whole - want).abs().max().item() <= 1e-5 and (grouped - want).abs().max().item() <= 1e-5, (name, x.shape)


def peak_rss_growth_mib(setup: str, call: str) -> int:
    """Peak RSS growth (MiB) of a fresh 1-thread process over ``call`` (an expression scoring a sequence of
    T snippets into s [1, T]; T from the input), after ``setup``; the scores must be finite."""
    code = (f"import resource, torch\ntorch.set_num_threads(1)\n{setup}\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"with torch.inference_mode():\n    s = {call}\n"
            "assert s.dim() == 2 and torch.isfinite(s).all()\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)\n")
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def test_memory_is_linear_in_t():
    """T = 16,384 through a narrow UR-DMU: the dense form held [B, H, T, T] float32 logits (1 GiB per head);
    the peak RSS of the whole process must stay far below one such matrix."""
    grown_mib = peak_rss_growth_mib(
        "from vadedge.train.models import URDMUConfig, create_model\n"
        "m = create_model('urdmu', URDMUConfig(feature_dim=16, dim=16, heads=1, head_dim=8, mlp_dim=16, normal_slots=4,"
        " abnormal_slots=4, head_hidden=8)).eval()", "m(torch.randn(1, 16384, 16))")
    assert grown_mib < 256, f"peak RSS grew by {grown_mib} MiB at T=16384 (one dense T x T float32 matrix is 1024 MiB)"


@pytest.mark.parametrize("norm", ["column", "row"])
def test_folded_test_path_equals_the_layers(norm):
    """No-grad scoring folds the local branch into one [dim, dim] matrix and memory -> enc_mu -> head into
    [slots, hidden] (issue 16): same scores as the layers as written (the grad path), at T that divide nothing,
    with unequal memory sizes, and still after the weights change in place (the fold is rebuilt)."""
    torch.manual_seed(0)
    cfg = URDMUConfig(feature_dim=48, dim=32, heads=2, head_dim=16, mlp_dim=32, head_hidden=16, local_norm=norm,
                      abnormal_slots=7, normal_slots=5)
    model = create_model("urdmu", cfg).eval()
    for t in (1, 2, 63, 65, 333, 1031):
        x = torch.randn(2, 3, t, 48)
        with torch.inference_mode():
            folded = model(x)
        layers = model(x).detach()  # grad enabled: the unfolded layers
        assert (folded - layers).abs().max().item() <= 1e-5, t
    with torch.no_grad():
        for p in (model.head.fc1.weight, model.normal_memory.memory, model.temporal.blocks[1].attn.proj.weight):
            p.mul_(1.5)
        before = model(x)
    assert (before - model(x).detach()).abs().max().item() <= 1e-5


@pytest.mark.parametrize("t", [1, 37, 301])
def test_expert_groups_score_as_one_pass(t):
    """GS-MoE's experts on a shared input in groups of 1 and of 2 experts (13 = 6 x 2 + 1) == all at once,
    so a long video holds one group's activations, not E x T (issue 16)."""
    torch.manual_seed(0)
    bank = ExpertBank(13, 24, 16).eval()
    x = torch.randn(2, t, 24)
    with torch.no_grad():
        whole = bank(x)
        for per_group in (1, 2):
            got = bank(x, max_snippets=per_group * 2 * t)
            assert got.shape == whole.shape == (13, 2, t)
            assert (got - whole).abs().max().item() <= 1e-6, per_group


def test_gsmoe_gate_memory_is_linear_in_t():
    """GS-MoE's gate block at T = 8,192: nn.TransformerEncoderLayer's no-grad fast path held [B, heads, T, T]
    float32 weights (1 GiB here); the test path must stay far below one such matrix."""
    grown_mib = peak_rss_growth_mib("from vadedge.train.models.gsmoe import Gate\ng = Gate(3, 8, 16, 4, 0.1, True).eval()",
                                    "g(torch.rand(1, 8192, 3), torch.randn(1, 8192, 8))")
    assert grown_mib < 256, f"peak RSS grew by {grown_mib} MiB at T=8192 (one [4, T, T] float32 tensor is 1024 MiB)"
