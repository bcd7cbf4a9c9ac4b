"""UR-DMU (Zhou et al., AAAI 2023): GL-MHSA transformer, dual memory units, normal-data uncertainty.

Defaults reproduce the official code (henrryzh1/UR-DMU), which produced the published numbers and
the published checkpoints. ``URDMUConfig.paper()`` switches every place where the code and the
paper differ to the paper's formulation (see ``README.md``, "UR-DMU: paper vs official code").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..layers import Classifier, ConvEmbedding, GLTransformer, MemoryUnit, temporal_topk, topk_gather_mean
from ..layers.folding import FoldCache, folding
from ..losses import URDMULoss
from .crops import mean_over_crops
from .registry import register_model


@dataclass
class URDMUConfig:
    feature_dim: int = 1024  # I3D RGB
    dim: int = 512
    depth: int = 2
    heads: int = 4
    head_dim: int = 128
    mlp_dim: int = 512
    dropout: float = 0.5
    local_tau: float = 1.0  # local matrix exp(-|i-j| / e^tau)
    local_norm: str = "column"  # official: columns sum to 1; paper: "row" (softmax)
    normal_slots: int = 60
    abnormal_slots: int = 60
    head_hidden: int = 128
    # Loss (paper Eq. 11); defaults are the paper's weights, which the official code also uses.
    w_memory: float = 0.1
    w_triplet: float = 0.1
    w_kl: float = 1e-3
    w_distance: float = 1e-4
    triplet_margin: float = 1.0
    distance_margin: float = 100.0  # d in Eq. 10
    kl_reduction: str = "time_sum"  # official: sum over time, mean over the rest; paper: "feature_mean"
    distance_norm: str = "l2"  # official: plain norms; paper: "squared_l2" (Eq. 10)
    memory_positive: str = "inverted"  # official: top-K of (1 - S^a_n) -> 1; paper: "direct" top-K of S^a_n -> 1

    @classmethod
    def paper(cls, **overrides) -> "URDMUConfig":
        """The paper's formulation wherever the official code differs."""
        return replace(cls(), local_norm="row", kl_reduction="feature_mean", distance_norm="squared_l2",
                       memory_positive="direct", **overrides)


@dataclass
class URDMUTrainOutputs:
    """Everything the UR-DMU loss needs from one balanced batch (normal rows first)."""

    scores: torch.Tensor  # [Bn + Ba, T]
    a_att: torch.Tensor  # abnormal videos in the abnormal memory [Ba, T]
    n_a_att: torch.Tensor  # abnormal videos in the normal memory [Ba, T]
    a_n_att: torch.Tensor  # normal videos in the abnormal memory [Bn, T]
    n_att: torch.Tensor  # normal videos in the normal memory [Bn, T]
    anchor: torch.Tensor  # triplet vectors [B, D]
    positive: torch.Tensor
    negative: torch.Tensor
    mu: torch.Tensor  # NUL encoder outputs on normal videos [Bn, T, D]
    logvar: torch.Tensor
    normal_latent: torch.Tensor  # top-K mean of z (normal) [Bn, D]
    abnormal_latent: torch.Tensor  # top-K mean of mu(A_aug) (abnormal) [Ba, D]


