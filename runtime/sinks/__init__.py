"""Event sinks: where ``vadedge.event/1`` records (and per-snippet camera state) go.

A sink is a small class with ``emit(record)`` (one start/update/end event), optionally ``state(source, score,
alert_open)`` (after every scored snippet) and ``close()``. Sinks are registered by name in ``SINKS``; adding
one is a new file here and one ``@register_sink`` line, nothing else changes.

The JSONL log is written synchronously by the scoring thread (fsync per line: nothing reported is lost).
Network sinks (MQTT, webhook) are ``QueuedSink``s: the scoring thread only puts the record on the sink's bounded
queue and goes on; the sink's own thread delivers it. A full queue (a slow or dead sink) drops the record for
that sink only, counted in ``vad_sink_drops_total{sink=...}``; the JSONL log still has it.
"""

from __future__ import annotations

import queue
import threading
import time

SINKS: dict[str, type] = {}


def register_sink(name: str):
    def deco(cls):
        cls.kind = name
        SINKS[name] = cls
        return cls

    return deco


class Sink:
    """Base: ``name`` labels the sink's metrics (``vad_sink_*_total{sink=name}``)."""

    kind = "sink"

    def __init__(self, name: str | None = None, stats=None):
        self.name = name or self.kind
        self.stats = stats
        self.sources: set[str] | None = None  # a camera's own sink: only that camera's events (None: every camera)

    def accepts(self, source: str) -> bool:
        return self.sources is None or source in self.sources

    def bind(self, stats) -> None:
        """Attach the runtime's metrics (the runtime calls this before the first event)."""
        self.stats = stats
        stats.add_sink(self.name)

    def _count(self, what: str, n: int = 1) -> None:
        if self.stats is not None:
            self.stats.count(what, n, source=self.name)

    def emit(self, record: dict) -> None:
        raise NotImplementedError

    def state(self, source: str, score: float, alert_open: bool) -> None:
        """Latest smoothed score of a camera (after every snippet); most sinks ignore it."""

    def close(self) -> None:
        pass


class QueuedSink(Sink):
    """A sink that delivers from its own thread through a bounded queue: never blocks the scorer.

    Subclasses implement ``deliver(kind, payload)`` (raise on failure) and may override ``deliver_state``."""

    def __init__(self, name: str | None = None, stats=None, queue_size: int = 256, close_timeout: float = 5.0):
        super().__init__(name, stats)
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.close_timeout = close_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"sink-{self.name}", daemon=True)
        self._thread.start()

    def _offer(self, item) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self._count("sink_drops")

    def emit(self, record: dict) -> None:
        self._offer(("event", record))

    def state(self, source: str, score: float, alert_open: bool) -> None:
        if type(self).deliver_state is not QueuedSink.deliver_state:
            self._offer(("state", (source, score, alert_open)))

    def deliver(self, record: dict) -> None:
        raise NotImplementedError

    def deliver_state(self, source: str, score: float, alert_open: bool) -> None:
        pass

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            kind, payload = item
            try:
                if kind == "event":
                    self.deliver(payload)
                    self._count("sink_events")
                else:
                    self.deliver_state(*payload)
            except Exception:  # counted; the sink's own retries already ran inside deliver()
                self._count("sink_failures")

    def close(self) -> None:
        """Deliver what is queued (up to ``close_timeout`` seconds), then stop the thread."""
        deadline = time.monotonic() + self.close_timeout
        while True:
            try:
                self.queue.put(None, timeout=max(0.01, deadline - time.monotonic()))
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    break
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))


def make_sink(kind: str, **options) -> Sink:
    from . import jsonl, mqtt, webhook  # noqa: F401 (registers the built-in sinks)

    if kind not in SINKS:
        raise KeyError(kind)
    return SINKS[kind](**options)
