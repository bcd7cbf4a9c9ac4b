"""Training losses. Each model's objective is an nn.Module taking the model's train outputs."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .layers import temporal_topk, topk_mean
from .layers.routing import cv_squared, load_ratio
from .tgs import PeakSettings, check_render, tgs_loss

KL_REDUCTIONS = ("time_sum", "feature_mean")
DISTANCE_NORMS = ("l2", "squared_l2")
MEMORY_POSITIVES = ("inverted", "direct")


def topk_mil_bce(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Video-level BCE on the mean of the top-(T//16+1) snippet scores (L_cls of UR-DMU, RTFM, ...)."""
    return F.binary_cross_entropy(topk_mean(scores, temporal_topk(scores.shape[1])), labels)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, reduction: str) -> torch.Tensor:
    """KL(N(mu, sigma²) || N(0, 1)) for [B, T, D] tensors.

    ``time_sum``: the official code sums over dim 1, which is time, then averages B and D.
    ``feature_mean``: paper Eq. 9, -1/(2D) Σ_D (…), averaged over snippets.
    """
    term = 1 + logvar - mu.pow(2) - logvar.exp()
    if reduction == "time_sum":
        return (-0.5 * term.sum(dim=1)).mean()
    if reduction == "feature_mean":
        return (-0.5 * term.mean(dim=-1)).mean()
    raise ValueError(f"kl_reduction must be one of {KL_REDUCTIONS}, got {reduction!r}")


