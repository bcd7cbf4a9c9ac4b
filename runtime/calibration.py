"""Per-camera calibration: alert thresholds from footage declared normal, at the operator's false-alarm rate.

A weakly-supervised model trained on other scenes meets each camera with its own lighting, angle and traffic;
its raw score has no fixed meaning there. Calibration scores normal footage of *this* camera exactly as
``vad-runtime`` does (backbone, sliding window, smoothing, hysteresis, minimum duration) and picks the alert
start/stop thresholds whose expected alert count on normal footage equals ``false_alarms_per_hour``.

Three scores can be calibrated (``Calibration.mode``):

- ``model``: the model's own score (thresholds in score units, [0, 1]).
- ``normality``: scene novelty, the distance of a snippet to the nearest normal snippets of this camera (coreset
  memories, ``NormalityMemory``) in appearance (the crop-mean backbone feature) and, optionally, motion
  (``motion_descriptor``: grey-level change per grid cell), each a robust z-score; ``squash(max(z_app, z_motion))``.
- ``fused``: ``squash(max(z_model, z_app, z_motion))``: each channel standardised on the calibration footage
  (median / MAD of the model's logit, of the log novelty distance), the larger wins, then the same calibration.
  Either channel alone can raise an alert; the thresholds are chosen on the fused score itself, so the *sum*
  stays at the target rate.

Files (``save``/``load``): ``DIR/CAMERA.calib.json`` (thresholds, method, the model file's sha256) and, with scene
normality, ``DIR/CAMERA.memory.npy`` ([M, D] float32) and ``DIR/CAMERA.motion.npy`` — each written atomically, the arrays first, the JSON
(which holds the arrays' sha256) last, so a crash never leaves a calibration that loads half-old, half-new.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterable

import numpy as np

from vadedge.atomic import atomic_path, atomic_write_text
from vadedge.errors import VadInputError

from .scoring import Alerter, AlertPolicy, SlidingWindow, Smoother

SCHEMA = 1
EPS = 1e-6  # scores are clipped to [EPS, 1 - EPS] before the logit (float32 sigmoids reach exactly 1.0)
SATURATED_SCORE = 0.99  # "most normal snippets at >= 0.99": the model cannot separate this camera's normal footage
MIN_HEADROOM = 1e-3  # a start threshold above 1 - MIN_HEADROOM leaves anomalies no room to score higher
SQUASH = 4.0  # fused/novelty score = sigmoid(z / SQUASH): z = 10 robust SDs -> 0.92, keeps thresholds off 1.0
MIN_SNIPPETS_CAL = 20
_CAMERA_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class SaturationError(VadInputError):
    """The model scores this camera's normal footage at the top of its range: no threshold can work."""


# ---------------------------------------------------------------- alert simulation (the runtime's own rules)
def smooth_scores(scores: np.ndarray, smooth: int) -> np.ndarray:
    """[T] raw scores -> [T] scores as ``runtime.scoring.Smoother`` outputs them, one by one."""
    smoother = Smoother(smooth)
    return np.array([smoother(float(s)) for s in np.asarray(scores, np.float64).ravel()], np.float64)


def _alerts_on_smoothed(smoothed: np.ndarray, policy: AlertPolicy, snippet_s: float) -> list[tuple[int, int]]:
    alerter = Alerter("calibration", policy)
    out = []

    def index(alert) -> tuple[int, int]:
        return int(round(alert.start / snippet_s)), int(round(alert.end / snippet_s)) - 1

    for i, s in enumerate(smoothed):
        _, closed = alerter.update(i * snippet_s, (i + 1) * snippet_s, float(s))
        if closed is not None:
            out.append(index(closed))
    last = alerter.close("end of stream")
    if last is not None:
        out.append(index(last))
    return out


def simulate_alerts(scores: np.ndarray, policy: AlertPolicy, smooth: int, snippet_s: float) -> list[tuple[int, int]]:
    """Alerts the runtime would report on ``scores`` [T] (raw per-snippet scores, one source).

    Runs ``runtime.scoring.Smoother`` and ``Alerter`` themselves (not a re-implementation). Returns
    ``(start_idx, end_idx)`` per reported alert, both inclusive snippet indices; an alert still open at the end
    counts if it reached ``policy.min_snippets``. It is reported (confirmed) at ``start_idx + min_snippets - 1``.
    """
    if snippet_s <= 0:
        raise VadInputError(f"snippet_s must be > 0 seconds, got {snippet_s}")
    return _alerts_on_smoothed(smooth_scores(scores, smooth), policy, snippet_s)


