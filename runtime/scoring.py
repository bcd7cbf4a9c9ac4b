"""Sliding-window scoring, score smoothing and alerting with hysteresis (per source)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

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

    def push(self, feature: np.ndarray) -> tuple[float, int | None]:
        self.features.append(np.asarray(feature, np.float32))
        out = self.runner.run(np.stack(self.features)[None])
        expert = int(out["expert"][0, -1]) if "expert" in out else None
        return float(out["scores"][0, -1]), expert


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
class Alert:
    source: str
    start: float
    end: float
    peak: float
    snippets: int
    expert: int | None = None  # most frequent expert over the alert (GS-MoE class / MoME expert)
    expert_name: str | None = None
    confirmed: bool = False  # reached min_snippets
    closed_by: str = "score"
    clip: str | None = None  # saved clip around the alert, if any

    def to_record(self) -> dict:
        rec = {"event": "anomaly", "source": self.source, "start_s": round(self.start, 3), "end_s": round(self.end, 3),
               "duration_s": round(self.end - self.start, 3), "peak_score": round(self.peak, 4), "snippets": self.snippets,
               "closed_by": self.closed_by}
        if self.clip:
            rec["clip"] = self.clip
        if self.expert is not None:
            rec["expert"] = self.expert
            if self.expert_name:
                rec["expert_name"] = self.expert_name
        return rec


class Alerter:
    """Hysteresis: an alert opens at ``start``, stays open while the score is >= ``stop``, and is reported
    only if it lasted ``min_snippets``. ``update`` returns (newly confirmed alert or None, closed alert or None)."""

    def __init__(self, source: str, policy: AlertPolicy, expert_names: list[str] | None = None):
        self.source, self.policy, self.expert_names = source, policy, expert_names or []
        self.open: Alert | None = None
        self._experts: list[int] = []

    def _finish(self, alert: Alert) -> Alert:
        if self._experts:
            alert.expert = int(np.bincount(self._experts).argmax())
            if alert.expert < len(self.expert_names):
                alert.expert_name = self.expert_names[alert.expert]
        return alert

    def update(self, t_start: float, t_end: float, score: float, expert: int | None = None):
        confirmed = closed = None
        if self.open is None:
            if score >= self.policy.start:
                self.open = Alert(self.source, t_start, t_end, score, 1)
                self._experts = [expert] if expert is not None else []
        elif score >= self.policy.stop:
            a = self.open
            a.end, a.peak, a.snippets = t_end, max(a.peak, score), a.snippets + 1
            if expert is not None:
                self._experts.append(expert)
        else:
            closed = self.close("score")
        if self.open is not None and not self.open.confirmed and self.open.snippets >= self.policy.min_snippets:
            self.open.confirmed = True
            confirmed = self._finish(self.open)
        return confirmed, closed

    def close(self, reason: str) -> Alert | None:
        """Close the open alert (end of stream, shutdown); returns it if it was long enough to report."""
        alert, self.open = self.open, None
        if alert is None or alert.snippets < self.policy.min_snippets:
            return None
        alert.closed_by = reason
        return self._finish(alert)
