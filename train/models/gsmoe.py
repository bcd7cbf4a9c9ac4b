"""GS-MoE (Majhi et al., ICCV 2025): UR-DMU task encoder, one expert per anomaly class (or K-means
cluster), and a gate with bidirectional cross-attention between expert scores and task features.

No official code is public; choices the paper leaves open are fields of ``GSMoEConfig``.
Training runs in four stages (``vadedge.train.pipelines.gsmoe``); this module is the model that the
final checkpoint rebuilds: encoder + experts + gate in one file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from vadedge.errors import VadInputError

from ..layers import ExpertBank
from ..layers.folding import folding
from .crops import mean_over_crops
from ..losses import GateLoss, tgs_options
from .registry import register_model
from .urdmu import URDMU, URDMUConfig


@dataclass
class GSMoEConfig:
    encoder: URDMUConfig = field(default_factory=URDMUConfig)
    experts: list[str] = field(default_factory=list)  # class names, or "cluster0".. for K-means experts
    expert_mode: str = "class"  # "class" or "cluster"
    expert_dim: int = 192  # ~0.66 M parameters per expert on 1024-d task features
    expert_heads: int = 4
    gate_dim: int = 256
    gate_heads: int = 4
    gate_task_features: bool = True  # paper Table 3: the gate also reads the task-aware features
    dropout: float = 0.1
    # TGS loss (train/tgs.py). Peaks: "prominence" = scipy find_peaks on the lightly smoothed curve
    # (every broad event gets a kernel); "local-max" = the earlier rule (window/min_rise), which misses them.
    tgs_peaks: str = "prominence"
    tgs_smooth: float = 1.0  # Gaussian smoothing (snippets) before peak finding
    tgs_prominence: float = 0.1  # minimum rise of a peak above its surrounding background
    tgs_min_width: float = 1.0  # minimum peak width (snippets) at tgs_rel_height
    tgs_rel_height: float = 0.9  # the width W_i is measured at this fraction of the prominence
    # tgs_prominence as a fraction of the video's score range (max - min of the smoothed curve), or "absolute"
    # score units: "range" is scale-free, so curves a TGS stage has pushed down keep their events' kernels
    tgs_prominence_of: str = "range"
    tgs_window: int = 2  # "local-max" only
    tgs_min_rise: float = 0.2  # "local-max" only
    tgs_kernel_sigma: str = "temporal"  # Eq. 4: "temporal" (std in time of the bump) or "score" (literal σ of scores)
    tgs_render: str = "clamp"  # Eq. 5 ‖·‖: "clamp" the summed kernels to [0, 1] or divide by their "max"
    w_smooth: float = 8e-5  # Sultani et al.
    w_sparse: float = 8e-5
    # Scores the TGS pseudo-labels of the experts and the gate are splatted from: "encoder" (the
    # stage-2 task encoder, stable from the first step) or "self" (the model being trained).
    pseudo_source: str = "encoder"

    # Configs saved before these fields existed were trained with the local-maximum peak finder / absolute prominence.
    LEGACY_DEFAULTS: ClassVar[dict] = {"tgs_peaks": "local-max", "tgs_prominence_of": "absolute"}

    def __post_init__(self):
        # A bad tgs_* value fails when the config is made (--set, checkpoint), not when stage 2 starts after stage 1's training.
        try:
            tgs_options(self)
        except ValueError as exc:
            raise VadInputError(f"GSMoEConfig: {exc}") from None

    @property
    def feature_dim(self) -> int:
        """Input snippet feature size (the encoder's), like every model config."""
        return self.encoder.feature_dim


class BidirectionalCrossAttention(nn.Module):
    """Task features attend to expert-score tokens, then expert tokens attend to those refined features.

    The output stays on the expert-token stream: each snippet's token is its experts' scores plus
    what it reads from the task features, so the gate cannot bypass the experts (a fused or
    task-feature output stream let the gate ignore them: masking an expert then changed nothing).
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.f2s = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.s2f = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_f, self.norm_s = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, s: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        f = self.norm_f(f + self.f2s(f, s, s, need_weights=False)[0])
        return self.norm_s(s + self.s2f(s, f, f, need_weights=False)[0])


class Gate(nn.Module):
    """Expert scores -> higher-dimensional tokens, cross-attention with task features, transformer
    block (no positional embedding) and a four-layer GELU MLP -> final score."""

    def __init__(self, experts: int, task_dim: int, dim: int, heads: int, dropout: float, use_task_features: bool):
        super().__init__()
        self.use_task_features = use_task_features
        self.score_proj = nn.Sequential(nn.Linear(experts, dim), nn.GELU(), nn.Linear(dim, dim))
        if use_task_features:
            self.task_proj = nn.Linear(task_dim, dim)
            self.cross = BidirectionalCrossAttention(dim, heads, dropout)
        self.block = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True, norm_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim // 2), nn.GELU(),
                                 nn.Linear(dim // 2, dim // 4), nn.GELU(), nn.Linear(dim // 4, 1))

    def forward(self, expert_scores: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        s = self.score_proj(expert_scores)
        if self.use_task_features:
            s = self.cross(s, self.task_proj(task))
        return torch.sigmoid(self.mlp(self._block(s))).squeeze(-1)

    def _block(self, s: torch.Tensor) -> torch.Tensor:
        """``self.block`` [B, T, dim] -> [B, T, dim]. Without grad, nn.TransformerEncoderLayer takes a fused
        fast path that materialises [B, heads, T, T] attention weights (1 GiB at T = 8,192); the test path
        runs the same pre-norm layer through functional attention (fused SDPA, memory linear in T) instead.
        Training and export keep the module's own forward."""
        b = self.block
        if not folding():
            return b(s)
        a, y = b.self_attn, b.norm1(s).transpose(0, 1)  # the functional form is sequence-first
        att = F.multi_head_attention_forward(y, y, y, a.embed_dim, a.num_heads, a.in_proj_weight, a.in_proj_bias, None, None,
                                             False, a.dropout, a.out_proj.weight, a.out_proj.bias, training=a.training,
                                             need_weights=False)[0]
        s = s + b.dropout1(att.transpose(0, 1))
        return s + b.dropout2(b.linear2(b.dropout(b.activation(b.linear1(b.norm2(s))))))


@register_model("gsmoe", GSMoEConfig, GateLoss)
class GSMoE(nn.Module):
    def __init__(self, config: GSMoEConfig):
        super().__init__()
        if not config.experts:
            raise ValueError("GSMoEConfig.experts is empty: name one expert per anomaly class or cluster")
        if config.expert_mode not in ("class", "cluster"):
            raise ValueError(f"expert_mode must be 'class' or 'cluster', got {config.expert_mode!r}")
        self.config = c = config
        task_dim = 2 * c.encoder.dim
        self.encoder = URDMU(c.encoder)
        self.experts = ExpertBank(len(c.experts), task_dim, c.expert_dim, c.expert_heads, dropout=c.dropout)
        self.gate = Gate(len(c.experts), task_dim, c.gate_dim, c.gate_heads, c.dropout, c.gate_task_features)

    def forward_detailed(self, x: torch.Tensor, expert_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """[B, T, F] -> final scores [B, T], expert scores [B, T, E], encoder scores and the dominant
        expert per snippet (which anomaly class an alert belongs to). ``expert_mask`` [E] (1 keep,
        0 drop) zeroes experts' scores before the gate (the paper's Table 4)."""
        task = self.encoder.task_features(x)
        expert_scores = self.experts(task).permute(1, 2, 0)  # [B, T, E]
        if expert_mask is not None:
            expert_scores = expert_scores * expert_mask.to(expert_scores)
        return {
            "scores": self.gate(expert_scores, task),
            "expert_scores": expert_scores,
            "encoder_scores": self.encoder.head(task),
            "dominant_expert": expert_scores.argmax(-1),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, F] or [B, ncrop, T, F] -> scores [B, T] (crops averaged)."""
        return mean_over_crops(lambda v: self.forward_detailed(v)["scores"], x)

    def forward_train(self, normal: torch.Tensor, abnormal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gate stage: encoder and experts frozen (eval, no grad), the gate learns.
        Returns (gate scores, encoder scores), each [B, T]."""
        x = torch.cat([normal, abnormal])
        with torch.no_grad():
            self.encoder.eval()
            self.experts.eval()
            task = self.encoder.task_features(x)
            expert_scores = self.experts(task).permute(1, 2, 0)
        return self.gate(expert_scores, task), self.encoder.head(task)