# ---------------------------------------------------------------- threshold choice
def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + math.exp(-x))) if x > -700 else 0.0


def _robust_sd(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


@dataclass
class Thresholds:
    """One calibrated score channel: thresholds and how they were found."""

    start: float
    stop: float
    expected_per_hour: float  # the model's estimate at (start, stop) on normal footage of this camera
    rate_range_per_hour: tuple[float, float]  # ~95 % range from the tail fit's scale uncertainty
    observed_alerts: int  # alerts on the calibration footage itself at (start, stop)
    method: str  # "empirical" | "exponential-tail" | "gpd-tail" | "flat"
    base_start: float = float("nan")  # tail methods: the level the tail is fitted above ...
    base_alerts: int = 0  # ... and the alert clusters there
    tail_shape: float = 0.0
    tail_scale: float = float("nan")  # logit units
    gap: float = 0.0  # hysteresis, logit units: stop = sigmoid(logit(start) - gap)


def fit_thresholds(scores: np.ndarray, snippet_seconds: float, false_alarms_per_hour: float = 1.0, smooth: int = 3,
                   min_snippets: int = 2, *, gap: float | None = None, base_alerts: int = 20, gpd_min: int = 30,
                   levels: int = 160) -> Thresholds:
    """Start/stop thresholds whose expected alert rate on this (normal) footage is ``false_alarms_per_hour``.

    ``scores`` [T] raw per-snippet scores in [0, 1] of normal footage, in time order; ``snippet_seconds`` the
    duration of one snippet (s). Alerts are counted with the runtime's own Smoother/Alerter (``simulate_alerts``).

    Method (peaks over threshold with runs declustering, Coles 2001, ch. 4-5; the declustering is the runtime's
    alert rule itself):

    1. the stop threshold follows the start one at a fixed hysteresis in logit units, ``stop = sigmoid(logit(start)
       - gap)``, ``gap`` = one robust SD (1.4826 MAD) of the smoothed score's logit unless given;
    2. for a grid of start levels, count the alerts the runtime would raise on the footage, N(u);
    3. if the footage is long enough to see the target count (``rate * hours >= base_alerts``) the threshold is
       read off N(u) directly (``empirical``);
    4. if the smoothed scores are flat (logit spread < 0.1) or never alert, there is no tail: start midway (logit)
       between their maximum and the score ceiling (``flat``; rate 0 seen, upper bound 3/hours);
    5. otherwise the rate is extrapolated: at the highest base level u0 with ``base_alerts`` alert clusters (or as
       many as the footage gives) each cluster's peak level (the highest start at which it would still be a
       confirmed alert) is recorded; their excesses over u0 in logit units follow a generalised Pareto tail
       (``scipy.stats.genpareto``, shape free with >= ``gpd_min`` clusters, else exponential, shape 0), so the
       rate at u is ``N(u0)/hours * P(excess > u - u0)``, solved for the target.

    Assumptions: the footage is normal and representative of the camera's normal hours (stationary); alert
    clusters at a higher level nest inside those at u0 (one per cluster, true for rare alerts); the logit of the
    peak excess has a GPD/exponential tail. With little footage (few clusters) the estimate is rough; the
    ``rate_range_per_hour`` (scale uncertainty only, ±1.96/sqrt(n)) says how rough. Errors: ``VadInputError``
    for non-finite scores, too few snippets or bad arguments.
    """
    from scipy import stats

    y = np.asarray(scores, np.float64).ravel()
    if not np.isfinite(y).all():
        raise VadInputError(f"calibration scores: {int((~np.isfinite(y)).sum())} of {y.size} are NaN/inf (check the model and footage)")
    if y.size < MIN_SNIPPETS_CAL:
        raise VadInputError(f"calibration footage too short: {y.size} snippets ({y.size * snippet_seconds:.0f} s); "
                            f"give at least {MIN_SNIPPETS_CAL} snippets of normal footage (minutes are better)")
    if not snippet_seconds > 0:
        raise VadInputError(f"snippet_seconds must be > 0, got {snippet_seconds}")
    if not false_alarms_per_hour > 0:
        raise VadInputError(f"--false-alarms-per-hour must be > 0, got {false_alarms_per_hour}")
    AlertPolicy(1.0, 0.0, min_snippets)  # validates min_snippets
    sm = smooth_scores(y, smooth)
    x = _logit(sm)
    gap = max(_robust_sd(x), 0.05) if gap is None else float(gap)
    hours = y.size * snippet_seconds / 3600.0
    target = false_alarms_per_hour * hours  # alerts expected on this footage at the target rate

    def policy(u: float) -> AlertPolicy:
        start = _sigmoid(u)
        return AlertPolicy(start, min(start, _sigmoid(u - gap)), min_snippets)

    def count(u: float) -> list[tuple[int, int]]:
        return _alerts_on_smoothed(sm, policy(u), snippet_seconds)

    # denser towards the top, where the thresholds land: quantiles 1 - geomspace(1, 0.5/T)
    grid = np.unique(np.quantile(x, 1.0 - np.geomspace(1.0, 0.5 / x.size, levels)))
    counts = np.array([len(count(u)) for u in grid])

    def result(u, method, lo_hi, **tail) -> Thresholds:
        p = policy(u)
        n_obs = len(_alerts_on_smoothed(sm, p, snippet_seconds))
        est = tail.pop("est", n_obs / hours)
        return Thresholds(p.start, p.stop, float(est), (float(lo_hi[0]), float(lo_hi[1])), n_obs, method, gap=gap, **tail)

    if counts.max() == 0 or x.max() - x.min() < 0.1:
        # Flat normal scores (or no alert at any level): no tail to fit. Start midway in logit between the
        # footage's highest smoothed score and the score ceiling; rate: 0 seen, "rule of three" upper bound.
        u = (x.max() + _logit(1 - EPS)) / 2
        return result(u, "flat", (0.0, 3.0 / hours), est=0.0)

    if target >= base_alerts:  # enough footage: read the threshold off the simulated counts
        # the lowest level above which the count never exceeds the target (N(u) is not monotone: at the
        # bottom every snippet is above, one long alert)
        bad = np.flatnonzero(counts > target)
        u = float(grid[min(bad[-1] + 1, grid.size - 1)]) if bad.size else float(grid[0])
        n = len(count(u))
        z = 1.96 * math.sqrt(max(n, 1))
        return result(u, "empirical", (max(n - z, 0.0) / hours, (n + z) / hours))
    n_base = min(base_alerts, int(counts.max()))
    u0 = float(grid[np.flatnonzero(counts >= n_base)[-1]])
    clusters = count(u0)
    # g[t]: the highest start level at which an alert opened at t is confirmed (min_snippets above stop).
    ahead = np.full(x.size, -np.inf)
    if min_snippets > 1:
        win = np.lib.stride_tricks.sliding_window_view(np.concatenate([x, np.full(min_snippets - 1, -np.inf)]),
                                                       min_snippets)[:, 1:]
        ahead = win.min(1) + gap
    g = np.minimum(x, ahead) if min_snippets > 1 else x
    peaks = np.array([g[a:b + 1].max() for a, b in clusters])
    excess = np.maximum(peaks - u0, 0.0)
    n0 = len(clusters)
    if n0 >= gpd_min:
        shape, _, scale = stats.genpareto.fit(excess, floc=0)
        method = "gpd-tail"
    else:
        shape, scale, method = 0.0, float(excess.mean()), "exponential-tail"
    scale = max(float(scale), 1e-3)
    dist = stats.genpareto(shape, loc=0, scale=scale)
    frac = min(target / n0, 1.0)
    du = float(dist.isf(frac))
    if not np.isfinite(du):  # bounded tail (shape < 0) and target beyond it: use the endpoint
        du = float(dist.support()[1])
    u = u0 + du
    lo_hi = sorted(n0 / hours * stats.genpareto(shape, loc=0, scale=scale * f).sf(du) for f in
                   (max(1 - 1.96 / math.sqrt(n0), 1e-3), 1 + 1.96 / math.sqrt(n0)))
    return result(u, method, lo_hi, est=n0 / hours * float(dist.sf(du)), base_start=_sigmoid(u0), base_alerts=n0,
                  tail_shape=float(shape), tail_scale=scale)


def saturation_message(scores: np.ndarray, smooth: int, start: float | None = None, camera: str = "") -> str | None:
    """One line saying why the model cannot be calibrated on this camera, or None if it can."""
    sm = smooth_scores(scores, smooth)
    frac = float((sm >= SATURATED_SCORE).mean())
    where = f"{camera}: " if camera else ""
    advice = ("fine-tune the model on this camera's footage (vad-train), or calibrate scene normality instead "
              "(vad-calibrate --normality, or vad-runtime --calibration-mode normality)")
    if frac >= 0.5:
        return (f"{where}the model cannot separate this camera's normal footage: {100 * frac:.0f}% of normal snippets "
                f"score >= {SATURATED_SCORE}; {advice}")
    if start is not None and start > 1 - MIN_HEADROOM:
        return (f"{where}the model leaves no headroom on this camera: the target rate needs a start threshold of "
                f"{start:.5f} (normal footage peaks at {sm.max():.5f}); {advice}")
    return None


# ---------------------------------------------------------------- scene normality
def _normalise(features: np.ndarray, normalise: bool = True) -> np.ndarray:
    f = np.asarray(features, np.float32)
    if f.ndim != 2 or not np.isfinite(f).all():
        raise VadInputError(f"features: expected finite [snippets, D], got shape {list(f.shape)}")
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12) if normalise else f


