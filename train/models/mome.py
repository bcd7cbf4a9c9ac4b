"""MoME (Sun, Chen, Wu et al., CVPR 2026): mixture of normal and anomaly memory experts.

CLIP ViT-B/16 snippet features -> LGT-Adapter -> two mixtures of memory experts with sparse top-1
routing: MoNE (normal experts, latent router) and MoAE (explicit experts routed by the anomaly
prototype router, optionally implicit ones on a latent router) -> memory-similarity fusion ->
two-layer MLP detector. Only the supplementary material is public; every choice it leaves open is
a config field here and listed in README.md ("MoME: choices where the paper is silent").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vadedge.errors import VadInputError

from ..data.prototypes import Prototypes, load_prototypes
from ..layers import Classifier, temporal_topk
from ..layers.lgt import LGTAdapter
from ..layers.memory_experts import ExpertReadout, MemoryExpertBank
from ..layers.routing import AnomalyPrototypeRouter, Routing, top1_route, zscore
from ..losses import MoMELoss
from .crops import mean_over_crops
from .registry import register_model

APR_INPUTS = ("clip", "temporal")
CLS_SELECTIONS = ("topk", "filter")


@dataclass
class MoMEConfig:
    """Defaults: UCF-Crime settings of the supplementary (§B); ``MoMEConfig.xd()`` for XD-Violence."""

    feature_dim: int = 512  # CLIP ViT-B/16 image features
    embed_dim: int = 0  # 0: everything runs at feature_dim (the paper); > 0: a Linear projection first (small edge models)
    lgt_layers: int = 2  # VadCLIP: 2 (UCF), 1 (XD)
    lgt_heads: int = 1
    lgt_window: int = 8  # VadCLIP: 8 (UCF), 64 (XD)
    lgt_max_len: int = 256
    sim_threshold: float = 0.7
    dis_sigma: float = 1.0
    # The paper's expert set (EXPERT_SETS["paper"]): 24 experts per mixture, 50 % of MoAE explicit; the
    # explicit (APR) and implicit (latent) routers are fused (48 experts in all).
    normal_experts: int = 24  # MoNE, latent router
    explicit_experts: int = 12  # MoAE experts routed by the APR
    implicit_anomaly_experts: int = 12  # MoAE experts on a latent router, fused with the APR by z-scores
    expert_hidden: int = 688  # query MLP width: not given by the paper; sized to its 42.29 M parameters
    internal_slots: int = 60  # M_in
    external_slots: int = 60  # M_ext
    external_rate: float = 1e-3  # alpha
    num_prototypes: int = 13
    prototypes_file: str = ""  # provenance of the prototype embeddings loaded into the checkpoint
    prototype_classes: list[str] = field(default_factory=list)  # class of each prototype row ([] = not recorded)
    tau: float = 3e-3
    apr_input: str = "clip"  # "clip": the raw CLIP features (the text prototypes' space); "temporal": LGT output
    head_hidden: int = 128
    # Which abnormal snippets L_cls labels 1: "topk" = the detector's top-(T//16+1), the MIL selection of
    # VadCLIP's CLAS2 that MoME builds on (default: with "filter" alone the detector did not learn on the
    # synthetic set, AUC 0.61 vs 0.9+); "filter" = the anomaly filter's snippets (least like MoNE's memory).
    cls_selection: str = "topk"
    # Loss weights (lambda_1..4 of Eq. 7), UCF-Crime.
    w_balance: float = 1e-2
    w_reg: float = 1.0
    w_div: float = 1e-5
    w_rec: float = 1e-3

    @classmethod
    def with_experts(cls, expert_set: str, **overrides) -> "MoMEConfig":
        """A named expert set (``EXPERT_SETS``) on the UCF defaults."""
        if expert_set not in EXPERT_SETS:
            raise VadInputError(f"MoME expert set must be one of {sorted(EXPERT_SETS)}, got {expert_set!r}")
        return replace(cls(), **{**EXPERT_SETS[expert_set], **overrides})

    @classmethod
    def xd(cls, **overrides) -> "MoMEConfig":
        return replace(cls(), lgt_layers=1, lgt_window=64, w_balance=7e-5, w_reg=4e-5, w_div=2e-5, w_rec=7e-4, **overrides)

    @property
    def dim(self) -> int:
        return self.embed_dim or self.feature_dim

    @property
    def anomaly_experts(self) -> int:
        return self.explicit_experts + self.implicit_anomaly_experts


# Named expert sets; both have the paper's 42.3 M inference parameters (expert_hidden sized to it).
EXPERT_SETS = {
    # Supplementary Fig. 1: best with 24 experts and ~50 % explicit ones; explicit + implicit anomaly
    # experts with the Adaptive Fuser (the main paper's 48 experts = 24 normal + 24 anomaly).
    "paper": dict(normal_experts=24, explicit_experts=12, implicit_anomaly_experts=12, expert_hidden=688),
    # The earlier default: 24 experts in all, MoAE explicit only, so the fuser is off.
    "explicit-only": dict(normal_experts=12, explicit_experts=12, implicit_anomaly_experts=0, expert_hidden=1408),
}


@dataclass
class MoMEPass:
    """One pass over [B, T] snippets (flattened to N = B·T inside)."""

    scores: torch.Tensor  # [B, T]
    temporal: torch.Tensor  # [B, T, d] LGT output
    normal_route: Routing
    anomaly_route: Routing
    normal: ExpertReadout  # MoNE readout of the routed expert, unscaled [N, ...]
    anomaly: ExpertReadout  # MoAE readout


@dataclass
class MoMETrainOutputs:
    batch: MoMEPass
    normal_count: int  # first rows of the batch are normal videos
    filtered: torch.Tensor  # [Ba, T_a] the abnormal snippets least like the normal memory (anomaly filter)
    reconstruction: torch.Tensor  # L_r
    prototype_reg: torch.Tensor  # L_reg
    diversity: torch.Tensor  # mean pairwise L1 distance between internal memories (L_div = -diversity)


class AnomalyRouter(nn.Module):
    """MoAE routing scores: APR scores for explicit experts, a latent router for implicit ones.

    With both kinds, each group is z-scored per snippet and a learned per-expert bias (expert ID
    embedding) is added, so the two routers compete on one scale (the "Adaptive Fuser").
    """

    def __init__(self, c: MoMEConfig):
        super().__init__()
        apr_dim = c.feature_dim if c.apr_input == "clip" else c.dim
        self.apr = AnomalyPrototypeRouter(c.explicit_experts, c.num_prototypes, apr_dim, c.tau) if c.explicit_experts else None
        self.latent = nn.Linear(c.dim, c.implicit_anomaly_experts) if c.implicit_anomaly_experts else None
        self.expert_bias = nn.Parameter(torch.zeros(c.anomaly_experts))

    def forward(self, temporal: torch.Tensor, clip: torch.Tensor, apr_input: str) -> torch.Tensor:
        groups = []
        if self.apr is not None:
            groups.append(zscore(self.apr(clip if apr_input == "clip" else temporal)))
        if self.latent is not None:
            groups.append(zscore(self.latent(temporal)))
        return torch.cat(groups, -1) + self.expert_bias


def _loss(config: MoMEConfig) -> nn.Module:
    return MoMELoss(config)


@register_model("mome", MoMEConfig, _loss)
class MoME(nn.Module):
    def __init__(self, config: MoMEConfig):
        super().__init__()
        self.config = c = config
        if c.apr_input not in APR_INPUTS:
            raise VadInputError(f"MoMEConfig.apr_input must be one of {APR_INPUTS}, got {c.apr_input!r}")
        if c.cls_selection not in CLS_SELECTIONS:
            raise VadInputError(f"MoMEConfig.cls_selection must be one of {CLS_SELECTIONS}, got {c.cls_selection!r}")
        if c.normal_experts < 1 or c.anomaly_experts < 1:
            raise VadInputError("MoME needs at least one normal and one anomaly expert")
        d = c.dim
        self.embed = nn.Linear(c.feature_dim, d) if c.embed_dim else nn.Identity()
        self.temporal = LGTAdapter(d, c.lgt_layers, c.lgt_heads, c.lgt_window, c.lgt_max_len, c.sim_threshold, c.dis_sigma)
        self.normal_router = nn.Linear(d, c.normal_experts)
        self.anomaly_router = AnomalyRouter(c)
        self.normal_experts = MemoryExpertBank(c.normal_experts, d, c.expert_hidden, c.internal_slots, c.external_slots)
        self.anomaly_experts = MemoryExpertBank(c.anomaly_experts, d, c.expert_hidden, c.internal_slots, c.external_slots)
        self.head = Classifier(3 * d, c.head_hidden)
        # Training-only decoders for L_r (reconstruct the temporal feature from each mixture's readout).
        self.normal_decoder = nn.Linear(2 * d, d)
        self.anomaly_decoder = nn.Linear(2 * d, d)

    # ---------------------------------------------------------------- prototypes
    def set_prototypes(self, prototypes: Prototypes) -> None:
        """Copy anomaly prototype embeddings [n, d] into the APR (and so into the checkpoint)."""
        if self.anomaly_router.apr is None:
            raise VadInputError(f"{prototypes.source}: this MoME has no explicit experts, so no prototype router")
        want_n, want_d = self.anomaly_router.apr.prototypes.shape
        if prototypes.embeddings.shape != (want_n, want_d):
            n, d = prototypes.embeddings.shape
            raise VadInputError(f"{prototypes.source}: expected [{want_n}, {want_d}] prototypes (num_prototypes x feature dim) "
                                f"after dropping normal rows, got [{n}, {d}]")
        self.anomaly_router.apr.set_prototypes(prototypes.embeddings)

    def load_prototypes(self, path: str, drop_rows: list[int] | tuple[int, ...] | None = None, names: str | None = None) -> None:
        """``set_prototypes`` from a file (formats: ``train/data/prototypes.py``)."""
        self.set_prototypes(load_prototypes(path, names, drop_rows))

    # ---------------------------------------------------------------- passes
    def route(self, temporal: torch.Tensor, clip: torch.Tensor) -> tuple[Routing, Routing]:
        """Flattened [N, d] temporal and CLIP features -> top-1 routing in MoNE and in MoAE."""
        normal = top1_route(self.normal_router(temporal))
        anomaly = top1_route(self.anomaly_router(temporal, clip, self.config.apr_input))
        return normal, anomaly

    def run(self, x: torch.Tensor, sparse: bool) -> MoMEPass:
        """[B, T, F] -> one pass; ``sparse`` selects true dispatch (training) or dense gather (export)."""
        b, t, f = x.shape
        temporal = self.temporal(self.embed(x))
        flat, clip = temporal.reshape(b * t, -1), x.reshape(b * t, f)
        normal_route, anomaly_route = self.route(flat, clip)
        bank_pass = "sparse" if sparse else "dense"
        normal = getattr(self.normal_experts, bank_pass)(flat, normal_route.index)
        anomaly = getattr(self.anomaly_experts, bank_pass)(flat, anomaly_route.index)
        scores = self.detect(flat, normal, anomaly, normal_route.weight, anomaly_route.weight)
        return MoMEPass(scores.reshape(b, t), temporal, normal_route, anomaly_route, normal, anomaly)

    def detect(self, flat: torch.Tensor, normal: ExpertReadout, anomaly: ExpertReadout,
               normal_weight: torch.Tensor, anomaly_weight: torch.Tensor) -> torch.Tensor:
        """Memory-similarity fusion of the two routed readouts, then the detector: [N] scores."""
        w_anomaly = anomaly.score / (anomaly.score + normal.score)
        fused = ((1 - w_anomaly) * normal_weight).unsqueeze(-1) * normal.h + (w_anomaly * anomaly_weight).unsqueeze(-1) * anomaly.h
        return self.head(torch.cat([flat, fused], -1))

    def forward(self, x: torch.Tensor, sparse: bool = True) -> torch.Tensor:
        """Test path: [B, T, F] or [B, ncrop, T, F] -> scores [B, T] (crops averaged).

        Sparse dispatch by default: the same scores as the dense gather (tested), without running every
        expert on every snippet (E times the memory and FLOPs); the export graph keeps the dense form."""
        return mean_over_crops(lambda v: self.run(v, sparse).scores, x)

    def forward_detailed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Scores plus the routed experts per snippet ([B, T] each): what the runtime reports with an alert."""
        out = self.run(x, sparse=False)
        b, t = out.scores.shape
        return {"scores": out.scores, "normal_expert": out.normal_route.index.reshape(b, t),
                "anomaly_expert": out.anomaly_route.index.reshape(b, t)}

    def forward_train(self, normal: torch.Tensor, abnormal: torch.Tensor) -> MoMETrainOutputs:
        bn = normal.shape[0]
        batch = self.run(torch.cat([normal, abnormal]), sparse=True)
        t = normal.shape[1]
        normal_match = batch.normal.score.reshape(-1, t)[bn:]
        filtered = torch.topk(1 - normal_match.detach(), temporal_topk(t), dim=1).indices  # I = TopK(1 - S_a^N, T_a)
        rows = self._filtered_rows(filtered, bn, t)
        target = batch.temporal.reshape(-1, batch.temporal.shape[-1]).detach()
        n_rows = bn * t
        reconstruction = (F.mse_loss(self.normal_decoder(batch.normal.h[:n_rows]), target[:n_rows])
                          + F.mse_loss(self.anomaly_decoder(batch.anomaly.h[rows]), target[rows]))
        apr = self.anomaly_router.apr
        reg = apr.regularizer() if apr is not None else reconstruction.new_zeros(())
        diversity = 0.5 * (self.normal_experts.diversity() + self.anomaly_experts.diversity())
        return MoMETrainOutputs(batch, bn, filtered, reconstruction, reg, diversity)

    @staticmethod
    def _filtered_rows(filtered: torch.Tensor, normal_count: int, t: int) -> torch.Tensor:
        """Flat snippet rows (in the N = B·T layout) of the filtered abnormal snippets."""
        offsets = torch.arange(filtered.shape[0], device=filtered.device)[:, None] * t + normal_count * t
        return (filtered + offsets).reshape(-1)

    @torch.no_grad()
    def after_step(self, out: MoMETrainOutputs) -> None:
        """External memories: MoNE remembers normal snippets, MoAE the filtered abnormal ones."""
        b = out.batch
        t = b.scores.shape[1]
        n_rows = out.normal_count * t
        self.normal_experts.update_external(b.normal.query[:n_rows].detach(), b.normal.ext_sim[:n_rows], self.config.external_rate)
        rows = self._filtered_rows(out.filtered, out.normal_count, t)
        self.anomaly_experts.update_external(b.anomaly.query[rows].detach(), b.anomaly.ext_sim[rows], self.config.external_rate)


@torch.no_grad()
def expert_load(model: MoME, videos, device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
    """Top-1 snippet counts per expert in MoNE and MoAE over the given videos (all crops)."""
    from ..data.features import load_video

    model.eval()
    counts = {"normal": np.zeros(model.config.normal_experts, np.int64),
              "anomaly": np.zeros(model.config.anomaly_experts, np.int64)}
    for video in videos:
        feats = torch.from_numpy(load_video(video, model.config.feature_dim)).to(device)
        out = model.run(feats, sparse=False)
        counts["normal"] += out.normal_route.load().cpu().numpy()
        counts["anomaly"] += out.anomaly_route.load().cpu().numpy()
    return counts


def format_expert_load(counts: dict[str, np.ndarray]) -> str:
    lines = []
    for mixture, c in counts.items():
        fair = c.sum() / len(c)
        lines.append(f"{mixture:8s} experts {len(c):3d}  busiest/fair {c.max() / fair:5.2f}  idlest/fair {c.min() / fair:5.2f}  "
                     f"counts {' '.join(str(int(v)) for v in c)}")
    return "\n".join(lines)
