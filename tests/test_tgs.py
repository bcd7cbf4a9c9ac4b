"""Temporal Gaussian Splatting pseudo-labels on hand-built score curves, and the TGS loss.

The first tests pin the earlier local-maximum peak finder (``tgs_peaks="local-max"``, what configs saved
before the prominence finder mean); the Fig. 2a-like tests below pin the default prominence finder.
"""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from vadedge.train.tgs import PeakSettings, find_peaks, peak_width, pseudo_labels, tgs_loss

LOCAL = PeakSettings("local-max")
ABSOLUTE = PeakSettings(prominence_of="absolute")  # prominence in score units (the default is "range")

BG = 0.05


def positions(s):
    return [p.position for p in find_peaks(s, LOCAL)]


def curve(*events, length=60):
    s = np.full(length, BG)
    for centre, values in events:
        half = len(values) // 2
        s[centre - half: centre - half + len(values)] = values
    return s


def test_separated_events_each_get_a_kernel_and_background_stays_zero():
    s = curve((12, [0.3, 0.7, 0.95, 0.7, 0.3]), (40, [0.4, 0.8, 0.9, 0.85, 0.4]))
    assert positions(s) == [12, 40]
    y = pseudo_labels(s, peaks=LOCAL)
    assert y[12] == 1 and y[40] == 1
    assert y[11] > 0 and y[13] > 0 and y[39] > 0 and y[41] > 0
    assert y[:9].max() == 0 and y[16:37].max() == 0 and y[44:].max() == 0
    assert (y >= 0).all() and (y <= 1).all()


def test_subtle_event_below_the_top_k_is_still_labelled():
    s = curve((10, [0.6, 0.97, 0.99, 0.98, 0.6]), (30, [0.7, 0.96, 0.99, 0.95, 0.7]), (50, [0.2, 0.45, 0.2]), length=64)
    k = len(s) // 16 + 1  # 5: MIL's top-k sees only the two strong events
    assert set(np.argsort(-s)[:k]) <= set(range(8, 13)) | set(range(28, 33))
    y = pseudo_labels(s, peaks=LOCAL)
    assert 50 in positions(s) and y[50] == 1


def test_spurious_small_peak_is_ignored():
    s = curve((20, [0.5, 0.9, 0.5]), (45, [0.12, 0.2, 0.12]))  # rises 0.15 < 0.2 above its window
    assert positions(s) == [20]
    assert pseudo_labels(s, peaks=LOCAL)[44:47].max() == 0


def test_flat_and_normal_videos():
    flat = np.full(40, 0.1)
    assert positions(flat) == []
    assert pseudo_labels(flat, anomalous=False, peaks=LOCAL).max() == 0
    y = pseudo_labels(flat, peaks=LOCAL)  # known-anomalous but flat: its arg-max is the single peak
    assert y.sum() == 1 and y[0] == 1


def test_single_snippet_video():
    assert pseudo_labels(np.array([0.3])).tolist() == [1.0]
    assert pseudo_labels(np.array([0.3]), anomalous=False).tolist() == [0.0]


def test_width_gate_and_kernel_sigma_choices():
    s = curve((20, [0.2, 0.5, 0.8, 1.0, 0.8, 0.5, 0.2]))
    assert peak_width(s, 20) == (16, 24)
    inside = s[16:25]
    gated = inside >= 1.0 - inside.std()
    temporal = pseudo_labels(s, peaks=LOCAL)
    assert (temporal[16:25] > 0).tolist() == gated.tolist()  # the gate of Eq. 3-4
    literal = pseudo_labels(s, peaks=LOCAL, kernel_sigma="score")  # sigma of scores as a width in time: collapses
    assert literal[20] == 1 and literal[19] < 0.02 < 0.5 < temporal[19]


def test_kernel_width_weights_the_bump_or_the_raw_scores():
    # an event on a raised background inside W_i: raw-score weights count the background, the bump does not
    s = 0.3 + 0.5 * np.exp(-((np.arange(40) - 20) ** 2) / (2 * 1.5**2))
    for finder in (LOCAL, PeakSettings()):
        assert [p.position for p in find_peaks(s, finder)] == [20]
        bump, raw = pseudo_labels(s, peaks=finder), pseudo_labels(s, peaks=finder, kernel_sigma="temporal-scores")
        on = bump > 0
        assert (raw > 0).tolist() == on.tolist() and on.sum() >= 3  # same gate (Eq. 3): only the Gaussian's width differs
        assert (raw[on] >= bump[on]).all() and raw[19] > bump[19] + 0.1


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


# ---------------------------------------------------------------- the default prominence peak finder
T = np.arange(120.0)
FIG2A = ((20, 4, 0.85), (55, 3, 0.35), (90, 5, 0.7))  # (centre, std in snippets, height): strong, weak, medium


def fig2a(*, spike=None, noise=0.0, seed=0, background=0.08):
    """A Fig. 2a-like curve: three broad events of different strengths (std >= 3 snippets) on a background."""
    s = background + sum(h * np.exp(-((T - c) ** 2) / (2 * sd**2)) for c, sd, h in FIG2A)
    if spike is not None:
        s[spike] += 0.6
    s = s + np.random.default_rng(seed).normal(0, noise, len(s))
    return np.clip(s, 0.0, 1.0)


