"""LGT-Adapter (VadCLIP; MoME supplementary §A.1): local windowed attention + a one-weight GCN.

Sequences are processed in chunks of ``max_len`` snippets (VadCLIP's learned positions cover 256;
its test protocol splits longer videos into chunks of 256). A chunk shorter than ``max_len`` is
padded to a multiple of the window and the padding is masked out of attention and both adjacency
softmaxes, so a video scored whole or chunk by chunk gives the same numbers as VadCLIP's
padded-and-length-masked batches.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

MASKED = -1e4  # finite: a fully padded window must not produce NaN (its rows are discarded anyway)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class WindowAttentionBlock(nn.Module):
    """CLIP residual attention block with self-attention inside non-overlapping temporal windows.

    Equivalent to VadCLIP's block-diagonal -inf mask over the full sequence, but computed per window
    (cost O(T·w) instead of O(T²)).
    """

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"LGT dim {dim} is not divisible by heads {heads}")
        self.heads, self.window = heads, window
        self.ln_1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), QuickGELU(), nn.Linear(4 * dim, dim))

    def attention(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape  # t is a multiple of the window
        w, h = self.window, self.heads
        q, k, v = self.qkv(x).reshape(b, t // w, w, 3, h, d // h).permute(3, 0, 1, 4, 2, 5)  # [B, nW, H, w, dh]
        logits = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d // h)
        key_ok = valid.reshape(b, t // w, 1, 1, w)
        attn = torch.softmax(logits.masked_fill(~key_ok, MASKED), dim=-1)
        out = torch.matmul(attn, v).permute(0, 1, 3, 2, 4).reshape(b, t, d)
        return self.proj(out)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln_1(x), valid)
        return x + self.mlp(self.ln_2(x))


def masked_row_softmax(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Row softmax of [B, T, T] over the valid columns only."""
    return torch.softmax(logits.masked_fill(~valid[:, None, :], MASKED), dim=-1)


class GlobalGCN(nn.Module):
    """``X_g = GELU([Softmax(H_sim); Softmax(H_dis)] X_l W)`` with W ∈ R^{2d×d} the only weight (Eq. 1-3).

    H_sim: cosine similarity with values <= ``threshold`` set to 0 (VadCLIP's ``F.threshold``; the
    zeros still take part in the softmax, as coded there). H_dis(i, j) = -|i-j| / sigma.
    """

    def __init__(self, dim: int, threshold: float, sigma: float):
        super().__init__()
        self.threshold, self.sigma = threshold, sigma
        self.weight = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        xn = F.normalize(x, dim=-1, eps=1e-8)
        sim = torch.matmul(xn, xn.transpose(1, 2))
        sim = torch.where(sim > self.threshold, sim, torch.zeros_like(sim))
        pos = torch.arange(x.shape[1], device=x.device, dtype=x.dtype)
        dis = -(pos[None, :] - pos[:, None]).abs() / self.sigma
        a_sim = masked_row_softmax(sim, valid)
        a_dis = masked_row_softmax(dis.expand(x.shape[0], -1, -1), valid)
        return F.gelu(self.weight(torch.cat([torch.matmul(a_sim, x), torch.matmul(a_dis, x)], dim=-1)))


class LGTAdapter(nn.Module):
    """[B, T, d] CLIP snippet features -> [B, T, d] temporal features (local module, then global, residual)."""

    def __init__(self, dim: int = 512, layers: int = 2, heads: int = 1, window: int = 8, max_len: int = 256,
                 sim_threshold: float = 0.7, dis_sigma: float = 1.0):
        super().__init__()
        if max_len % window:
            raise ValueError(f"LGT max_len {max_len} must be a multiple of the attention window {window}")
        self.window, self.max_len = window, max_len
        self.position = nn.Embedding(max_len, dim)
        nn.init.normal_(self.position.weight, std=0.01)  # as VadCLIP: N(0, 1) positions would swamp the features
        self.blocks = nn.ModuleList(WindowAttentionBlock(dim, heads, window) for _ in range(layers))
        self.gcn = GlobalGCN(dim, sim_threshold, dis_sigma)

    def chunk_length(self, t: int) -> int:
        """Snippets per chunk: ``max_len``, or the length rounded up to a window for a shorter video."""
        # (t + w - 1) // w, not -(-t // w): ONNX integer Div truncates, so negative floor division breaks.
        return torch.sym_min(self.max_len, (t + self.window - 1) // self.window * self.window)  # sym_min: no guard

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        chunk = self.chunk_length(t)
        n = (t + chunk - 1) // chunk
        x = F.pad(x, (0, 0, 0, n * chunk - t)).reshape(b * n, chunk, d)
        valid = (torch.arange(n * chunk, device=x.device) < t).reshape(1, n, chunk).expand(b, -1, -1).reshape(b * n, chunk)
        x = x + self.position.weight[:chunk]
        for block in self.blocks:
            x = block(x, valid)
        x = x + self.gcn(x, valid)
        return x.reshape(b, n * chunk, d)[:, :t]
