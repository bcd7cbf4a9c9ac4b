"""A bank of E same-shaped experts evaluated in one batched pass (no Python loop over experts).

Weights are stacked on a leading expert axis and applied with einsum, so E experts cost one
kernel launch per layer; the same stacked layout exports to ONNX as plain MatMuls.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .folding import exporting

# Experts x snippets scored at once on a shared input: each expert holds ~4 KB of activations per snippet
# (qkv, MLP), so groups of experts keep a long video's state bounded by this, not by E x T (issue 16).
MAX_EXPERT_SNIPPETS = 65536


def pick(param: torch.Tensor, experts: slice | None) -> torch.Tensor:
    """A group of experts' rows of a stacked parameter (None: all, with no slicing op in an exported graph)."""
    return param if experts is None else param[experts]


class BatchedLinear(nn.Module):
    """E independent Linear(in, out) layers: x [E, ..., in] -> [E, ..., out]."""

    def __init__(self, experts: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(experts, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(experts, out_dim))
        bound = 1 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, experts: slice | None = None) -> torch.Tensor:
        """``experts`` picks a contiguous group of the E experts (x then holds that group's inputs)."""
        shape = x.shape
        y = torch.bmm(x.reshape(shape[0], -1, shape[-1]), pick(self.weight, experts)) + pick(self.bias, experts)[:, None]
        return y.reshape(*shape[:-1], -1)

    def shared(self, x: torch.Tensor, experts: slice | None = None) -> torch.Tensor:
        """One input for every expert: x [..., in] -> [E, ..., out] as one GEMM, without the E copies of
        x that expanding it to [E, ..., in] would make (13 x 1024 floats per snippet for GS-MoE)."""
        weight, bias = pick(self.weight, experts), pick(self.bias, experts)
        e, i, o = weight.shape
        y = torch.matmul(x.reshape(-1, i), weight.permute(1, 0, 2).reshape(i, e * o))
        return y.reshape(-1, e, o).transpose(0, 1).reshape(e, *x.shape[:-1], o) + bias.view(e, *(1,) * (x.dim() - 1), o)


class BatchedLayerNorm(nn.Module):
    def __init__(self, experts: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(experts, dim))
        self.bias = nn.Parameter(torch.zeros(experts, dim))

    def forward(self, x: torch.Tensor, experts: slice | None = None) -> torch.Tensor:
        view = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        return F.layer_norm(x, x.shape[-1:]) * pick(self.weight, experts).view(view) + pick(self.bias, experts).view(view)


class BatchedTransformerBlock(nn.Module):
    """Pre-norm transformer block per expert (multi-head self-attention, GELU MLP), no positional embedding."""

    def __init__(self, experts: int, dim: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"expert dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm1 = BatchedLayerNorm(experts, dim)
        self.qkv = BatchedLinear(experts, dim, 3 * dim)
        self.out = BatchedLinear(experts, dim, dim)
        self.norm2 = BatchedLayerNorm(experts, dim)
        self.fc1 = BatchedLinear(experts, dim, mlp_ratio * dim)
        self.fc2 = BatchedLinear(experts, mlp_ratio * dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, experts: slice | None = None) -> torch.Tensor:  # [E, B, T, D]
        e, b, t, d = x.shape
        qkv = self.qkv(self.norm1(x, experts), experts)
        q, k, v = qkv.reshape(e, b, t, 3, self.heads, d // self.heads).permute(3, 0, 1, 4, 2, 5)
        # Folded to 4-D [E·B, H, T, dh]: ONNX's attention lowering accepts 4-D inputs only.
        q, k, v = (z.reshape(e * b, self.heads, t, d // self.heads) for z in (q, k, v))
        attn = F.scaled_dot_product_attention(q, k, v, dropout_p=self.drop.p if self.training else 0.0)
        x = x + self.drop(self.out(attn.reshape(e, b, self.heads, t, -1).transpose(2, 3).reshape(e, b, t, d), experts))
        return x + self.drop(self.fc2(self.drop(F.gelu(self.fc1(self.norm2(x, experts), experts))), experts))


class ExpertBank(nn.Module):
    """E anomaly experts: input projection, one transformer block (4 heads), two-layer GELU MLP -> score.

    ``forward(x)`` takes per-expert inputs [E, B, T, F] (training: each expert sees its own batch)
    or shared inputs [B, T, F] (inference), and returns scores [E, B, T] in [0, 1]. Shared inputs are
    scored in groups of experts of at most ``MAX_EXPERT_SNIPPETS`` experts x snippets (at least one
    expert each; experts are independent, so the scores are those of one pass), except in export.
    """

    def __init__(self, experts: int, in_dim: int, dim: int, heads: int = 4, mlp_ratio: int = 4, dropout: float = 0.1):
        super().__init__()
        self.experts = experts
        self.proj = BatchedLinear(experts, in_dim, dim)
        self.block = BatchedTransformerBlock(experts, dim, heads, mlp_ratio, dropout)
        self.head1 = BatchedLinear(experts, dim, dim // 2)
        self.head2 = BatchedLinear(experts, dim // 2, 1)

    def forward(self, x: torch.Tensor, max_snippets: int = MAX_EXPERT_SNIPPETS) -> torch.Tensor:
        if x.dim() != 3:
            return self._scores(self.proj(x), None)
        if exporting():  # a dynamic-T graph cannot branch on T
            return self._scores(self.proj.shared(x), None)
        step = max(1, max_snippets // max(1, x.shape[:-1].numel()))
        if step >= self.experts:
            return self._scores(self.proj.shared(x), None)
        groups = (slice(i, min(i + step, self.experts)) for i in range(0, self.experts, step))
        return torch.cat([self._scores(self.proj.shared(x, g), g) for g in groups])

    def _scores(self, h: torch.Tensor, experts: slice | None) -> torch.Tensor:
        """Projected inputs of a group of experts [e, B, T, dim] -> scores [e, B, T]."""
        h = self.block(h, experts)
        return torch.sigmoid(self.head2(F.gelu(self.head1(h, experts)), experts)).squeeze(-1)
