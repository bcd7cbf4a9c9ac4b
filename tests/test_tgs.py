"""Temporal Gaussian Splatting pseudo-labels on hand-built score curves, and the TGS loss."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from vadedge.train.tgs import find_peaks, peak_width, pseudo_labels, tgs_loss

BG = 0.05


def curve(*events, length=60):
    s = np.full(length, BG)
    for centre, values in events:
        half = len(values) // 2
        s[centre - half: centre - half + len(values)] = values
    return s


def test_separated_events_each_get_a_kernel_and_background_stays_zero():
    s = curve((12, [0.3, 0.7, 0.95, 0.7, 0.3]), (40, [0.4, 0.8, 0.9, 0.85, 0.4]))
    assert find_peaks(s) == [12, 40]
    y = pseudo_labels(s)
    assert y[12] == 1 and y[40] == 1
    assert y[11] > 0 and y[13] > 0 and y[39] > 0 and y[41] > 0
    assert y[:9].max() == 0 and y[16:37].max() == 0 and y[44:].max() == 0
    assert (y >= 0).all() and (y <= 1).all()


def test_subtle_event_below_the_top_k_is_still_labelled():
    s = curve((10, [0.6, 0.97, 0.99, 0.98, 0.6]), (30, [0.7, 0.96, 0.99, 0.95, 0.7]), (50, [0.2, 0.45, 0.2]), length=64)
    k = len(s) // 16 + 1  # 5: MIL's top-k sees only the two strong events
    assert set(np.argsort(-s)[:k]) <= set(range(8, 13)) | set(range(28, 33))
    y = pseudo_labels(s)
    assert 50 in find_peaks(s) and y[50] == 1


def test_spurious_small_peak_is_ignored():
    s = curve((20, [0.5, 0.9, 0.5]), (45, [0.12, 0.2, 0.12]))  # rises 0.15 < 0.2 above its window
    assert find_peaks(s) == [20]
    assert pseudo_labels(s)[44:47].max() == 0


def test_flat_and_normal_videos():
    flat = np.full(40, 0.1)
    assert find_peaks(flat) == []
    assert pseudo_labels(flat, anomalous=False).max() == 0
    y = pseudo_labels(flat)  # known-anomalous but flat: its arg-max is the single peak
    assert y.sum() == 1 and y[0] == 1


def test_single_snippet_video():
    assert pseudo_labels(np.array([0.3])).tolist() == [1.0]
    assert pseudo_labels(np.array([0.3]), anomalous=False).tolist() == [0.0]


def test_width_gate_and_kernel_sigma_choices():
    s = curve((20, [0.2, 0.5, 0.8, 1.0, 0.8, 0.5, 0.2]))
    assert peak_width(s, 20) == (16, 24)
    inside = s[16:25]
    gated = inside >= 1.0 - inside.std()
    temporal = pseudo_labels(s)
    assert (temporal[16:25] > 0).tolist() == gated.tolist()  # the gate of Eq. 3-4
    literal = pseudo_labels(s, kernel_sigma="score")  # sigma of scores as a width in time: collapses
    assert literal[20] == 1 and literal[19] < 0.02 < 0.5 < temporal[19]


def test_tgs_loss_terms():
    torch.manual_seed(0)
    s = torch.rand(4, 40).clamp(0.01, 0.99)
    labels = torch.tensor([0.0, 0, 1, 1])
    warm = tgs_loss(s, labels, warmup=True, w_smooth=0, w_sparse=0)
    topk = s[:2].topk(40 // 16 + 1, -1).values.mean(-1)
    assert warm["loss"].item() == pytest.approx(F.binary_cross_entropy(topk, torch.zeros(2)).item(), rel=1e-6)
    full = tgs_loss(s, labels, warmup=False)
    target = torch.from_numpy(np.stack([pseudo_labels(x) for x in s[2:].numpy()]))
    assert full["splat"].item() == pytest.approx(F.binary_cross_entropy(s[2:], target).item(), rel=1e-6)
    smooth = (s[2:, 1:] - s[2:, :-1]).pow(2).sum(-1).mean()
    assert full["smooth"].item() == pytest.approx(smooth.item(), rel=1e-6)
    assert full["sparse"].item() == pytest.approx(s[2:].sum(-1).mean().item(), rel=1e-6)
