"""Temporal Gaussian Splatting (GS-MoE, Eq. 3-6): pseudo-labels from a video's own anomaly scores.

Peaks (``peaks="prominence"``, the default): ``scipy.signal.find_peaks`` on the scores lightly
smoothed in time (Gaussian, ``smooth`` snippets), padded at both ends with the curve's minimum so
events touching the video's start or end count; every peak whose prominence (rise above the
surrounding background) reaches ``prominence`` gets a kernel, however broad it is. Its width W_i is
SciPy's width at ``rel_height`` of the prominence (0.9: nearly down to the background). The peak P_i is the
smoothed curve's maximum (the centre of a plateau, not its first snippet).
``peaks="local-max"`` is the earlier rule (local maximum within ±``window`` rising more than
``min_rise``, width = the monotone run), kept so old checkpoints' configs mean what they meant: it
misses broad events (no snippet of a smooth bump beats its ±2 neighbours by 0.2).

Inside W_i, snippets with score ≥ score_P − σ_score are gated on (Eq. 3), σ_score the std of the
scores within W_i, and each peak splats a Gaussian centred on it (Eq. 4); the kernels are summed
and then clamped to [0, 1] (``render="clamp"``) or divided by their maximum (``"max"``) (Eq. 5's ‖·‖).

Choices where the paper is ambiguous (documented in the README):
- The Gaussian's width in time: the paper reuses σ_score, but a std of scores in [0, 1] is below
  half a snippet and collapses every kernel onto its peak, unlike its Fig. 2b/6. Default
  ``kernel_sigma="temporal"`` uses the std in time of the bump (scores above the width's minimum)
  within W_i; ``"score"`` is the literal formula.
- An anomalous video with no peak (T = 1, a flat curve) gets its arg-max as the one peak: the video
  is known to be anomalous, and an all-zero target would contradict its label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import signal
from scipy.ndimage import gaussian_filter1d
from torch.nn import functional as F

from .layers import temporal_topk, topk_mean

KERNEL_SIGMAS = ("temporal", "temporal-scores", "score")
PEAK_FINDERS = ("prominence", "local-max")
RENDERS = ("clamp", "max")
PROMINENCE_SCALES = ("absolute", "range")


@dataclass(frozen=True)
class Peak:
    position: int  # P_i, snippet index
    lo: int  # W_i = [lo, hi], inclusive snippet indices
    hi: int


@dataclass(frozen=True)
class PeakSettings:
    """How peaks are found (all ``GSMoEConfig.tgs_*`` fields)."""

    method: str = "prominence"
    smooth: float = 1.0  # Gaussian smoothing in snippets before peak finding (0: none)
    prominence: float = 0.1  # minimum rise above the surrounding background
    min_width: float = 1.0  # minimum width (snippets) at rel_height
    rel_height: float = 0.9  # width measured at 90 % of the prominence: the event down to ~its background
    window: int = 2  # "local-max" only
    min_rise: float = 0.2  # "local-max" only
    # "absolute": prominence in score units; "range": a fraction of the smoothed curve's max - min, so a
    # video whose scores are all small (a model that has pushed them down) still gets its events' kernels
    prominence_of: str = "range"  # as GSMoEConfig.tgs_prominence_of (one default)

    def __post_init__(self):
        if self.method not in PEAK_FINDERS:
            raise ValueError(f"tgs_peaks must be one of {PEAK_FINDERS}, got {self.method!r}")
        if self.prominence_of not in PROMINENCE_SCALES:
            raise ValueError(f"tgs_prominence_of must be one of {PROMINENCE_SCALES}, got {self.prominence_of!r}")
        for name, value in (("tgs_smooth", self.smooth), ("tgs_prominence", self.prominence), ("tgs_min_width", self.min_width)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if not 0 < self.rel_height <= 1:
            raise ValueError(f"tgs_rel_height must be in (0, 1], got {self.rel_height!r}")
        if self.window < 1:
            raise ValueError(f"tgs_window must be >= 1, got {self.window!r}")


def check_render(kernel_sigma: str, render: str) -> None:
    """Eq. 4-5 choices: ValueError naming the field when one is not known."""
    if kernel_sigma not in KERNEL_SIGMAS:
        raise ValueError(f"tgs_kernel_sigma must be one of {KERNEL_SIGMAS}, got {kernel_sigma!r}")
    if render not in RENDERS:
        raise ValueError(f"tgs_render must be one of {RENDERS}, got {render!r}")


def find_peaks(scores: np.ndarray, settings: PeakSettings = PeakSettings()) -> list[Peak]:
    """Peaks and widths of a score curve [T] (see the module docstring)."""
    scores = np.asarray(scores, dtype=np.float64)
    if settings.method == "local-max":
        return [Peak(p, *peak_width(scores, p)) for p in local_max_peaks(scores, settings.window, settings.min_rise)]
    if len(scores) == 0:
        return []
    smooth = gaussian_filter1d(scores, settings.smooth, mode="nearest") if settings.smooth > 0 else scores
    padded = np.pad(smooth, 1, constant_values=smooth.min())
    scale = float(smooth.max() - smooth.min()) if settings.prominence_of == "range" else 1.0
    found, props = signal.find_peaks(padded, prominence=settings.prominence * scale, width=settings.min_width,
                                     rel_height=settings.rel_height)
    t = len(scores)
    return [Peak(int(p) - 1, max(0, int(np.floor(lo)) - 1), min(t - 1, int(np.ceil(hi)) - 1))
            for p, lo, hi in zip(found, props["left_ips"], props["right_ips"])]


def local_max_peaks(scores: np.ndarray, window: int = 2, min_rise: float = 0.2) -> list[int]:
    """The earlier rule: local maxima within ±window rising more than min_rise above the window's minimum."""
    t = len(scores)
    peaks = []
    for i in range(t):
        lo, hi = max(0, i - window), min(t, i + window + 1)
        local = scores[lo:hi]
        if scores[i] < local.max() or scores[i] - local.min() <= min_rise:
            continue
        if peaks and peaks[-1] >= i - window and scores[peaks[-1]] == scores[i]:
            continue  # a plateau: keep its first snippet
        peaks.append(i)
    return peaks