def kcenter_coreset(features: np.ndarray, size: int) -> np.ndarray:
    """Indices of ``size`` rows chosen by greedy k-center (farthest-point) selection, first row first.

    Every row is then within the coreset's covering radius of a kept row (2-approximation of the optimal
    radius; Gonzalez 1985, used by PatchCore, Roth et al. 2022). [N, D] -> [min(size, N)] int."""
    from sklearn.metrics import pairwise_distances

    n = features.shape[0]
    if size >= n:
        return np.arange(n)
    chosen = [0]
    dist = pairwise_distances(features, features[:1]).ravel()
    for _ in range(size - 1):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = np.minimum(dist, pairwise_distances(features, features[nxt:nxt + 1]).ravel())
    return np.asarray(chosen)


def motion_descriptor(frames: list[np.ndarray], grid: tuple[int, int] = (6, 8)) -> np.ndarray:
    """The snippet's sampled frames (BGR, any size) -> [2 * rows * cols] motion descriptor: per cell of a
    ``grid`` (rows, cols), the mean and the max over consecutive sampled frames of the absolute grey-level
    change, as log1p. The backbone's crop-mean feature is an appearance average and barely changes when a scene
    is played faster, frozen or shuffled; this does (0 for a frozen camera, large for running or flicker)."""
    import cv2

    if len(frames) < 2:
        raise VadInputError(f"motion descriptor: need >= 2 sampled frames, got {len(frames)}")
    rows, cols = grid
    g = np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (cols, rows), interpolation=cv2.INTER_AREA)
                  for f in frames]).astype(np.float32)
    d = np.abs(np.diff(g, axis=0))  # [F-1, rows, cols]
    return np.log1p(np.concatenate([d.mean(0).ravel(), d.max(0).ravel()])).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _threadpools():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class NormalityMemory:
    """A camera's normal snippet features (a k-center coreset of at most ``size`` rows; L2-normalised when
    ``normalise``, i.e. for backbone features, whose direction carries the content).

    ``distance(features [N, D]) -> [N]``: mean Euclidean distance of each (normalised) feature to its ``k``
    nearest memory rows (scikit-learn ``NearestNeighbors``, exact brute force). ``z(features)``: the robust
    z-score of ``log(distance)`` against the calibration footage (``center``, ``scale``). Memory: size x D x 4
    bytes (1024 x 1280-d: 5.2 MB); cost per snippet: one exact search, O(size x D).
    """

    def __init__(self, bank: np.ndarray, k: int = 1, center: float = 0.0, scale: float = 1.0, normalise: bool = True):
        from sklearn.neighbors import NearestNeighbors

        self.normalise = bool(normalise)

        self.bank = np.ascontiguousarray(bank, np.float32)
        if self.bank.ndim != 2 or self.bank.shape[0] < 1:
            raise VadInputError(f"normality memory: expected [rows, D], got {list(self.bank.shape)}")
        if not 1 <= k <= self.bank.shape[0]:
            raise VadInputError(f"normality k must be in 1..{self.bank.shape[0]}, got {k}")
        self.k, self.center, self.scale = int(k), float(center), float(scale)
        self.index = NearestNeighbors(n_neighbors=self.k, algorithm="brute", metric="euclidean").fit(self.bank)

    @classmethod
    def build(cls, features: np.ndarray, size: int = 1024, k: int = 1, normalise: bool = True) -> "NormalityMemory":
        f = _normalise(features, normalise)
        if size < 1:
            raise VadInputError(f"--memory-size must be >= 1, got {size}")
        return cls(f[kcenter_coreset(f, size)], k, normalise=normalise)

    @property
    def feature_dim(self) -> int:
        return self.bank.shape[1]

    def distance(self, features: np.ndarray) -> np.ndarray:
        f = _normalise(np.atleast_2d(features), self.normalise)
        if f.shape[1] != self.feature_dim:
            raise VadInputError(f"features: {f.shape[1]}-d, the normality memory holds {self.feature_dim}-d features "
                                "(calibrated with another backbone)")
        # one thread: a per-snippet query is tiny, and OpenMP workers fight the backbone's for the cores
        # (1024 x 1280-d on 2 busy cores: 131 ms with the default pool, 1.4 ms on one thread; the controller is
        # built once because building it scans the loaded libraries, ~6 ms)
        with _threadpools().limit(limits=1):
            d, _ = self.index.kneighbors(f)
        return d.mean(1)

    def z(self, features: np.ndarray) -> np.ndarray:
        return (np.log(self.distance(features) + EPS) - self.center) / self.scale