def event_means(y):
    return [float(y[c - sd: c + sd + 1].mean()) for c, sd, _ in FIG2A]


def background_mask(extra=()):
    far = np.ones(len(T), bool)
    for c, sd, _ in FIG2A:
        far &= np.abs(T - c) > 3 * sd
    for p in extra:
        far &= np.abs(T - p) > 2
    return far


def test_every_broad_event_gets_a_kernel_where_the_local_maximum_rule_found_none():
    s = fig2a()
    assert positions(s) == []  # the earlier rule: no snippet rises 0.2 above its ±2 window
    old = pseudo_labels(s, peaks=LOCAL)
    assert event_means(old)[1:] == [0.0, 0.0]  # arg-max fallback: events 2 and 3 pushed to 0
    assert event_means(old)[0] > 0.6  # ... event 1 labelled over the arg-max's monotone run (not its one snippet)
    peaks = find_peaks(s)
    assert [p.position for p in peaks] == [20, 55, 90]
    for p, (c, sd, _) in zip(peaks, FIG2A):
        assert p.lo <= c - 2 * sd and p.hi >= c + 2 * sd  # W_i covers the event
    y = pseudo_labels(s)
    assert min(event_means(y)) > 0.5 and y[[20, 55, 90]].tolist() == [1.0, 1.0, 1.0]
    assert y[background_mask()].max() == 0


def test_a_sharp_spike_does_not_suppress_the_broad_events():
    s = fig2a(spike=75)
    assert s.argmax() == 75 or s[75] > 0.6
    y = pseudo_labels(s)
    assert [p.position for p in find_peaks(s)] == [20, 55, 75, 90]
    assert min(event_means(y)) > 0.5 and y[75] == 1
    assert y[background_mask([75])].max() == 0
    assert event_means(pseudo_labels(s, peaks=LOCAL))[0] == 0  # the old rule: the spike took the strong event's place


@pytest.mark.parametrize("seed", range(5))
def test_noise_on_the_background_gets_no_kernels(seed):
    s = fig2a(noise=0.04, seed=seed)
    found = [p.position for p in find_peaks(s)]
    assert len(found) == 3 and all(abs(f - c) <= 2 for f, (c, _, _) in zip(found, FIG2A))
    y = pseudo_labels(s)
    assert min(event_means(y)) > 0.5
    assert (y[background_mask()] > 0.1).mean() < 0.05


def test_a_plateau_is_centred_and_covered():
    s = np.full(80, 0.1)
    s[30:42] = 0.8  # flat top of 12 snippets
    s[29], s[42] = 0.45, 0.45
    (peak,) = find_peaks(s)
    assert peak.position in (35, 36) and peak.lo <= 30 and peak.hi >= 41
    y = pseudo_labels(s)
    assert y[30:42].mean() > 0.5 and y[:25].max() == 0 and y[48:].max() == 0


def test_events_at_the_video_edges_are_peaks():
    s = np.clip(0.1 + 0.8 * np.exp(-(T[:40] ** 2) / 18) + 0.6 * np.exp(-((T[:40] - 39) ** 2) / 8), 0, 1)
    assert [p.position for p in find_peaks(s)] == [0, 39]
    y = pseudo_labels(s)
    assert y[0] == 1 and y[39] == 1 and y[15:25].max() == 0


def test_prominence_short_and_flat_videos():
    assert find_peaks(np.array([0.3])) == []
    assert pseudo_labels(np.array([0.3])).tolist() == [1.0]  # T = 1 anomalous: its only snippet
    flat = np.full(40, 0.2)
    assert find_peaks(flat) == []
    assert pseudo_labels(flat, anomalous=False).max() == 0  # a normal video: all zero
    assert pseudo_labels(flat).sum() == 1  # known-anomalous but flat: the arg-max
    low = 0.1 + 0.05 * np.exp(-((T[:60] - 30) ** 2) / 18)  # rises 0.05 < prominence 0.1: no event in score units
    assert find_peaks(low, ABSOLUTE) == []
    assert [p.position for p in find_peaks(low)] == [30]  # "range" (default) is scale-free: the bump is the video's event


def test_eq5_render_choices():
    s = fig2a()
    clamp, peak_norm = pseudo_labels(s), pseudo_labels(s, render="max")
    assert clamp.max() == 1 and peak_norm.max() == pytest.approx(1)
    assert (peak_norm <= clamp + 1e-6).all()
    with pytest.raises(ValueError, match="tgs_render"):
        pseudo_labels(s, render="softmax")
    with pytest.raises(ValueError, match="tgs_peaks"):
        PeakSettings("argmax")


def test_range_prominence_finds_the_events_of_a_curve_pushed_down():
    # a model that has pushed every score down (x0.05): the absolute threshold finds nothing, "range" the same events
    low = fig2a() * 0.05
    assert find_peaks(low, ABSOLUTE) == []
    ranged = PeakSettings(prominence_of="range")
    assert [p.position for p in find_peaks(low, ranged)] == [p.position for p in find_peaks(fig2a())] == [20, 55, 90]
    assert min(event_means(pseudo_labels(low, peaks=ranged))) > 0.5
    with pytest.raises(ValueError, match="tgs_prominence_of"):
        PeakSettings(prominence_of="relative")
