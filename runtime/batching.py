"""Batched multi-stream scoring (``vad-runtime --max-batch N --max-wait-ms MS``): the snippets that are ready across
all sources go through the backbone in one call and their windows through the head in one call, as NVIDIA
DeepStream batches the frames of all its sources.

    gather        up to ``max_batch`` ready snippets from the per-source queues (round-robin), waiting at most
                  ``max_wait`` for more after the first; a source's end/loss marker ends the batch, so it is
                  handled after that source's earlier snippets and before its later ones
    BatchScorer   backbone: one ``SnippetEncoder.encode_batch`` per encoder object; head: each snippet's feature
                  appended to its own source's window in arrival order, then one ``score_windows`` per runner
                  object (windows of equal length stacked, windows still filling grouped by length, no padding)

Scores equal per-snippet scoring (tested to 1e-5 with 1, 3 and 8 sources of different lengths and frame rates):
every row of a backbone or head call is computed independently of the other rows. Per-source state (window,
smoothing, alerts, calibration, clips) stays in ``Runtime``, which reports each ``Scored`` in order
(``Runtime._report``). The queues are unchanged: files still wait for the scorer (lossless), live sources still
drop whole snippets when it falls behind. With ``max_batch`` 1 this is exactly the one-snippet-at-a-time pipeline.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .backends import ScorerUnavailable
from .scoring import score_windows
from .sources import SnippetQueue, SourceEnd, SourceLost

STOP_POLL_S = 0.2  # a long --max-wait-ms is waited in slices, so a stop is seen within this


def gather(queue: SnippetQueue, max_batch: int, max_wait_s: float, timeout: float,
           stop: threading.Event | None = None) -> tuple[list, object | None]:
    """(ready snippets, end/loss marker or None): waits up to ``timeout`` seconds for a first item, then at most
    ``max_wait_s`` more for others while fewer than ``max_batch`` are taken (0: only those already queued).
    ``stop`` set (a signal, --duration) ends the wait within ``STOP_POLL_S``."""
    first = queue.get(timeout)
    if first is None or isinstance(first, (SourceEnd, SourceLost)):
        return [], first
    batch, deadline = [first], time.monotonic() + max_wait_s
    while len(batch) < max_batch and not (stop is not None and stop.is_set()):
        left = deadline - time.monotonic()
        item = queue.get(min(max(left, 0.0), STOP_POLL_S))
        if item is None:
            if left <= STOP_POLL_S:
                break
            continue
        if isinstance(item, (SourceEnd, SourceLost)):
            return batch, item
        batch.append(item)
    return batch, None


@dataclass
class Scored:
    """One snippet after the backbone and the head: its crop features [crops, D], raw score and expert; the
    seconds of the calls it waited for (``timings``: preprocess, backbone, head); or the scorer's error."""

    snippet: object
    feats: np.ndarray | None = None
    raw: float = float("nan")
    expert: int | None = None
    timings: dict = field(default_factory=dict)
    preview: np.ndarray | None = None  # the last sampled frame (--display)
    error: ScorerUnavailable | None = None
    started: float = 0.0  # perf_counter when its batch began
    done: float = 0.0  # perf_counter when its score was ready


def _groups(items: list, key) -> list[tuple[object, list]]:
    """Items grouped by the identity of ``key(item)``, in first-seen order (the same object shared by several
    cameras is one group: one call)."""
    groups: dict[int, tuple[object, list]] = {}
    for it in items:
        obj = key(it)
        groups.setdefault(id(obj), (obj, []))[1].append(it)
    return list(groups.values())


class BatchScorer:
    """Encodes and scores a batch of snippets; ``encoder_for(source)`` / ``window_for(source)`` give each source's
    backbone encoder and its ``SlidingWindow`` (whose runner is the source's head). ``stats`` gets each call's
    batch size (``vad_batch_size``) and busy seconds (``vad_stage_busy_seconds_total``)."""

    def __init__(self, encoder_for, window_for, stats=None, log=print, max_batch: int = 1):
        self.encoder_for, self.window_for, self.stats, self.log = encoder_for, window_for, stats, log
        self.max_batch = max_batch
        self._noted: set[int] = set()

    def score(self, snippets: list) -> list[Scored]:
        """Every snippet's ``Scored``, in the order given (each source's snippets in its own order)."""
        start = time.perf_counter()
        results = [Scored(s, started=start) for s in snippets]
        for encoder, items in _groups(results, lambda r: self.encoder_for(r.snippet.source)):
            self._encode(encoder, items)
        scoring = [r for r in results if r.error is None]
        # In arrival order: a source's second snippet in this batch is scored over a window holding its first.
        windows = [self.window_for(r.snippet.source).append(r.feats.mean(0)) for r in scoring]
        for runner, items in _groups(list(zip(scoring, windows)), lambda rw: self.window_for(rw[0].snippet.source).runner):
            self._head(runner, items)
        return results

    def _encode(self, encoder, items: list[Scored]) -> None:
        rows = encoder.max_rows
        self._note(encoder, "backbone", None if rows is None else max(rows // encoder.rows_per_snippet, 1))
        timings: dict = {}
        try:
            feats = encoder.encode_batch([r.snippet.frames for r in items], timings, prepared=True)
        except ScorerUnavailable as exc:  # a remote backbone (Triton) is down: these snippets are not scored
            for r in items:
                r.error = exc
            return
        self._account("preprocess", 0, timings["preprocess"])
        self._account("backbone", len(items), timings["backbone"])
        for r, f in zip(items, feats):
            r.feats, r.timings = f, dict(timings)
            r.preview, r.snippet.frames = r.snippet.frames[-1], None  # the backbone's copies are no longer needed

    def _head(self, runner, items: list[tuple[Scored, np.ndarray]]) -> None:
        self._note(runner, "head", runner.max_batch)
        sizes: list[int] = []
        t0 = time.perf_counter()
        try:
            scores = score_windows(runner, [w for _, w in items], sizes)
        except ScorerUnavailable as exc:
            for r, _ in items:
                r.error = exc
            return
        done = time.perf_counter()
        for size in sizes:
            self._account("head", size, 0.0)
        self._account("head", 0, done - t0)
        for (r, _), (raw, expert) in zip(items, scores):
            r.raw, r.expert, r.done = raw, expert, done
            r.timings["head"] = done - t0

    def _account(self, stage: str, size: int, seconds: float) -> None:
        if self.stats is None:
            return
        if size:
            self.stats.batch(stage, size)
        if seconds:
            self.stats.busy(stage, seconds)

    def _note(self, obj, what: str, limit: int | None) -> None:
        """Once per backend object, when batching is asked for but it takes fewer snippets per call."""
        if self.max_batch <= 1 or limit is None or limit >= self.max_batch or id(obj) in self._noted:
            return
        self._noted.add(id(obj))
        backend = getattr(obj, "backend", None) or type(getattr(obj, "session", obj)).__name__
        if limit == 1:
            self.log(f"note: the {what} ({backend}) has a fixed batch of 1: batched snippets go through it one call "
                     "each (re-export with a dynamic batch axis to batch it)")
        else:
            self.log(f"note: the {what} ({backend}) takes at most {limit} snippets per call: larger batches are split")
