"""Alert clips written while the alert runs: memory holds only the pre-roll, never the whole alert.

Each source keeps the last ``pre_s`` seconds of frames (every decoded frame, not only the backbone's sampled ones,
downscaled to at most ``max_side`` pixels so a 4K camera's pre-roll stays small). When an alert is confirmed, a
writer opens on a temporary file, takes the pre-roll and the alert's frames so far, then every new snippet's
frames as they arrive (up to ``max_s`` seconds, plus ``post_s`` seconds after the alert ends); the file is then
renamed into place (atomic). The frame rate comes from the frames' stream times, so the clip plays at the
source's pace whatever kind of source it is.

Codec: H.264 (yuv420p, browser-playable) through PyAV where it is installed; otherwise OpenCV's ``mp4v`` with one
warning per process. ``prune`` applies the retention limit (age and/or total size) to the folder's clips and
snapshots. ``write_snapshot`` saves the JPEG of an alert's peak frame with the score drawn on it.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vadedge.atomic import default_file_mode

from .sources import safe_filename

_WARNED: set = set()


def _warn_once(key: str, message: str, log) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log(message)


def shrink(frame: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (aspect kept, even sizes for yuv420p) so the longer side is at most ``max_side``; else as is."""
    import cv2

    h, w = frame.shape[:2]
    scale = min(1.0, max_side / max(h, w)) if max_side else 1.0
    nw, nh = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
    return frame if (nw, nh) == (w, h) else cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)


class _AvWriter:
    """H.264 in MP4 through PyAV (libx264, yuv420p, +faststart so browsers start playing at once)."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]):
        import av

        self.container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"preset": "veryfast", "crf": "23"}

    def write(self, frame: np.ndarray) -> None:
        import av

        for packet in self.stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")):
            self.container.mux(packet)

    def release(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


class _CvWriter:
    def __init__(self, path: Path, fps: float, size: tuple[int, int]):
        import cv2

        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            raise OSError(f"OpenCV cannot open an mp4v writer at {fps:.2f} fps in {path.parent}")

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)

    def release(self) -> None:
        self.writer.release()


def open_writer(path: Path, fps: float, size: tuple[int, int], log=print):
    """H.264 via PyAV when available (and its libx264 encoder works), else mp4v via OpenCV with one warning."""
    try:
        import av  # noqa: F401

        return _AvWriter(path, fps, size)
    except ImportError:
        why = "PyAV is not installed (pip install av)"
    except Exception as exc:  # no libx264 in this FFmpeg build, odd size, ...
        why = f"PyAV cannot write H.264 ({type(exc).__name__}: {exc})"
    _warn_once("mp4v", f"warning: clips fall back to OpenCV mp4v (not playable in most browsers): {why}", log)
    return _CvWriter(path, fps, size)


@dataclass
class _Recording:
    path: Path
    tmp: Path
    writer: object = None  # opened on the first frames (their size and rate)
    size: tuple[int, int] | None = None
    start_t: float = 0.0
    stop_t: float | None = None  # end of the post-roll, once the alert has ended
    frames: int = 0


class ClipRecorder:
    """Per-source pre-roll buffer and the clip of the open alert (if any)."""

    def __init__(self, folder: str | os.PathLike, pre_s: float = 3.0, max_s: float = 60.0, post_s: float = 0.0,
                 max_side: int = 1280, log=print):
        self.folder, self.pre_s, self.max_s, self.post_s = Path(folder), pre_s, max_s, post_s
        self.max_side, self.log = max_side, log
        self.buffer: deque = deque()  # (t_start, t_end, frames) of the last pre_s seconds
        self.recording: _Recording | None = None
        self.finished: list[str] = []  # clips completed by a post-roll (the caller collects them)

    def add(self, t_start: float, t_end: float, frames: list[np.ndarray] | None, alert_start: float | None) -> None:
        """One snippet's frames. ``alert_start``: start time of the open (maybe unconfirmed) alert, else None."""
        if not frames:
            return
        frames = [shrink(f, self.max_side) for f in frames]
        rec = self.recording
        if rec is not None:
            if t_end - rec.start_t <= self.max_s + self.pre_s:
                self._write(t_start, t_end, frames)
            if rec.stop_t is not None and t_end >= rec.stop_t:
                path = self._close()
                if path:
                    self.finished.append(path)
            if rec.stop_t is None:
                return  # the alert runs: its frames are in its clip
            # In a post-roll the frames are also the next alert's pre-roll (and, if it starts now, its first frames).
        self.buffer.append((t_start, t_end, frames))
        keep_from = t_end - self.pre_s if alert_start is None else alert_start - self.pre_s
        while self.buffer and self.buffer[0][1] <= keep_from:  # keep what overlaps the pre-roll
            self.buffer.popleft()

    def start(self, source: str, alert_id: str, alert_start: float) -> str:
        """The alert is confirmed: open its clip with the pre-roll and the frames since the alert began.

        Returns the path the clip will have once finished."""
        if self.recording is not None:  # the previous alert's post-roll is cut short by a new alert
            path = self._close()
            if path:
                self.finished.append(path)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{safe_filename(source)}_{alert_id}_{alert_start:.1f}s.mp4"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".mp4", dir=self.folder)
        os.close(fd)
        os.chmod(tmp, default_file_mode())
        self.recording = _Recording(path, Path(tmp), start_t=alert_start - self.pre_s)
        spans = [s for s in self.buffer if s[1] > alert_start - self.pre_s]
        self.buffer.clear()
        for t0, t1, frames in spans:
            self._write(t0, t1, frames)
        return str(path)

    def _write(self, t_start: float, t_end: float, frames: list[np.ndarray]) -> None:
        import cv2

        rec = self.recording
        if rec.writer is None:
            span = t_end - t_start
            fps = float(np.clip(len(frames) / span if span > 0 else 25.0, 1.0, 240.0))  # stream seconds, never epoch
            h, w = frames[-1].shape[:2]
            rec.size = (w, h)
            rec.writer = open_writer(rec.tmp, fps, rec.size, self.log)
        for f in frames:
            rec.writer.write(f if (f.shape[1], f.shape[0]) == rec.size else cv2.resize(f, rec.size))
            rec.frames += 1

    def finish(self, alert_end: float | None = None) -> str | None:
        """The alert ended. Without a post-roll (or ``alert_end`` None: the source is gone) the clip is closed now
        and its path returned; with one it stays open ``post_s`` more seconds and the path it will have is
        returned (``finished`` gets it when it is complete)."""
        rec = self.recording
        if rec is None:
            return None
        if self.post_s > 0 and alert_end is not None:
            rec.stop_t = alert_end + self.post_s
            return str(rec.path)
        return self._close()

    def _close(self) -> str | None:
        rec, self.recording = self.recording, None
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
                try:
                    rec.writer.release()
                except Exception:  # the file is deleted anyway
                    pass
            rec.tmp.unlink(missing_ok=True)


