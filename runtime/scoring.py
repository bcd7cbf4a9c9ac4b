"""Sliding-window scoring, score smoothing and alerting with hysteresis (per source)."""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from vadedge.errors import VadInputError


class SlidingWindow:
    """The last ``size`` snippet features; each new snippet is scored with the model over the whole window.

    The score of the newest snippet is the model's score for the last position of the window, i.e. exactly
    what offline scoring of the same ``size`` features gives (tested).
    """

    def __init__(self, runner, size: int):
        if size < 1:
            raise VadInputError(f"--window must be >= 1 snippet, got {size}")
        self.runner, self.size = runner, size
        self.features: deque = deque(maxlen=size)

    def append(self, feature: np.ndarray) -> np.ndarray:
        """Add the newest snippet's feature; returns the window to score, [T, F] with T = min(snippets, size)."""
        self.features.append(np.asarray(feature, np.float32))
        return np.stack(self.features)

    def push(self, feature: np.ndarray) -> tuple[float, int | None]:
        return score_windows(self.runner, [self.append(feature)])[0]


def score_windows(runner, windows: list[np.ndarray], sizes: list[int] | None = None) -> list[tuple[float, int | None]]:
    """(raw score, expert or None) of the last snippet of each window [T, F], in order, with as few ``runner.run``
    calls as possible: windows of equal T are stacked into one [B, T, F] call (at most ``runner.max_batch``);
    windows of different T (still filling) go in separate calls, never padded (padding would change the scores of
    attention / memory models). Each window's row is computed independently of the others in its batch (tested
    to 1e-5 for UR-DMU, GS-MoE, MoME on every backend). ``sizes``, if given, receives each call's batch size."""
    out: list = [None] * len(windows)
    by_length: dict[int, list[int]] = {}
    for i, w in enumerate(windows):
        by_length.setdefault(len(w), []).append(i)
    for idx in by_length.values():
        step = runner.max_batch or len(idx)
        for k in range(0, len(idx), step):
            part = idx[k:k + step]
            res = runner.run(np.stack([windows[i] for i in part]))
            for row, i in enumerate(part):
                out[i] = (float(res["scores"][row, -1]), int(res["expert"][row, -1]) if "expert" in res else None)
            if sizes is not None:
                sizes.append(len(part))
    return out


class Smoother:
    """Mean of the last ``k`` raw scores (k = 1: no smoothing)."""

    def __init__(self, k: int):
        if k < 1:
            raise VadInputError(f"--smooth must be >= 1, got {k}")
        self.values: deque = deque(maxlen=k)

    def __call__(self, score: float) -> float:
        self.values.append(score)
        return float(np.mean(self.values))


@dataclass
class AlertPolicy:
    start: float = 0.6  # open an alert when the smoothed score reaches this
    stop: float = 0.4  # close it when the score falls below this (stop <= start: hysteresis)
    min_snippets: int = 2  # alerts shorter than this are discarded as blips

    def __post_init__(self):
        if not 0.0 <= self.stop <= self.start <= 1.0:
            raise VadInputError(f"alert thresholds need 0 <= stop <= start <= 1, got start {self.start}, stop {self.stop}")
        if self.min_snippets < 1:
            raise VadInputError(f"--min-duration must be >= 1 snippet, got {self.min_snippets}")


@dataclass
class CameraScoring:
    """One camera's scoring: window, smoothing, alert thresholds and update rate (``--config`` camera blocks; a
    calibration (issue 12) replaces ``policy`` per camera)."""

    window: int = 32
    smooth: int = 3
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    update_every: float = 5.0


EVENT_SCHEMA = "vadedge.event/1"
EVENT_TYPES = ("start", "update", "end")