def cross_validated_distances(features: np.ndarray, size: int, k: int, folds: int = 5, guard: int = 2,
                              normalise: bool = True) -> np.ndarray:
    """[T] novelty distance of each calibration snippet to a memory built *without* its time block.

    A snippet's own feature (and its near-duplicate neighbours) in the memory would give it distance ~0 and
    thresholds far too low; time-block folds (``guard`` snippets left out at each block edge) score the footage
    the way new footage will be scored. The deployed memory uses all of it (slightly denser: conservative)."""
    f = _normalise(features, normalise)
    t = f.shape[0]
    out = np.empty(t)
    edges = np.linspace(0, t, folds + 1).astype(int)
    for a, b in zip(edges[:-1], edges[1:]):
        keep = np.r_[0:max(a - guard, 0), min(b + guard, t):t]
        if keep.size < k:
            raise VadInputError(f"calibration footage too short for scene normality: {t} snippets")
        out[a:b] = NormalityMemory.build(f[keep], size, k, normalise).distance(f[a:b])
    return out


def normality_channel(features: np.ndarray, size: int, k: int, normalise: bool = True) -> tuple[NormalityMemory, np.ndarray]:
    """Calibration footage features [T, D] -> (deployed memory with its z-score centre/scale, [T] cross-validated
    z-scores of the footage). Scale floor: a 5 % change of distance (log 0.05), so a static scene is not
    standardised by its sensor noise alone."""
    log_d = np.log(cross_validated_distances(features, size, k, normalise=normalise) + EPS)
    memory = NormalityMemory.build(features, size, k, normalise)
    memory.center, memory.scale = float(np.median(log_d)), max(_robust_sd(log_d), 0.05)
    return memory, (log_d - memory.center) / memory.scale