def write_snapshot(folder: str | os.PathLike, source: str, alert_id: str, frame: np.ndarray, score: float,
                   t: float) -> str:
    """JPEG of the alert's peak frame with the camera, score and stream time drawn on it (atomic)."""
    import cv2

    img = frame.copy()
    text = f"{source}  score {score:.2f}  t {t:.1f}s"
    scale = max(0.5, img.shape[1] / 1000)
    thick = max(1, int(2 * scale))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(img, (0, 0), (tw + 16, th + base + 16), (0, 0, 0), -1)
    cv2.putText(img, text, (8, th + 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 255), thick, cv2.LINE_AA)
    path = Path(folder) / f"{safe_filename(source)}_{alert_id}_peak.jpg"
    ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise OSError(f"OpenCV cannot encode the snapshot {path}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".jpg", dir=path.parent)
    os.chmod(tmp, default_file_mode())  # readable like the clips (mkstemp makes 0600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return str(path)


def prune(folder: str | os.PathLike, max_age_s: float = 0.0, max_bytes: int = 0, now: float | None = None) -> list[Path]:
    """Retention: delete clips/snapshots (``*.mp4``, ``*_peak.jpg``) older than ``max_age_s`` and then the oldest
    until the total is at most ``max_bytes`` (0: no limit). Returns the deleted paths."""
    now = time.time() if now is None else now
    files = []
    for p in Path(folder).iterdir():
        if p.name.startswith(".") or not (p.suffix == ".mp4" or p.name.endswith("_peak.jpg")) or not p.is_file():
            continue
        st = p.stat()
        files.append((st.st_mtime, st.st_size, p))
    files.sort()
    deleted, total = [], sum(size for _, size, _ in files)
    for mtime, size, p in files:
        too_old = max_age_s > 0 and now - mtime > max_age_s
        too_big = max_bytes > 0 and total > max_bytes
        if not (too_old or too_big):
            continue
        p.unlink(missing_ok=True)
        deleted.append(p)
        total -= size
    return deleted