@register_model("urdmu", URDMUConfig, URDMULoss)
class URDMU(nn.Module):
    def __init__(self, config: URDMUConfig):
        super().__init__()
        self.config = c = config
        self.embed = ConvEmbedding(c.feature_dim, c.dim)
        self.temporal = GLTransformer(c.dim, c.depth, c.heads, c.head_dim, c.mlp_dim, c.dropout, c.local_tau, c.local_norm)
        self.abnormal_memory = MemoryUnit(c.abnormal_slots, c.dim)
        self.normal_memory = MemoryUnit(c.normal_slots, c.dim)
        self.enc_mu = nn.Linear(c.dim, c.dim)
        self.enc_logvar = nn.Linear(c.dim, c.dim)
        self.head = Classifier(2 * c.dim, c.head_hidden)
        self._fold = FoldCache()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Snippet features [B, T, F] -> task-aware embeddings [B, T, dim] (GS-MoE reuses this)."""
        return self.temporal(self.embed(x))

    def task_features(self, x: torch.Tensor) -> torch.Tensor:
        """Test-path classifier input [B, T, 2*dim]: embeddings and the memory augmentation (no sampling).

        GS-MoE's experts and gate read these "task-aware" features. The official code encodes each
        memory read, ``mu(a) + mu(n)``; ``mu`` is affine, so this is ``mu(a + n) + mu.bias`` (one GEMM).
        """
        h = self.encode(x)
        aug = self.abnormal_memory(h)[1] + self.normal_memory(h)[1]
        return torch.cat([h, self.enc_mu(aug) + self.enc_mu.bias], dim=-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Test path for sequences: [N, T, F] -> scores [N, T].

        With no grad (``folding``) the chain memory read -> ``enc_mu`` -> the head's first layer is
        linear after the slot similarities S, so it folds into one [slots, hidden] matrix:
        fc1([h, mu(S_a M_a) + mu(S_n M_n)]) = h W1h + S_a P_a + S_n P_n + c. The unused top-K match
        score is not computed.
        """
        if not folding():
            return self.head(self.task_features(x))
        h = self.encode(x)
        keys, slots_to_hidden, bias = self._fold.get(
            (self.head.fc1.weight, self.head.fc1.bias, self.abnormal_memory.memory, self.normal_memory.memory,
             self.enc_mu.weight, self.enc_mu.bias), self._fold_head)
        hidden = self.config.head_hidden
        both = h.reshape(-1, h.shape[-1]) @ keys  # [N*T, hidden + slots]: fc1's h part, then memory logits
        pre = torch.addmm(both[:, :hidden] + bias, torch.sigmoid(both[:, hidden:]), slots_to_hidden)
        return torch.sigmoid(self.head.fc2(torch.relu(pre))).reshape(h.shape[:-1])

    def _fold_head(self, w1, b1, mem_a, mem_n, w_mu, b_mu) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d = self.config.dim
        memories = torch.cat([mem_a, mem_n])  # [slots_a + slots_n, dim]
        keys = torch.cat([w1[:, :d], memories / d ** 0.5]).T  # MemoryUnit's logits are h M^T / sqrt(dim)
        w1_aug = w1[:, d:]  # [hidden, dim]
        return keys, memories @ w_mu.T @ w1_aug.T, b1 + 2 * w1_aug @ b_mu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Test path: [B, T, F] or [B, ncrop, T, F] -> scores [B, T] (crops averaged)."""
        return mean_over_crops(self.score, x)

    def forward_train(self, normal: torch.Tensor, abnormal: torch.Tensor) -> URDMUTrainOutputs:
        """Training path on a balanced batch: normal [B, T, F] and abnormal [B, T, F] videos."""
        if normal.shape[0] != abnormal.shape[0]:
            raise ValueError(f"UR-DMU's triplet needs as many normal as abnormal videos, got {normal.shape[0]} and {abnormal.shape[0]}")
        bn, t = normal.shape[0], normal.shape[1]
        h = self.encode(torch.cat([normal, abnormal]))
        n_x, a_x = h[:bn], h[bn:]
        a_att, a_aug = self.abnormal_memory(a_x)
        n_a_att, n_a_aug = self.normal_memory(a_x)
        a_n_att, a_n_aug = self.abnormal_memory(n_x)
        n_att, n_aug = self.normal_memory(n_x)
        k = temporal_topk(t)

        mu, logvar = self.enc_mu(n_aug), self.enc_logvar(n_aug)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # re-parameterisation (Eq. 8)
        a_mu = self.enc_mu(a_aug)
        aug = torch.cat([z + self.enc_mu(a_n_aug), a_mu + self.enc_mu(n_a_aug)])
        return URDMUTrainOutputs(
            scores=self.head(torch.cat([h, aug], dim=-1)),
            a_att=a_att, n_a_att=n_a_att, a_n_att=a_n_att, n_att=n_att,
            anchor=topk_gather_mean(n_x, n_att, k),
            positive=topk_gather_mean(a_x, n_a_att, k),
            negative=topk_gather_mean(a_x, a_att, k),
            mu=mu, logvar=logvar,
            normal_latent=topk_gather_mean(z, n_att, k),
            abnormal_latent=topk_gather_mean(a_mu, a_att, k),
        )