# ---------------------------------------------------------------- the calibration record
def model_hash(path: str | os.PathLike) -> str:
    """sha256 (hex) of a model file's bytes (an engine, ONNX file or checkpoint)."""
    p = Path(path)
    if not p.is_file():
        raise VadInputError(f"{p}: model file not found")
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_camera(camera: str) -> str:
    if not _CAMERA_RE.match(camera or ""):
        raise VadInputError(f"--camera {camera!r}: use letters, digits, '.', '_' or '-' (it names the calibration files)")
    return camera


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


MEMORIES = {"memory": "memory", "motion_memory": "motion"}  # field -> file suffix (CAMERA.SUFFIX.npy)


@dataclass
class Calibration:
    """A camera's calibrated alert rule. ``score(raw, feature)`` is what the runtime smooths and alerts on,
    with ``policy`` (thresholds + min duration) and ``smooth``/``window`` as calibrated."""

    camera: str
    model_sha256: str
    mode: str  # "model" | "normality" | "fused"
    thresholds: Thresholds
    smooth: int
    min_snippets: int
    window: int
    snippet_seconds: float
    calibration_snippets: int
    false_alarms_per_hour: float  # the target
    model_center: float = 0.0  # fused: median / robust SD of logit(raw model score) on the calibration footage
    model_scale: float = 1.0
    backbone_sha256: str | None = None
    memory: NormalityMemory | None = None  # appearance: crop-mean backbone features
    motion_memory: NormalityMemory | None = None  # motion: motion_descriptor of the sampled frames
    notes: list[str] = field(default_factory=list)  # e.g. why the model channel was dropped
    created_utc: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @property
    def policy(self) -> AlertPolicy:
        return AlertPolicy(self.thresholds.start, self.thresholds.stop, self.min_snippets)

    def score(self, raw: float | np.ndarray, feature: np.ndarray | None = None,
              motion: np.ndarray | None = None) -> float | np.ndarray:
        """Per-snippet score to feed the runtime's Smoother. ``raw``: model score(s), scalar or [N]; for
        ``normality``/``fused``: ``feature`` the crop-mean backbone feature(s) [D] / [N, D] (what the sliding
        window gets) and, if ``uses_motion``, ``motion`` = ``motion_descriptor(snippet sampled frames)`` [M] / [N, M].

        Fusion: ``sigmoid(max(z_model, z_appearance, z_motion) / SQUASH)``, each z a robust z-score against this
        camera's calibration footage (model: of its logit; novelty: of the log k-NN distance)."""
        if self.mode == "model":
            return raw
        if feature is None or (self.motion_memory is not None and motion is None):
            raise VadInputError(f"calibration {self.camera}: mode {self.mode} needs the snippet features"
                                + (" and motion descriptor" if self.motion_memory is not None else ""))
        z = self.memory.z(feature)
        if self.motion_memory is not None:
            z = np.maximum(z, self.motion_memory.z(motion))
        if self.mode == "fused":
            z = np.maximum(z, (_logit(raw) - self.model_center) / self.model_scale)
        s = 1.0 / (1.0 + np.exp(-z / SQUASH))
        return float(s[0]) if np.ndim(feature) == 1 else s

    @property
    def uses_motion(self) -> bool:
        return self.motion_memory is not None

    def check_settings(self, window: int, smooth: int, feature_dim: int | None = None) -> None:
        """Refuse (one line) running with another sliding window / smoothing / backbone width than calibrated:
        the thresholds hold only for the score the calibration simulated."""
        if (window, smooth) != (self.window, self.smooth):
            raise VadInputError(f"calibration {self.camera}: made with --window {self.window} --smooth {self.smooth}, "
                                f"running with --window {window} --smooth {smooth}; use the same or recalibrate")
        if feature_dim is not None and self.memory is not None and feature_dim != self.memory.feature_dim:
            raise VadInputError(f"calibration {self.camera}: memory holds {self.memory.feature_dim}-d features, the backbone "
                                f"gives {feature_dim}-d; recalibrate")

    def summary(self) -> str:
        t = self.thresholds
        def rate(v: float) -> str:
            return f"{v:.2g}" if v >= 0.01 else "<0.01"

        return (f"calibration {self.camera}: {self.mode} score, start {t.start:.4g} stop {t.stop:.4g} min {self.min_snippets} "
                f"smooth {self.smooth} window {self.window}; expected {rate(t.expected_per_hour)} false alarms/h "
                f"(~95% {rate(t.rate_range_per_hour[0])}-{rate(t.rate_range_per_hour[1])}, target {self.false_alarms_per_hour:g}, "
                f"{t.method}, {self.calibration_snippets * self.snippet_seconds / 60:.1f} min of footage)")

    # ---- files
    def save(self, directory: str | os.PathLike, camera: str | None = None) -> Path:
        """Write ``DIR/CAMERA.calib.json`` (+ ``CAMERA.memory.npy``, ``CAMERA.motion.npy``) atomically, the
        arrays first, the JSON with their sha256 last; returns the JSON path."""
        if camera is not None:
            self.camera = camera
        check_camera(self.camera)
        d = Path(directory)
        rec = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in MEMORIES and f.name != "thresholds"}
        rec.update(schema=SCHEMA, thresholds=asdict(self.thresholds))
        for key, suffix in MEMORIES.items():
            mem: NormalityMemory | None = getattr(self, key)
            if mem is None:
                continue
            path = d / f"{self.camera}.{suffix}.npy"
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, mem.bank)
            rec[key] = {"k": mem.k, "center": mem.center, "scale": mem.scale, "normalise": mem.normalise,
                        "rows": int(mem.bank.shape[0]), "dim": mem.feature_dim, "sha256": _file_sha(path)}
        js = d / f"{self.camera}.calib.json"
        atomic_write_text(js, json.dumps(rec, indent=2) + "\n")
        return js

    @classmethod
    def load(cls, directory: str | os.PathLike, camera: str, model_hash: str, backbone_hash: str | None = None) -> "Calibration":
        """Read a camera's calibration; refuses (one line) a calibration made for another model (sha256) or
        backbone, a schema from another version, or a memory file that does not belong to the JSON."""
        check_camera(camera)
        js = Path(directory) / f"{camera}.calib.json"
        if not js.is_file():
            raise VadInputError(f"{js}: no calibration for camera {camera!r} (make one: vad-calibrate --camera {camera} ...)")
        try:
            rec = json.loads(js.read_text(encoding="utf-8"))
            if rec.get("schema") != SCHEMA:
                raise VadInputError(f"{js}: calibration schema {rec.get('schema')!r}, this vadedge reads {SCHEMA}; recalibrate")
            if rec["model_sha256"] != model_hash:
                raise VadInputError(f"{js}: calibrated for another model (sha256 {rec['model_sha256'][:12]}…, this model "
                                    f"{model_hash[:12]}…); recalibrate with vad-calibrate")
            if backbone_hash and rec.get("backbone_sha256") and rec["backbone_sha256"] != backbone_hash:
                raise VadInputError(f"{js}: calibrated with another backbone (sha256 {rec['backbone_sha256'][:12]}…); recalibrate")
            memories = {}
            for key, suffix in MEMORIES.items():
                m = rec.get(key)
                if not m:
                    memories[key] = None
                    continue
                mem = js.with_name(f"{camera}.{suffix}.npy")
                if not mem.is_file() or _file_sha(mem) != m["sha256"]:
                    raise VadInputError(f"{mem}: missing or not the memory {js.name} was saved with (sha256 differs); recalibrate")
                memories[key] = NormalityMemory(np.load(mem, allow_pickle=False), m["k"], m["center"], m["scale"], m["normalise"])
            th = rec["thresholds"]
            th["rate_range_per_hour"] = tuple(th["rate_range_per_hour"])
            cal = cls(camera, rec["model_sha256"], rec["mode"], Thresholds(**th), int(rec["smooth"]), int(rec["min_snippets"]),
                      int(rec["window"]),
                      float(rec["snippet_seconds"]), int(rec["calibration_snippets"]), float(rec["false_alarms_per_hour"]),
                      float(rec["model_center"]), float(rec["model_scale"]), rec.get("backbone_sha256"),
                      memories["memory"], memories["motion_memory"], list(rec.get("notes", [])), rec.get("created_utc", ""))
            cal.policy  # validates the thresholds
            return cal
        except VadInputError:
            raise
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
            raise VadInputError(f"{js}: not a valid calibration file ({type(exc).__name__}: {exc})") from None


