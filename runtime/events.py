"""Alert events as JSON Lines (schema ``vadedge.event/1``: start, update and end events with an alert id).

Each event is one ``write`` of a whole line. On a regular file it is followed by fsync, so a crash or power
cut leaves complete lines only and nothing reported is lost; pipes, FIFOs and terminals (``--events
/dev/stdout``) cannot be fsynced and get the line as it is written (the write is unbuffered).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from pathlib import Path

from vadedge.errors import VadInputError


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Refuse an output path that cannot take a file (a directory, an unwritable folder) before any work."""
    p = Path(path)
    if p.is_dir():
        raise VadInputError(f"{flag} {p}: is a directory (expected a file path)")
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VadInputError(f"{flag} {p}: cannot create folder {parent} ({exc.strerror})") from None
    if not os.access(parent, os.W_OK) and not p.exists():
        raise VadInputError(f"{flag} {p}: folder {parent} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise VadInputError(f"{flag} {p}: not writable")
    return p


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise VadInputError(f"{flag} {p}: exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VadInputError(f"{flag} {p}: cannot create the folder ({exc.strerror})") from None
    if not os.access(p, os.W_OK):
        raise VadInputError(f"{flag} {p}: folder is not writable")
    return p


STDOUT = ("-", "/dev/stdout")


class EventLog:
    def __init__(self, path: str | os.PathLike | None, log=None):
        self.path = Path("/dev/stdout") if str(path) in STDOUT else (Path(path) if path else None)
        self.lock = threading.Lock()
        self.fd = None
        self.durable = False  # fsync after each line (regular files only)
        if self.path is not None:
            check_output_file(self.path, "--events")
            try:
                self.fd = self._open(log)
            except OSError as exc:
                raise VadInputError(f"--events {self.path}: cannot open for writing ({exc.strerror})") from None
            self.durable = stat.S_ISREG(os.fstat(self.fd).st_mode)

    def _open(self, log) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        if self.path.exists() and stat.S_ISFIFO(self.path.stat().st_mode):
            try:  # a FIFO without a reader would block here silently: say so, then wait for one
                fd = os.open(self.path, flags | os.O_NONBLOCK)
                os.set_blocking(fd, True)
                return fd
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                (log or print)(f"--events {self.path}: waiting for a reader on the FIFO")
        return os.open(self.path, flags, 0o666)

    def write(self, record: dict) -> None:
        if self.fd is None:
            return
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with self.lock:
            view = memoryview(line)
            try:
                while view:  # O_APPEND: one write per line on files; a pipe may take a long line in parts
                    view = view[os.write(self.fd, view):]
            except BrokenPipeError:
                os.close(self.fd)
                self.fd = None
                raise VadInputError(f"--events {self.path}: the reader closed the pipe; stopping") from None
            if self.durable:
                os.fsync(self.fd)

    def close(self) -> None:
        with self.lock:
            if self.fd is not None:
                if self.durable:
                    os.fsync(self.fd)
                os.close(self.fd)
                self.fd = None


EVENT_SCHEMA_FILE = Path(__file__).with_name("event.schema.json")


def load_event_schema() -> dict:
    """The JSON Schema of ``vadedge.event/1`` (``runtime/event.schema.json``, shipped with the package)."""
    return json.loads(EVENT_SCHEMA_FILE.read_text(encoding="utf-8"))


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (the model hash in every event: which exact weights raised the alert)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
