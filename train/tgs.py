"""Temporal Gaussian Splatting (GS-MoE, Eq. 3-6): pseudo-labels from a video's own anomaly scores.

Peaks are local maxima within ±``window`` snippets that rise more than ``min_rise`` above that
window's minimum. A peak's width is the monotone rise and fall run around it. Inside the width,
snippets whose score is at least ``score_P - sigma_score`` are gated on (Eq. 3-4), and each peak
splats a Gaussian centred on it (Eq. 5); the render is clamped to [0, 1].

Choices where the paper is ambiguous (both documented in the README):
- ``sigma_score`` (gate) is the std of the scores within the width, as the paper says. The paper uses
  the same sigma as the Gaussian's width in time, but a std of scores in [0, 1] is below half a
  snippet, which collapses every kernel onto its peak, unlike the paper's Fig. 2b/6. Default
  ``kernel_sigma="temporal"`` uses the std in time of the score-weighted bump within the width;
  ``"score"`` is the literal formula.
- An anomalous video with no detected peak (e.g. T=1, or a flat curve) gets its arg-max as the one
  peak: the video is known to be anomalous, and an all-zero target would contradict its label.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from .layers import temporal_topk, topk_mean

KERNEL_SIGMAS = ("temporal", "score")


def find_peaks(scores: np.ndarray, window: int = 2, min_rise: float = 0.2) -> list[int]:
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
    """Inclusive [lo, hi] of the strictly monotone rise before and fall after ``peak`` (flat background stops it)."""
    lo = peak
    while lo > 0 and scores[lo - 1] < scores[lo]:
        lo -= 1
    hi = peak
    while hi < len(scores) - 1 and scores[hi + 1] < scores[hi]:
        hi += 1
    return lo, hi


def pseudo_labels(scores: np.ndarray, *, anomalous: bool = True, window: int = 2, min_rise: float = 0.2,
                  kernel_sigma: str = "temporal") -> np.ndarray:
    """Render TGS pseudo-labels [T] in [0, 1] from one video's scores [T]."""
    if kernel_sigma not in KERNEL_SIGMAS:
        raise ValueError(f"kernel_sigma must be one of {KERNEL_SIGMAS}, got {kernel_sigma!r}")
    scores = np.asarray(scores, dtype=np.float64)
    t = len(scores)
    out = np.zeros(t)
    if not anomalous or t == 0:
        return out.astype(np.float32)
    peaks = find_peaks(scores, window, min_rise) or [int(np.argmax(scores))]
    pos = np.arange(t)
    for p in peaks:
        lo, hi = peak_width(scores, p)
        inside = scores[lo : hi + 1]
        sigma_score = float(inside.std())
        gate = np.zeros(t, dtype=bool)
        gate[lo : hi + 1] = inside >= scores[p] - sigma_score
        gate[p] = True
        if kernel_sigma == "score":
            sigma = sigma_score
        else:
            weights = np.clip(inside, 1e-6, None)
            sigma = float(np.sqrt(np.sum(weights * (pos[lo : hi + 1] - p) ** 2) / weights.sum()))
        sigma = max(sigma, 1e-6)
        out += gate * np.exp(-((pos - p) ** 2) / (2 * sigma**2))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def batch_pseudo_labels(scores: torch.Tensor, labels: torch.Tensor, **kw) -> torch.Tensor:
    """Pseudo-labels for a batch [B, T] from detached scores; normal videos get zeros."""
    arr = scores.detach().float().cpu().numpy()
    out = np.stack([pseudo_labels(s, anomalous=bool(y), **kw) for s, y in zip(arr, labels.tolist())])
    return torch.from_numpy(out).to(scores.device)


def tgs_loss(scores: torch.Tensor, labels: torch.Tensor, *, warmup: bool, window: int = 2, min_rise: float = 0.2,
             kernel_sigma: str = "temporal", w_smooth: float = 8e-5, w_sparse: float = 8e-5,
             source: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """L_TGS = L_topk-norm + BCE(y, ŷ) on anomalous videos (Eq. 6), plus Sultani's smoothness and sparsity.

    ŷ is splatted from ``source`` scores when given (e.g. a trained task encoder's), else from ``scores``
    themselves. During ``warmup`` (the paper's first epoch) only L_topk-norm is used.
    """
    normal, abnormal = labels == 0, labels == 1
    k = temporal_topk(scores.shape[1])
    zero = scores.new_zeros(())
    topk_norm = F.binary_cross_entropy(topk_mean(scores[normal], k), torch.zeros_like(labels[normal])) if normal.any() else zero
    splat = smooth = sparse = zero
    if not warmup and abnormal.any():
        target = batch_pseudo_labels((scores if source is None else source)[abnormal], labels[abnormal], window=window, min_rise=min_rise, kernel_sigma=kernel_sigma)
        splat = F.binary_cross_entropy(scores[abnormal], target)
    if abnormal.any():
        a = scores[abnormal]
        smooth = (a[:, 1:] - a[:, :-1]).pow(2).sum(-1).mean() if a.shape[1] > 1 else zero
        sparse = a.sum(-1).mean()
    total = topk_norm + splat + w_smooth * smooth + w_sparse * sparse
    return {"loss": total, "topk_norm": topk_norm, "splat": splat, "smooth": smooth, "sparse": sparse}