def choose_thresholds(scores: np.ndarray, snippet_seconds: float, false_alarms_per_hour: float = 1.0, smooth: int = 3,
                      min_snippets: int = 2, *, window: int = 32, camera: str = "camera", model_sha256: str = "",
                      check_saturation: bool = True, backbone_sha256: str | None = None, **fit) -> Calibration:
    """Model-score calibration: ``scores`` [T] raw model scores of normal footage -> ``Calibration`` (mode
    ``model``). See ``fit_thresholds`` for the method and its assumptions. Raises ``SaturationError`` (a
    ``VadInputError``, one line, what to do) when the model cannot separate this camera's normal footage."""
    if check_saturation:
        msg = saturation_message(scores, smooth, camera=camera)
        if msg:
            raise SaturationError(msg)
    th = fit_thresholds(scores, snippet_seconds, false_alarms_per_hour, smooth, min_snippets, **fit)
    if check_saturation:
        msg = saturation_message(scores, smooth, th.start, camera)
        if msg:
            raise SaturationError(msg)
    # The backbone's hash too: the model's scores are a function of the backbone's features.
    return Calibration(camera, model_sha256, "model", th, smooth, min_snippets, window, snippet_seconds, len(scores),
                       false_alarms_per_hour, backbone_sha256=backbone_sha256)


