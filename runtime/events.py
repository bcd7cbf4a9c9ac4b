"""Alert events as JSON Lines. Each event is one ``write`` of a whole line followed by fsync, so a crash or
power cut leaves complete lines only; nothing reported is lost."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


class EventLog:
    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.lock = threading.Lock()
        self.fd = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict) -> None:
        if self.fd is None:
            return
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with self.lock:
            os.write(self.fd, line)  # O_APPEND: one write per line, never interleaved
            os.fsync(self.fd)

    def close(self) -> None:
        with self.lock:
            if self.fd is not None:
                os.fsync(self.fd)
                os.close(self.fd)
                self.fd = None