def peak_width(scores: np.ndarray, peak: int) -> tuple[int, int]:
    """Inclusive [lo, hi] of the strictly monotone rise before and fall after ``peak`` ("local-max" widths)."""
    lo = peak
    while lo > 0 and scores[lo - 1] < scores[lo]:
        lo -= 1
    hi = peak
    while hi < len(scores) - 1 and scores[hi + 1] < scores[hi]:
        hi += 1
    return lo, hi


def _kernel(scores: np.ndarray, peak: Peak, kernel_sigma: str) -> np.ndarray:
    """One peak's gated Gaussian f_i (Eq. 3-4) over the whole video [T]."""
    t, p = len(scores), peak.position
    pos = np.arange(t)
    inside = scores[peak.lo : peak.hi + 1]
    sigma_score = float(inside.std())
    gate = np.zeros(t, dtype=bool)
    gate[peak.lo : peak.hi + 1] = inside >= scores[p] - sigma_score
    gate[p] = True
    if kernel_sigma == "score":
        sigma = sigma_score
    else:
        # "temporal": the bump above the width's floor; "temporal-scores": the raw scores (background included)
        weights = inside - inside.min() + 1e-6 if kernel_sigma == "temporal" else np.clip(inside, 1e-6, None)
        sigma = float(np.sqrt(np.sum(weights * (pos[peak.lo : peak.hi + 1] - p) ** 2) / weights.sum()))
    return gate * np.exp(-((pos - p) ** 2) / (2 * max(sigma, 1e-6) ** 2))


def pseudo_labels(scores: np.ndarray, *, anomalous: bool = True, peaks: PeakSettings = PeakSettings(),
                  kernel_sigma: str = "temporal", render: str = "clamp") -> np.ndarray:
    """Render TGS pseudo-labels [T] in [0, 1] from one video's scores [T]."""
    check_render(kernel_sigma, render)
    scores = np.asarray(scores, dtype=np.float64)
    t = len(scores)
    if not anomalous or t == 0:
        return np.zeros(t, dtype=np.float32)
    found = find_peaks(scores, peaks)
    if not found:  # the arg-max with its monotone run as W_i (the earlier rule's fallback, kept for both finders)
        p = int(np.argmax(scores))
        found = [Peak(p, *peak_width(scores, p))]
    out = sum(_kernel(scores, peak, kernel_sigma) for peak in found)
    out = out / out.max() if render == "max" else np.clip(out, 0.0, 1.0)
    return out.astype(np.float32)


def batch_pseudo_labels(scores: torch.Tensor, labels: torch.Tensor, **kw) -> torch.Tensor:
    """Pseudo-labels for a batch [B, T] from detached scores; normal videos get zeros."""
    arr = scores.detach().float().cpu().numpy()
    out = np.stack([pseudo_labels(s, anomalous=bool(y), **kw) for s, y in zip(arr, labels.tolist())])
    return torch.from_numpy(out).to(scores.device)


def tgs_loss(scores: torch.Tensor, labels: torch.Tensor, *, warmup: bool, peaks: PeakSettings = PeakSettings(),
             kernel_sigma: str = "temporal", render: str = "clamp", w_smooth: float = 8e-5, w_sparse: float = 8e-5,
             source: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """L_TGS = L_topk-norm + BCE(y, ŷ) on anomalous videos (Eq. 6), plus Sultani's smoothness and sparsity.

    scores, source: [B, T] in (0, 1); labels: [B] video labels (0/1). ŷ is splatted from ``source``
    scores when given (e.g. a trained task encoder's), else from ``scores`` themselves. During
    ``warmup`` (the paper's first epoch) only L_topk-norm is used.
    """
    normal, abnormal = labels == 0, labels == 1
    k = temporal_topk(scores.shape[1])
    zero = scores.new_zeros(())
    topk_norm = F.binary_cross_entropy(topk_mean(scores[normal], k), torch.zeros_like(labels[normal])) if normal.any() else zero
    splat = smooth = sparse = zero
    if not warmup and abnormal.any():
        target = batch_pseudo_labels((scores if source is None else source)[abnormal], labels[abnormal], peaks=peaks,
                                     kernel_sigma=kernel_sigma, render=render)
        splat = F.binary_cross_entropy(scores[abnormal], target)
    if abnormal.any():
        a = scores[abnormal]
        smooth = (a[:, 1:] - a[:, :-1]).pow(2).sum(-1).mean() if a.shape[1] > 1 else zero
        sparse = a.sum(-1).mean()
    total = topk_norm + splat + w_smooth * smooth + w_sparse * sparse
    return {"loss": total, "topk_norm": topk_norm, "splat": splat, "smooth": smooth, "sparse": sparse}
