"""JSON Lines sink: the durable event log (synchronous, fsync per line on regular files; see events.EventLog)."""

from __future__ import annotations

from ..events import EventLog
from . import Sink, register_sink


@register_sink("jsonl")
class JsonlSink(Sink):
    """Writes in the scoring thread: the log is the record of truth and never drops an event."""

    def __init__(self, path, name: str | None = None, stats=None):
        super().__init__(name, stats)
        self.log = path if isinstance(path, EventLog) else EventLog(path)

    def emit(self, record: dict) -> None:
        self.log.write(record)
        self._count("sink_events")

    def close(self) -> None:
        self.log.close()