def calibrate(scores: np.ndarray, features: np.ndarray | None, snippet_seconds: float, *, motion: np.ndarray | None = None,
              mode: str = "model", false_alarms_per_hour: float = 1.0, smooth: int = 3, min_snippets: int = 2,
              window: int = 32, camera: str = "camera", model_sha256: str = "", backbone_sha256: str | None = None,
              memory_size: int = 1024, k: int = 1, log=None, **fit) -> Calibration:
    """Calibrate one camera from its normal footage: ``scores`` [T] raw model scores, ``features`` [T, D]
    (crop-mean snippet features) and optionally ``motion`` [T, M] (``motion_descriptor`` per snippet; adds the
    motion memory). ``mode``: model | normality | fused (features needed for the last two).

    In ``fused`` mode a saturated model channel is dropped (a note, and ``log`` is called with the one-line
    reason) and the camera is calibrated on scene normality alone; in ``model`` mode it raises SaturationError.
    """
    if mode not in ("model", "normality", "fused"):
        raise VadInputError(f"calibration mode must be model, normality or fused, got {mode!r}")
    check_camera(camera)
    if mode == "model":
        return choose_thresholds(scores, snippet_seconds, false_alarms_per_hour, smooth, min_snippets, window=window,
                                 camera=camera, model_sha256=model_sha256, backbone_sha256=backbone_sha256, **fit)
    scores = np.asarray(scores, np.float64).ravel()
    if features is None or len(features) != len(scores):
        raise VadInputError(f"scene normality needs one feature per snippet ({len(scores)} scores)")
    if len(scores) < MIN_SNIPPETS_CAL:
        raise VadInputError(f"calibration footage too short: {len(scores)} snippets ({len(scores) * snippet_seconds:.0f} s); "
                            f"give at least {MIN_SNIPPETS_CAL} snippets ({MIN_SNIPPETS_CAL * snippet_seconds:.0f} s)")
    notes = []
    if mode == "fused":
        msg = saturation_message(scores, smooth, camera=camera)
        if msg:
            notes.append(f"model score dropped: {msg}")
            mode = "normality"
            if log:
                log(f"warning: {msg.split(';')[0]}; calibrating scene normality alone")
    memory, z = normality_channel(features, memory_size, k)
    motion_memory = None
    if motion is not None:
        if len(motion) != len(scores):
            raise VadInputError(f"motion: {len(motion)} descriptors for {len(scores)} snippets")
        motion_memory, zm = normality_channel(motion, memory_size, k, normalise=False)
        z = np.maximum(z, zm)
    mc, ms = 0.0, 1.0
    if mode == "fused":
        lm = _logit(scores)
        mc, ms = float(np.median(lm)), max(_robust_sd(lm), 1.0)  # floor: one logit unit, the sigmoid's own scale
        z = np.maximum(z, (lm - mc) / ms)
    th = fit_thresholds(1.0 / (1.0 + np.exp(-z / SQUASH)), snippet_seconds, false_alarms_per_hour, smooth, min_snippets, **fit)
    return Calibration(camera, model_sha256, mode, th, smooth, min_snippets, window, snippet_seconds, len(scores),
                       false_alarms_per_hour, model_center=mc, model_scale=ms, backbone_sha256=backbone_sha256, memory=memory,
                       motion_memory=motion_memory, notes=notes)