def utc_iso(epoch_s: float) -> str:
    """Epoch seconds -> ISO-8601 UTC with milliseconds, e.g. ``2026-11-30T05:26:34.123Z``."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Alert:
    source: str
    start: float  # stream-relative seconds
    end: float
    peak: float
    snippets: int
    anchor: float = 0.0  # epoch seconds of the source's stream time 0: UTC = anchor + stream seconds
    score: float = 0.0  # the latest smoothed score
    id: str = ""
    expert: int | None = None  # most frequent expert over the alert (GS-MoE class / MoME expert)
    expert_name: str | None = None
    confirmed: bool = False  # reached min_snippets
    closed_by: str | None = None  # "score", "end of stream", "source lost", "shutdown"
    clip: str | None = None  # saved clip around the alert, if any
    snapshot: str | None = None  # JPEG of the peak snippet, if clips are on
    reported_peak: float = 0.0  # peak in the last start/update event
    reported_at: float = 0.0  # stream time of the last start/update event

    def to_record(self, kind: str = "end", **extra) -> dict:
        """One event of the versioned schema (README "Event schema"); ``kind`` is start, update or end."""
        if kind not in EVENT_TYPES:
            raise ValueError(f"event type must be one of {EVENT_TYPES}, got {kind!r}")
        rec = {"schema": EVENT_SCHEMA, "type": kind, "alert_id": self.id, "source": self.source,
               "start_s": round(self.start, 3), "end_s": round(self.end, 3), "duration_s": round(self.end - self.start, 3),
               "start_utc": utc_iso(self.anchor + self.start), "end_utc": utc_iso(self.anchor + self.end),
               "peak_score": round(self.peak, 4), "score": round(self.score, 4), "snippets": self.snippets}
        if kind == "end":
            rec["closed_by"] = self.closed_by or "score"
            if self.clip:
                rec["clip"] = self.clip
            if self.snapshot:
                rec["snapshot"] = self.snapshot
        if self.expert is not None:
            rec["expert"] = self.expert
            if self.expert_name:
                rec["expert_name"] = self.expert_name
        rec.update(extra)
        return rec


class Alerter:
    """Hysteresis: an alert opens at ``start``, stays open while the score is >= ``stop``, and is reported
    only if it lasted ``min_snippets``. ``update`` returns (newly confirmed alert or None, closed alert or None)."""

    def __init__(self, source: str, policy: AlertPolicy, expert_names: list[str] | None = None):
        self.source, self.policy, self.expert_names = source, policy, expert_names or []
        self.open: Alert | None = None
        self.count = 0  # alerts opened (confirmed or not)
        self._experts: list[int] = []

    def _finish(self, alert: Alert) -> Alert:
        if self._experts:
            alert.expert = int(np.bincount(self._experts).argmax())
            if alert.expert < len(self.expert_names):
                alert.expert_name = self.expert_names[alert.expert]
        return alert

    def update(self, t_start: float, t_end: float, score: float, expert: int | None = None, anchor: float = 0.0):
        confirmed = closed = None
        if self.open is None:
            if score >= self.policy.start:
                self.count += 1
                self.open = Alert(self.source, t_start, t_end, score, 1, anchor=anchor, score=score,
                                  id=f"{uuid.uuid4().hex[:12]}")
                self._experts = [expert] if expert is not None else []
        elif score >= self.policy.stop:
            a = self.open
            a.end, a.peak, a.snippets, a.score = t_end, max(a.peak, score), a.snippets + 1, score
            if expert is not None:
                self._experts.append(expert)
        else:
            self.open.score = score
            closed = self.close("score")
        if self.open is not None and not self.open.confirmed and self.open.snippets >= self.policy.min_snippets:
            self.open.confirmed = True
            confirmed = self._finish(self.open)
        return confirmed, closed

    def due_update(self, every_s: float) -> Alert | None:
        """The open confirmed alert if its peak rose (by 0.01 or more) since its last event and ``every_s`` stream
        seconds have passed since then; else None."""
        a = self.open
        if a is None or not a.confirmed or a.peak < a.reported_peak + 0.01 or a.end - a.reported_at < every_s:
            return None
        return self.mark_reported(self._finish(a))

    @staticmethod
    def mark_reported(alert: Alert) -> Alert:
        alert.reported_peak, alert.reported_at = alert.peak, alert.end
        return alert

    def close(self, reason: str) -> Alert | None:
        """Close the open alert (end of stream, shutdown); returns it if it was long enough to report."""
        alert, self.open = self.open, None
        if alert is None or alert.snippets < self.policy.min_snippets:
            return None
        alert.closed_by = reason
        return self._finish(alert)
