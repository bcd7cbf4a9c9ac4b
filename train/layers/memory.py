"""Memory unit with sigmoid similarity and a top-K read: shared by UR-DMU, GS-MoE and MoME."""

from __future__ import annotations

import math

import torch
from torch import nn


def topk_mean(x: torch.Tensor, k: int, dim: int = -1) -> torch.Tensor:
    """Mean of the ``k`` largest values along ``dim`` (k is clipped to the axis length)."""
    k = max(1, min(int(k), x.shape[dim]))
    return torch.topk(x, k, dim=dim).values.mean(dim)


def topk_gather_mean(values: torch.Tensor, scores: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of ``values`` [B, T, D] over the ``k`` snippets with the highest ``scores`` [B, T]."""
    k = max(1, min(int(k), scores.shape[1]))
    index = torch.topk(scores, k, dim=1).indices
    picked = torch.gather(values, 1, index.unsqueeze(-1).expand(-1, -1, values.shape[-1]))
    return picked.mean(1)


def temporal_topk(t: int) -> int:
    """The K of every top-K over time in UR-DMU's code and loss: T//16 + 1."""
    return t // 16 + 1


def memory_topk(slots: int) -> int:
    """The K of the top-K over memory slots (paper Eq. 4): M//16 + 1, i.e. 4 for M = 60."""
    return slots // 16 + 1


def memory_read(query: torch.Tensor, memory: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fused memory read every model uses (and the ``VadMemoryRead`` export op / TensorRT plugin).

    query [..., N, D], memory [..., M, D] -> match score [..., N] (mean of the top-k sigmoid
    similarities over slots), augmentation [..., N, D] (``S M``) and the similarities [..., N, M].
    """
    sim = torch.sigmoid(torch.matmul(query, memory.transpose(-1, -2)) / math.sqrt(memory.shape[-1]))
    return topk_mean(sim, k, dim=-1), torch.matmul(sim, memory), sim


class MemoryUnit(nn.Module):
    """Learnable memory M [slots, dim]; a read returns per-snippet match score and augmentation.

    ``S = sigmoid(x Mᵀ / sqrt(dim))`` (paper Eq. 3), the match score is the mean of the top-K
    slot similarities (Eq. 4) and the augmentation read is ``S M`` (no normalisation, as coded).
    """

    def __init__(self, slots: int, dim: int):
        super().__init__()
        self.slots = slots
        self.dim = dim
        self.k = memory_topk(slots)
        self.memory = nn.Parameter(torch.empty(slots, dim))
        bound = 1.0 / math.sqrt(dim)
        nn.init.uniform_(self.memory, -bound, bound)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T, D] -> match score [B, T], augmentation [B, T, D]."""
        score, augment, _ = memory_read(x, self.memory, self.k)
        return score, augment
