"""Temporal layers: Conv1d snippet embedding and the GL-MHSA transformer (UR-DMU Eq. 1-2)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .folding import FoldCache, exporting, folding

LOCAL_NORMS = ("column", "row")


class ConvEmbedding(nn.Module):
    """Conv1d over time (kernel 3, same padding) + ReLU: [B, T, in] -> [B, T, out]."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)


def local_distance_matrix(t: int, tau: float, norm: str, device=None, dtype=None) -> torch.Tensor:
    """The fixed (non-learned) local attention matrix exp(-|i-j| / e^tau), normalised: [T, T].

    ``norm="row"`` is the paper's softmax(T_m) (rows sum to 1). ``norm="column"`` is the official
    code's ``attn2 / attn2.sum(-1)``: the sum broadcasts over the last axis, so columns sum to 1.
    The two differ only near the sequence ends (the matrix is symmetric Toeplitz). This dense form
    is the reference and the ONNX export's graph; ``local_attention`` applies it in O(T).
    """
    pos = torch.arange(t, device=device, dtype=dtype or torch.float32)
    weight = torch.exp(-(pos[None, :] - pos[:, None]).abs() / math.exp(tau))
    if norm == "row":
        return weight / weight.sum(-1, keepdim=True)
    if norm == "column":
        return weight / weight.sum(-2, keepdim=True)
    raise ValueError(f"local_norm must be one of {LOCAL_NORMS}, got {norm!r}")


SCAN_BLOCK = 64  # snippets per block of the chunked scan: cost O(T * SCAN_BLOCK) per channel