# ---------------------------------------------------------------- scoring footage as the runtime does
def score_snippets(snippets: Iterable[list[np.ndarray]], encoder, runner, window: int,
                   max_snippets: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampled-frame snippets -> (raw scores [T], crop-mean features [T, D], motion descriptors [T, M]), through
    the same calls as ``vad-runtime``: ``SnippetEncoder.encode_sampled``, crop mean, ``SlidingWindow.push``."""
    if runner.feature_dim != encoder.feature_dim:
        raise VadInputError(f"model expects {runner.feature_dim}-d features but the backbone gives {encoder.feature_dim}-d")
    sw = SlidingWindow(runner, window)
    scores, feats, motion = [], [], []
    for snippet in snippets:
        f = encoder.encode_sampled(snippet).mean(0)
        scores.append(sw.push(f)[0])
        feats.append(f)
        motion.append(motion_descriptor(snippet))
        if max_snippets is not None and len(scores) >= max_snippets:
            break
    return (np.asarray(scores, np.float64), np.asarray(feats, np.float32).reshape(len(feats), encoder.feature_dim),
            np.asarray(motion, np.float32))


def video_fps(path: str | os.PathLike) -> float:
    """The container's frame rate; one-line error if OpenCV cannot read it or it is outside (0, 240]."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VadInputError(f"{path}: OpenCV cannot open this video")
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()
    if not 0 < fps <= 240:
        raise VadInputError(f"{path}: frame rate {fps} is not in (0, 240] fps; cannot tell snippet durations")
    return fps


def score_video(path: str | os.PathLike, encoder, runner, window: int, max_seconds: float | None = None,
                motion: bool = False):
    """A video file -> (raw scores [T], features [T, D], snippet_seconds), as vad-runtime scores that file
    (``iter_video_snippets`` + ``score_snippets``); ``max_seconds`` stops after that much footage. With
    ``motion=True`` a fourth item, the motion descriptors [T, M]."""
    from .encoder import iter_video_snippets

    if not Path(path).is_file():
        raise VadInputError(f"--video {path}: file not found")
    snippet_s = encoder.snippet_frames / video_fps(path)
    limit = None if max_seconds is None else max(1, int(max_seconds / snippet_s))
    scores, feats, moves = score_snippets(iter_video_snippets(path, encoder), encoder, runner, window, limit)
    if scores.size == 0:
        raise VadInputError(f"{path}: fewer than {encoder.snippet_frames} decodable frames, no snippet")
    return (scores, feats, snippet_s, moves) if motion else (scores, feats, snippet_s)