class URDMULoss(nn.Module):
    """L = L_cls + λ1 L_dm + λ2 L_trip + λ3 L_kl + λ4 L_dis (paper Eq. 11)."""

    def __init__(self, config):
        super().__init__()
        self.c = config
        for field, allowed in (("kl_reduction", KL_REDUCTIONS), ("distance_norm", DISTANCE_NORMS), ("memory_positive", MEMORY_POSITIVES)):
            if getattr(config, field) not in allowed:
                raise ValueError(f"URDMUConfig.{field} must be one of {allowed}, got {getattr(config, field)!r}")

    def forward(self, out, labels: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:
        c = self.c
        k = temporal_topk(out.scores.shape[1])
        ones = torch.ones(out.a_att.shape[0], device=out.a_att.device)
        cls = topk_mil_bce(out.scores, labels)
        positive = 1 - out.n_a_att if c.memory_positive == "inverted" else out.n_a_att
        memory = (
            F.binary_cross_entropy(topk_mean(out.a_att, k), ones)
            + F.binary_cross_entropy(topk_mean(positive, k), ones)
            + F.binary_cross_entropy(out.n_att, torch.ones_like(out.n_att))
            + F.binary_cross_entropy(out.a_n_att, torch.zeros_like(out.a_n_att))
        )
        triplet = F.triplet_margin_loss(
            F.normalize(out.anchor, dim=-1), F.normalize(out.positive, dim=-1), F.normalize(out.negative, dim=-1),
            margin=c.triplet_margin,
        )
        kl = gaussian_kl(out.mu, out.logvar, c.kl_reduction)
        a_norm, n_norm = out.abnormal_latent.norm(dim=-1), out.normal_latent.norm(dim=-1)
        if c.distance_norm == "squared_l2":
            a_norm, n_norm = a_norm.pow(2), n_norm.pow(2)
        distance = torch.relu(c.distance_margin - a_norm + n_norm).mean()
        total = cls + c.w_memory * memory + c.w_triplet * triplet + c.w_kl * kl + c.w_distance * distance
        return {"loss": total, "cls": cls, "memory": memory, "triplet": triplet, "kl": kl, "distance": distance}


PSEUDO_SOURCES = ("encoder", "self")


def tgs_options(c) -> dict:
    """``tgs_loss`` keyword arguments from a ``GSMoEConfig``'s ``tgs_*`` fields; ValueError naming a bad one."""
    check_render(c.tgs_kernel_sigma, c.tgs_render)
    if c.pseudo_source not in PSEUDO_SOURCES:
        raise ValueError(f"pseudo_source must be one of {PSEUDO_SOURCES}, got {c.pseudo_source!r}")
    peaks = PeakSettings(c.tgs_peaks, c.tgs_smooth, c.tgs_prominence, c.tgs_min_width, c.tgs_rel_height,
                         c.tgs_window, c.tgs_min_rise, c.tgs_prominence_of)
    return dict(peaks=peaks, kernel_sigma=c.tgs_kernel_sigma, render=c.tgs_render, w_smooth=c.w_smooth,
                w_sparse=c.w_sparse)


def pseudo_source(c, encoder_scores: torch.Tensor) -> torch.Tensor | None:
    """Scores the TGS targets are splatted from: the frozen encoder's (``pseudo_source="encoder"``) or None (self)."""
    return encoder_scores.detach() if c.pseudo_source == "encoder" else None


class GateLoss(nn.Module):
    """GS-MoE stage 4: TGS loss on the gate's scores; L_topk-norm only for the first ``warmup_steps``
    (the paper's first epoch). Outputs: (gate scores [B, T], encoder scores [B, T])."""

    def __init__(self, config, warmup_steps: int = 0):
        super().__init__()
        self.c, self.warmup_steps, self.options = config, warmup_steps, tgs_options(config)

    def forward(self, outputs: tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:
        scores, encoder_scores = outputs
        return tgs_loss(scores, labels, warmup=step < self.warmup_steps, source=pseudo_source(self.c, encoder_scores),
                        **self.options)


class URDMUTGSLoss(nn.Module):
    """GS-MoE stage 2: UR-DMU's loss with L_cls replaced by the TGS loss (Eq. 6); during the first
    ``warmup_steps`` the TGS part is L_topk-norm only, as in every stage of the paper."""

    def __init__(self, config, warmup_steps: int = 0):
        super().__init__()
        self.urdmu, self.warmup_steps, self.options = URDMULoss(config.encoder), warmup_steps, tgs_options(config)

    def forward(self, out, labels: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:
        losses = self.urdmu(out, labels)
        tgs = tgs_loss(out.scores, labels, warmup=step < self.warmup_steps, **self.options)
        losses["loss"] = losses["loss"] - losses["cls"] + tgs["loss"]
        losses["tgs"] = tgs["loss"]
        return losses


class MoMELoss(nn.Module):
    """L = L_cls + L_m + λ1 L_b + λ2 L_reg + λ3 L_div + λ4 L_r (MoME supplementary Eq. 7).

    L_cls: BCE(normal snippets, 0) + BCE(selected abnormal snippets, 1) (``cls_selection``).
    L_m: normal snippets match MoNE (→1) and not MoAE (→0); filtered abnormal snippets the reverse.
    L_b: CV² of the routing importance per mixture. L_div = -mean pairwise L1 distance between
    internal memories (a distance to maximise). Expert loads are reported as busiest/fair share.
    """

    def __init__(self, config):
        super().__init__()
        self.c = config

    def forward(self, out, labels: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:
        c, b = self.c, out.batch
        t = b.scores.shape[1]
        bn = out.normal_count

        def split(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            per_video = flat.reshape(-1, t)
            return per_video[:bn], torch.gather(per_video[bn:], 1, out.filtered)

        def bce(x: torch.Tensor, target: float) -> torch.Tensor:
            return F.binary_cross_entropy(x.clamp(1e-6, 1 - 1e-6), torch.full_like(x, target))

        s_n, s_a = split(b.scores)
        if c.cls_selection == "topk":
            s_a = torch.topk(b.scores[bn:], temporal_topk(t), dim=1).values
        cls = bce(s_n, 0.0) + bce(s_a, 1.0)
        nn_match, na_match = split(b.normal.score)
        an_match, aa_match = split(b.anomaly.score)
        memory = bce(nn_match, 1.0) + bce(na_match, 0.0) + bce(aa_match, 1.0) + bce(an_match, 0.0)
        balance = cv_squared(b.normal_route.probs.sum(0)) + cv_squared(b.anomaly_route.probs.sum(0))
        div = -out.diversity
        total = (cls + memory + c.w_balance * balance + c.w_reg * out.prototype_reg + c.w_div * div
                 + c.w_rec * out.reconstruction)
        return {"loss": total, "cls": cls, "memory": memory, "balance": balance, "reg": out.prototype_reg,
                "div": div, "rec": out.reconstruction,
                "load_normal_max": load_ratio(b.normal_route.load()).detach(),
                "load_anomaly_max": load_ratio(b.anomaly_route.load()).detach()}