def decay_scan(x: torch.Tensor, log_r: float, block: int = SCAN_BLOCK) -> torch.Tensor:
    """Causal first-order recursion y[i] = x[i] + r * y[i-1] along dim -2 of x [..., T, C], r = exp(log_r) < 1.

    Computed as a chunked scan (as in linear-attention / SSM kernels): inside each block of ``block``
    snippets one matmul with the lower-triangular matrix r^(i-j); across blocks the carried state
    decays by r^block, itself a first-order recursion over blocks, solved by the same function.
    Exact (no truncation of the kernel), O(T * block) work, no [T, T] tensor.
    """
    t = x.shape[-2]
    pos = torch.arange(min(t, block), device=x.device, dtype=x.dtype)
    diff = pos[:, None] - pos[None, :]
    tri = torch.where(diff >= 0, torch.exp(diff.clamp_min(0) * log_r), torch.zeros((), dtype=x.dtype, device=x.device))
    if t <= block:
        return torch.matmul(tri, x)
    n = -(-t // block)
    xb = F.pad(x, (0, 0, 0, n * block - t)).unflatten(-2, (n, block))  # [..., n, block, C]
    local = torch.matmul(tri, xb)
    # State leaving block b (all earlier inputs included), shifted so block b reads block b-1's.
    state = decay_scan(local[..., -1, :], log_r * block, block)
    state = F.pad(state[..., :-1, :], (0, 0, 1, 0))
    local = local + torch.exp((pos + 1) * log_r)[:, None] * state.unsqueeze(-2)
    return local.flatten(-3, -2)[..., :t, :]


def local_weight_sums(t: int, log_r: float, device=None, dtype=None) -> torch.Tensor:
    """Row (= column: the kernel is symmetric) sums of exp(-|i-j| / e^tau) in closed form: [T].

    sum_j r^|i-j| = (1 - r^(i+1) + 1 - r^(T-i)) / (1 - r) - 1 (two geometric series sharing j = i).
    """
    i = torch.arange(t, device=device, dtype=torch.float64)
    r = math.exp(log_r)
    sums = (2 - torch.exp((i + 1) * log_r) - torch.exp((t - i) * log_r)) / (1 - r) - 1
    return sums.to(dtype or torch.float32)


def local_attention(x: torch.Tensor, tau: float, norm: str) -> torch.Tensor:
    """``local_distance_matrix(T, tau, norm) @ x`` for x [..., T, C] in O(T) memory and time.

    The symmetric kernel r^|i-j| (r = exp(-1/e^tau)) is a forward plus a backward first-order
    recursion minus the shared diagonal; the normalisers are closed-form (``local_weight_sums``):
    "row" divides the output rows, "column" divides the inputs (column j is scaled by 1/s_j).
    """
    if norm not in LOCAL_NORMS:
        raise ValueError(f"local_norm must be one of {LOCAL_NORMS}, got {norm!r}")
    log_r = -1.0 / math.exp(tau)
    sums = local_weight_sums(x.shape[-2], log_r, x.device, x.dtype)[:, None]
    if norm == "column":
        x = x / sums
    both = decay_scan(x, log_r) + decay_scan(x.flip(-2), log_r).flip(-2) - x
    return both / sums if norm == "row" else both


class GLAttention(nn.Module):
    """Global + local multi-head self-attention: [B, T, dim] -> [B, T, dim].

    One projection gives q, k, v (global branch, scaled dot-product softmax) and t (local branch,
    multiplied by the fixed distance matrix). Per head the two outputs are concatenated, then all
    heads go through one output projection, as in the official code (so its weights load as is).
    The global branch uses fused ``scaled_dot_product_attention`` (memory linear in T); the local
    branch uses ``local_attention`` (O(T)), except in export, which keeps the dense matrix (the
    scan's recursion depth depends on T, which a dynamic-T export cannot trace).

    Test path (no grad): the distance matrix is the same for every head and acts on time only, so
    the local branch's t projection and its share of the output projection fold into one
    [dim, dim] matrix applied after ``local_attention`` of the input itself (``folding``).
    """

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float, local_tau: float, local_norm: str):
        super().__init__()
        if local_norm not in LOCAL_NORMS:
            raise ValueError(f"local_norm must be one of {LOCAL_NORMS}, got {local_norm!r}")
        self.heads, self.head_dim = heads, head_dim
        self.local_tau, self.local_norm = local_tau, local_norm
        inner = heads * head_dim
        self.qkvt = nn.Linear(dim, 4 * inner, bias=False)
        self.proj = nn.Linear(2 * inner, dim)
        self.drop = nn.Dropout(dropout)
        self._fold = FoldCache()

    def _heads(self, part: torch.Tensor) -> torch.Tensor:
        """[B, T, inner] -> [B, H, T, head_dim]."""
        return part.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if folding():
            return self.drop(self._folded(x))
        b, t, _ = x.shape
        q, k, v, loc = (self._heads(part) for part in self.qkvt(x).chunk(4, dim=-1))
        glob = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head_dim), as the official code
        if exporting():
            local = torch.matmul(local_distance_matrix(t, self.local_tau, self.local_norm, x.device, x.dtype), loc)
        else:
            local = local_attention(loc, self.local_tau, self.local_norm)
        out = torch.cat([glob, local], dim=-1)  # [B, H, T, 2*hd]
        out = out.transpose(1, 2).reshape(b, t, 2 * self.heads * self.head_dim)
        return self.drop(self.proj(out))

    def _fold_weights(self, qkvt: torch.Tensor, proj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """qkv weight [3 inner, dim], global share of proj (transposed) [inner, dim], local fold [dim, dim]:
        sum over heads of t_h's weight then proj's local columns of head h."""
        inner = self.heads * self.head_dim
        per_head = proj.reshape(proj.shape[0], self.heads, 2, self.head_dim)  # proj input = per head [glob, local]
        w_glob = per_head[:, :, 0].reshape(-1, inner)
        w_local = per_head[:, :, 1].reshape(-1, inner) @ qkvt[3 * inner:]  # [dim, dim]
        return qkvt[: 3 * inner], w_glob.T, w_local.T

    def _folded(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        w_qkv, w_glob, w_local = self._fold.get((self.qkvt.weight, self.proj.weight), self._fold_weights)
        q, k, v = F.linear(x, w_qkv).unflatten(-1, (3, self.heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        glob = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b * t, -1)
        out = torch.addmm(self.proj.bias, glob, w_glob)
        out = torch.addmm(out, local_attention(x, self.local_tau, self.local_norm).reshape(b * t, d), w_local)
        return out.reshape(b, t, -1)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(nn.functional.gelu(self.fc1(x)))))


class GLTransformerBlock(nn.Module):
    """Pre-norm block: x + attn(LN x), then x + ffn(LN x) (the official code's PreNorm form)."""

    def __init__(self, dim, heads, head_dim, mlp_dim, dropout, local_tau, local_norm):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = GLAttention(dim, heads, head_dim, dropout, local_tau, local_norm)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, mlp_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.ffn(self.ffn_norm(x))


class GLTransformer(nn.Module):
    def __init__(self, dim, depth, heads, head_dim, mlp_dim, dropout=0.0, local_tau=1.0, local_norm="column"):
        super().__init__()
        self.blocks = nn.ModuleList(
            GLTransformerBlock(dim, heads, head_dim, mlp_dim, dropout, local_tau, local_norm) for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x
