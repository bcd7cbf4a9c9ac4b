"""Alert clips written while the alert runs: memory holds only the pre-roll, never the whole alert.

Each source keeps the last ``pre_s`` seconds of frames (JPEG-encoded). When an alert is confirmed, a writer opens on a temporary
file, takes the pre-roll and the alert's frames so far, then every new snippet's frames as they arrive (up to
``max_s`` seconds); when the alert ends the file is renamed into place (atomic). The frame rate comes from the
frames' stream times, so the clip plays at the source's pace whatever kind of source it is.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vadedge.atomic import default_file_mode

from .sources import safe_filename


@dataclass
class _Recording:
    path: Path
    tmp: Path
    writer: object = None  # cv2.VideoWriter, opened on the first frames (their size and rate)
    size: tuple[int, int] | None = None
    start_t: float = 0.0


class ClipRecorder:
    """Per-source pre-roll buffer and the clip of the open alert (if any)."""

    def __init__(self, folder: str | os.PathLike, pre_s: float = 3.0, max_s: float = 60.0):
        self.folder, self.pre_s, self.max_s = Path(folder), pre_s, max_s
        self.buffer: deque = deque()  # (t_start, t_end, frames) of the last pre_s seconds
        self.recording: _Recording | None = None

    def add(self, t_start: float, t_end: float, frames: list[np.ndarray] | None, alert_start: float | None) -> None:
        """One snippet's frames (JPEG-encoded, as the capture thread keeps them). ``alert_start``: start time of
        the open (maybe unconfirmed) alert, else None."""
        if not frames:
            return
        if self.recording is not None:
            if t_end - self.recording.start_t <= self.max_s:
                self._write(t_start, t_end, frames)
            return
        self.buffer.append((t_start, t_end, frames))
        keep_from = t_end - self.pre_s if alert_start is None else alert_start - self.pre_s
        while self.buffer and self.buffer[0][1] < keep_from:
            self.buffer.popleft()

    def start(self, source: str, alert_id: str, alert_start: float) -> None:
        """The alert is confirmed: open its clip with the pre-roll and the frames since the alert began."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{safe_filename(source)}_{alert_id}_{alert_start:.1f}s.mp4"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".mp4", dir=self.folder)
        os.close(fd)
        os.chmod(tmp, default_file_mode())
        self.recording = _Recording(path, Path(tmp), start_t=alert_start - self.pre_s)
        spans = [s for s in self.buffer if s[1] >= alert_start - self.pre_s]
        self.buffer.clear()
        for t0, t1, frames in spans:
            self._write(t0, t1, frames)

    def _write(self, t_start: float, t_end: float, frames: list[np.ndarray]) -> None:
        import cv2

        rec = self.recording
        frames = [cv2.imdecode(f, cv2.IMREAD_COLOR) for f in frames]
        if rec.writer is None:
            span = t_end - t_start
            fps = float(np.clip(len(frames) / span if span > 0 else 25.0, 1.0, 240.0))  # stream seconds, never epoch
            h, w = frames[-1].shape[:2]
            rec.size = (w, h)
            rec.writer = cv2.VideoWriter(str(rec.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, rec.size)
            if not rec.writer.isOpened():
                raise OSError(f"OpenCV cannot open an mp4v writer at {fps:.2f} fps in {self.folder}")
        for f in frames:
            rec.writer.write(f if (f.shape[1], f.shape[0]) == rec.size else cv2.resize(f, rec.size))

    def finish(self) -> str | None:
        """Close the clip and move it into place; returns its path (None if nothing was recorded)."""
        rec, self.recording = self.recording, None
        if rec is None:
            return None
        try:
            if rec.writer is None:
                return None
            rec.writer.release()
            with open(rec.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(rec.tmp, rec.path)
            return str(rec.path)
        finally:
            rec.tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        rec, self.recording = self.recording, None
        if rec is not None:
            if rec.writer is not None:
                rec.writer.release()
            rec.tmp.unlink(missing_ok=True)
