"""Sparse top-1 routing (MoME supplementary Eq. 4-6), load statistics and the anomaly-prototype router."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class Routing:
    """Top-1 routing of N snippets over E experts."""

    probs: torch.Tensor  # [N, E] routing probabilities (softmax of the routing scores)
    index: torch.Tensor  # [N] chosen expert (I of Eq. 4, k = 1)
    weight: torch.Tensor  # [N] its probability (R of Eq. 4): scales the expert output, so the router learns

    @property
    def experts(self) -> int:
        return self.probs.shape[-1]

    def dispatch(self) -> torch.Tensor:
        """Binary routing matrix P [N, E] (Eq. 5)."""
        return F.one_hot(self.index, self.experts).to(self.probs.dtype)

    def load(self) -> torch.Tensor:
        """Snippets per expert [E] (integer counts)."""
        return torch.bincount(self.index, minlength=self.experts)


def top1_route(logits: torch.Tensor) -> Routing:
    """Softmax over experts, then TopK with k = 1 (Switch-style: the kept probability gates the output)."""
    probs = torch.softmax(logits, dim=-1)
    weight, index = torch.topk(probs, 1, dim=-1)
    return Routing(probs, index.squeeze(-1), weight.squeeze(-1))


def zscore(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Standardise routing scores per snippet so routers of different scale can be compared (Adaptive Fuser)."""
    mean = x.mean(-1, keepdim=True)
    std = (x - mean).pow(2).mean(-1, keepdim=True).sqrt()
    return (x - mean) / (std + eps)


def cv_squared(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Squared coefficient of variation (Shazeer et al. 2017): 0 when all experts get equal importance."""
    x = x.float()
    if x.numel() < 2:
        return x.new_zeros(())
    return x.var(unbiased=False) / (x.mean().pow(2) + eps)


def load_ratio(load: torch.Tensor) -> torch.Tensor:
    """Busiest expert's load over its fair share (1.0 = perfectly balanced)."""
    load = load.float()
    return load.max() / load.mean().clamp_min(1e-12)


class AnomalyPrototypeRouter(nn.Module):
    """APR: ``S = softmax(V̂ T̂ᵀ / τ)`` over n prototype text embeddings, ``G = S Aᵀ`` with a learnable
    expert-prototype assignment A [E, n] (rows softmax-normalised).

    The prototypes are a fixed buffer (saved in the checkpoint): CLIP text embeddings of fine-grained
    anomaly descriptions when the user has them, class-name embeddings otherwise.
    """

    def __init__(self, experts: int, prototypes: int, dim: int, tau: float):
        super().__init__()
        self.tau = tau
        self.register_buffer("prototypes", F.normalize(torch.randn(prototypes, dim), dim=-1))
        self.assignment_logits = nn.Parameter(0.5 * torch.randn(experts, prototypes))

    def set_prototypes(self, embeddings: np.ndarray | torch.Tensor) -> None:
        emb = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
        if tuple(emb.shape) != tuple(self.prototypes.shape):
            raise ValueError(f"prototypes: expected shape {tuple(self.prototypes.shape)}, got {tuple(emb.shape)}")
        self.prototypes.copy_(F.normalize(emb, dim=-1))

    def assignment(self) -> torch.Tensor:
        return torch.softmax(self.assignment_logits, dim=-1)

    def prototype_probs(self, x: torch.Tensor) -> torch.Tensor:
        """[N, dim] snippet features -> [N, n] prototype distribution S."""
        return torch.softmax(torch.matmul(F.normalize(x, dim=-1), self.prototypes.t()) / self.tau, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, dim] -> routing scores G [N, E]."""
        return torch.matmul(self.prototype_probs(x), self.assignment().t())

    def regularizer(self) -> torch.Tensor:
        """L_reg = -H(A_i) + ||A Aᵀ - I||²_F + CV²(prototype coverage).

        The orthogonality term pushes experts onto distinct prototypes, the entropy term keeps rows from
        collapsing onto a single one, and the coverage term (the "inter-class balance") spreads the
        experts' total attention evenly across prototypes.
        """
        a = self.assignment()
        entropy = -(a * torch.log(a.clamp_min(1e-12))).sum(-1).mean()
        gram = torch.matmul(a, a.t())
        ortho = (gram - torch.eye(a.shape[0], device=a.device, dtype=a.dtype)).pow(2).sum()
        return -entropy + ortho + cv_squared(a.sum(0))
