"""Temporal layers: Conv1d snippet embedding and the GL-MHSA transformer (UR-DMU Eq. 1-2)."""

from __future__ import annotations

import math

import torch
from torch import nn

LOCAL_NORMS = ("column", "row")


class ConvEmbedding(nn.Module):
    """Conv1d over time (kernel 3, same padding) + ReLU: [B, T, in] -> [B, T, out]."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)


def local_distance_matrix(t: int, tau: float, norm: str, device=None, dtype=None) -> torch.Tensor:
    """The fixed (non-learned) local attention matrix exp(-|i-j| / e^tau), normalised.

    ``norm="row"`` is the paper's softmax(T_m) (rows sum to 1). ``norm="column"`` is the official
    code's ``attn2 / attn2.sum(-1)``: the sum broadcasts over the last axis, so columns sum to 1.
    The two differ only near the sequence ends (the matrix is symmetric Toeplitz).
    """
    pos = torch.arange(t, device=device, dtype=dtype or torch.float32)
    weight = torch.exp(-(pos[None, :] - pos[:, None]).abs() / math.exp(tau))
    if norm == "row":
        return weight / weight.sum(-1, keepdim=True)
    if norm == "column":
        return weight / weight.sum(-2, keepdim=True)
    raise ValueError(f"local_norm must be one of {LOCAL_NORMS}, got {norm!r}")


class GLAttention(nn.Module):
    """Global + local multi-head self-attention.

    One projection gives q, k, v (global branch, scaled dot-product softmax) and t (local branch,
    multiplied by the fixed distance matrix). Per head the two outputs are concatenated, then all
    heads go through one output projection, as in the official code (so its weights load as is).
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v, loc = (
            part.reshape(b, t, self.heads, self.head_dim).transpose(1, 2) for part in self.qkvt(x).chunk(4, dim=-1)
        )
        attn = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim), dim=-1)
        local = local_distance_matrix(t, self.local_tau, self.local_norm, device=x.device, dtype=x.dtype)
        out = torch.cat([torch.matmul(attn, v), torch.matmul(local, loc)], dim=-1)  # [B, H, T, 2*hd]
        out = out.transpose(1, 2).reshape(b, t, 2 * self.heads * self.head_dim)
        return self.drop(self.proj(out))


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
