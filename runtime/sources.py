"""Video sources: one capture thread per camera / video file / stream, delivering whole snippets.

Delivery guarantees (README "Delivery guarantees"):

- **Files** (``--video`` without ``--realtime``) are lossless: the capture thread waits for the scorer
  (backpressure), so every complete snippet is scored, identically on every run.
- **Live sources** (cameras, streams, ``--realtime`` files) never wait: when the scorer falls behind and the
  source's queue is full, the whole new snippet is dropped and counted (never single frames, which would change
  what a snippet means).

Times: every snippet carries stream-relative seconds (``t_start``/``t_end``) and the source's ``anchor``
(epoch seconds), so ``anchor + t`` is the UTC time for every kind of source. Files use each frame's own container
timestamp (variable frame rates stay right); live sources use the wall clock at each frame's arrival, relative to
the moment the source was first started.

Self-healing: a stream that stops sending frames for ``stall_timeout`` seconds is reconnected (FFmpeg's read
timeout, so a stalled TCP connection does not block for OpenCV's default 30 s); a change of frame size, on
reconnect or mid-stream, starts a fresh snippet at the new size with one warning.
"""

from __future__ import annotations

import glob
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# FFmpeg's own log lines (connection refused, stream ended) would print around our one-line messages; with
# this set, OpenCV routes them through its logger at fatal level. Read when the FFmpeg backend first opens.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from vadedge.errors import VadInputError  # noqa: E402

from .encoder import SnippetAssembler, SnippetEncoder  # noqa: E402
from .preprocess import InputView  # noqa: E402
from .stats import Stats  # noqa: E402

# Our own one-line messages replace OpenCV's warnings (a missing camera prints several per attempt).
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

SOURCE_KINDS = ("camera", "file", "stream")


# ---------------------------------------------------------------- names and credentials
def _split_userinfo(url: str) -> tuple[str, str, str]:
    """``scheme://user:pass@host/path`` -> (``scheme://``, userinfo or "", ``host/path``).

    The userinfo ends at the *last* ``@`` of the URL, so passwords holding ``@``, ``/``, ``:`` or spaces are
    covered whole (an ``@`` inside a path is redacted too: safe, never leaky). A URL without a scheme is split
    the same way."""
    url = str(url)
    head, sep, rest = url.partition("://")
    if not sep:
        head, rest = "", url
    if "@" not in rest:
        return head + sep, "", rest
    userinfo, _, hostpath = rest.rpartition("@")
    return head + sep, userinfo, hostpath


def redact(url: str) -> str:
    """rtsp://user:pass@host/x?password=… -> rtsp://***@host/x?*** (credentials and query strings, which cameras
    also use for tokens and passwords, never reach logs, events, metrics or file names)."""
    scheme, userinfo, hostpath = _split_userinfo(url)
    path, q, _ = hostpath.partition("?")
    return f"{scheme}{'***@' if userinfo else ''}{path}{'?***' if q else ''}"


def stream_name(url: str) -> str:
    """A stream's display name from its host and port only: ``rtsp://a:b@cam7:554/x`` -> ``cam7:554``."""
    scheme, _, hostpath = _split_userinfo(url)
    if not scheme:
        raise VadInputError(f"--rtsp {redact(url)}: not a stream URL (expected scheme://[user:pass@]host[:port]/path, "
                            "e.g. rtsp://cam7:554/stream1; percent-encode '/', '#' and '?' in passwords)")
    try:
        parts = urlsplit("//" + hostpath)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host:
        raise VadInputError(f"--rtsp {redact(url)}: no host in the URL (expected scheme://[user:pass@]host[:port]/path)")
    return f"{host}:{port}" if port else host


def safe_filename(text: str) -> str:
    """Characters safe in file names on every filesystem (clips, snapshots, calibration files)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text).strip("._") or "source"


# ---------------------------------------------------------------- specs and records
@dataclass
class RetryPolicy:
    """Reconnection of live sources. A source unusable at start is an error unless ``forever`` or ``limit`` is
    set; once running, a lost source is retried ``limit`` times in a row (0: forever)."""

    initial_s: float = 0.5
    max_s: float = 30.0
    limit: int = 0
    forever: bool = False

    @property
    def retries_at_start(self) -> bool:
        return self.forever or self.limit > 0


BackoffPolicy = RetryPolicy  # the name earlier releases used


@dataclass
class SourceSpec:
    name: str  # shown in logs, events and metrics; never contains credentials
    target: str | int  # camera index, file path or URL passed to cv2.VideoCapture
    kind: str = "file"  # "camera" | "file" | "stream"
    realtime: bool = False  # pace a file at its own timestamps, like a camera (and drop like one)
    anchor: float | None = None  # epoch seconds of stream time 0 (files: default = when the runtime opened them)
    view: InputView | None = None  # what the model sees of the frame (center / full / roi); None: the encoder's

    def __post_init__(self):
        if self.kind not in SOURCE_KINDS:
            raise VadInputError(f"source {self.name}: kind must be one of {SOURCE_KINDS}, got {self.kind!r}")

    @property
    def live(self) -> bool:
        """Live sources never wait for the scorer; they drop whole snippets when it falls behind."""
        return self.kind != "file" or self.realtime

    @property
    def reconnects(self) -> bool:
        return self.kind != "file"

    def describe(self) -> str:
        return redact(str(self.target)) if self.kind == "stream" else str(self.target)


@dataclass
class Snippet:
    source: str
    index: int  # snippet number in this source since start
    t_start: float  # stream-relative seconds (files: container time of the first frame)
    t_end: float  # end of the last frame
    anchor: float  # epoch seconds of stream time 0: UTC = anchor + t
    frames: list[np.ndarray] | None  # the backbone's sampled frames (already resized for it); None once encoded
    decode_s: float  # CPU seconds its capture thread spent decoding its frames and resizing them for the backbone
    clip_frames: list[np.ndarray] | None = None  # every decoded frame (full resolution), only when clips are on
    motion: np.ndarray | None = None  # calibration.motion_descriptor of the full-resolution sampled frames, if asked for
    ready: float = field(default_factory=time.perf_counter)  # when it was complete (made): latency counts from here


@dataclass
class SourceEnd:
    """The source is finished for good (end of file, stop, retries exhausted)."""

    source: str
    reason: str


@dataclass
class SourceLost:
    """A live source dropped or stalled and is reconnecting: open alerts close, the window starts afresh."""

    source: str
    reason: str


@dataclass
class SourceCounters:
    frames: int = 0
    snippets: int = 0
    dropped_snippets: int = 0
    corrupt_frames: int = 0
    reconnects: int = 0
    stalls: int = 0
    geometry_changes: int = 0
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- start-up checks
def video_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"))


def _open_capture(spec: SourceSpec, stall_timeout: float) -> cv2.VideoCapture | None:
    if spec.kind == "stream":
        ms = int(stall_timeout * 1000)
        cap = cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG,
                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    else:
        cap = cv2.VideoCapture(spec.target)
    if cap.isOpened():
        return cap
    cap.release()
    return None


def check_file(path: str | os.PathLike, min_frames: int, flag: str = "--video") -> None:
    """Refuse a file that cannot give one snippet: missing, empty, not a video, or too short (one line each)."""
    p = Path(path)
    if p.is_dir():
        raise VadInputError(f"{flag} {p}: is a folder, not a video file")
    if not p.is_file():
        raise VadInputError(f"{flag} {p}: file not found")
    if p.stat().st_size == 0:
        raise VadInputError(f"{flag} {p}: empty file (0 bytes)")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise VadInputError(f"{flag} {p}: not a video OpenCV can decode")
        n = 0
        while n < min_frames:
            ok, frame = cap.read()
            if not ok:
                break
            n += frame is not None and frame.size > 0
    finally:
        cap.release()
    if n < min_frames:
        what = "no decodable frame" if n == 0 else f"only {n} decodable frame{'s' if n != 1 else ''}"
        raise VadInputError(f"{flag} {p}: {what}; one snippet needs {min_frames}")


def check_live(spec: SourceSpec, stall_timeout: float) -> str | None:
    """None if the camera/stream opens now, else a one-line reason (naming the /dev/video* devices present)."""
    cap = _open_capture(spec, stall_timeout)
    if cap is not None:
        cap.release()
        return None
    if spec.kind == "camera":
        devices = ", ".join(video_devices()) or "none"
        return f"--camera {spec.target}: cannot open camera {spec.target} (video devices here: {devices})"
    return (f"--rtsp {spec.describe()}: cannot open the stream (refused, unreachable, not a stream, or no answer "
            f"within {stall_timeout:g} s)")


# ---------------------------------------------------------------- per-source queue
class SnippetQueue:
    """Bounded per-source queues read round-robin by one consumer, so a lossless file waiting on the scorer
    never crowds out a live camera (each source has its own ``size`` slots)."""

    def __init__(self, sources: list[str], size: int):
        if size < 1:
            raise VadInputError(f"--queue must be >= 1 snippet per source, got {size}")
        self.queues = {s: queue.Queue(maxsize=size) for s in sources}
        self.ready = threading.Condition()
        self._order = list(sources)
        self._next = 0

    def offer(self, source: str, item) -> bool:
        """Live sources: put if there is room, else False (the caller counts a drop)."""
        try:
            self.queues[source].put_nowait(item)
        except queue.Full:
            return False
        self._notify()
        return True

    def put(self, source: str, item, stop: threading.Event | None = None) -> bool:
        """Wait for room (backpressure); False only if ``stop`` was set while waiting."""
        q = self.queues[source]
        while True:
            try:
                q.put(item, timeout=0.1)
                self._notify()
                return True
            except queue.Full:
                if stop is not None and stop.is_set():
                    return False

    def put_marker(self, source: str, item) -> None:
        """End/loss markers are never dropped: the consumer always drains, so this wait is short."""
        self.queues[source].put(item)
        self._notify()

    def _notify(self) -> None:
        with self.ready:
            self.ready.notify()

    def get(self, timeout: float):
        """The next item round-robin over the sources, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self.ready:
            while True:
                for _ in range(len(self._order)):
                    name = self._order[self._next]
                    self._next = (self._next + 1) % len(self._order)
                    try:
                        return self.queues[name].get_nowait()
                    except queue.Empty:
                        continue
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.ready.wait(left)


# ---------------------------------------------------------------- timestamps
class FrameClock:
    """Stream-relative seconds of each frame: container timestamps for files, arrival time for live sources.

    A container that reports no usable timestamps (0 or not increasing) falls back to frame count / frame rate."""

    def __init__(self, spec: SourceSpec, anchor: float):
        self.spec, self.anchor = spec, anchor
        self.last: float | None = None
        self.step = 1 / 25.0

    def connected(self, cap: cv2.VideoCapture) -> None:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        self.step = 1.0 / fps if 1.0 <= fps <= 240.0 else self.step

    def now(self, cap: cv2.VideoCapture) -> float:
        if self.spec.kind == "file":
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if self.last is not None and not t > self.last:  # no container time: count frames
                t = self.last + self.step
        else:
            t = time.time() - self.anchor
        self.last = t
        return t


# ---------------------------------------------------------------- capture thread
class CaptureThread(threading.Thread):
    """Decodes one source into snippets (see the module docstring for the guarantees)."""

    def __init__(self, spec: SourceSpec, encoder: SnippetEncoder, out: SnippetQueue, stop: threading.Event, stats: Stats,
                 retry: RetryPolicy | None = None, log=print, stall_timeout: float = 10.0, keep_clip_frames: bool = False,
                 clip_max_side: int = 1280, motion: bool = False):
        super().__init__(name=f"capture-{spec.name}", daemon=True)
        self.spec, self.out, self.stop, self.stats, self.log = spec, out, stop, stats, log
        self.encoder = encoder
        self.retry = retry or RetryPolicy()
        self.stall_timeout = stall_timeout
        self.keep_clip_frames, self.clip_max_side = keep_clip_frames, clip_max_side
        self.assembler = SnippetAssembler(encoder, keep_all=keep_clip_frames)
        self.motion = motion
        self.counters = SourceCounters()
        self.geometry: tuple | None = None
        self.anchor = spec.anchor if spec.anchor is not None else time.time()
        self.clock = FrameClock(spec, self.anchor)
        self.snippet_index = 0

    # ---------------------------------------------------------------- helpers
    def _count(self, name: str, attr: str | None = None) -> None:
        if attr:
            setattr(self.counters, attr, getattr(self.counters, attr) + 1)
        self.stats.count(name, source=self.spec.name)

    def _emit(self, snippet: Snippet) -> None:
        if self.spec.live:
            delivered = self.out.offer(self.spec.name, snippet)
            if not delivered:
                self._count("snippets_dropped", "dropped_snippets")
                return
        elif not self.out.put(self.spec.name, snippet, self.stop):
            return
        self._count("snippets_captured", "snippets")

    @staticmethod
    def _valid(frame) -> bool:
        return frame is not None and frame.ndim == 3 and frame.shape[2] == 3 and frame.size > 0

    def _check_geometry(self, frame: np.ndarray) -> None:
        if self.geometry is not None and frame.shape != self.geometry:
            self._count("geometry_changes", "geometry_changes")
            self.log(f"[{self.spec.name}] frame size changed from {self.geometry[1]}x{self.geometry[0]} to "
                     f"{frame.shape[1]}x{frame.shape[0]}: starting a fresh snippet")
            self.assembler.reset()
        self.geometry = frame.shape

    # ---------------------------------------------------------------- main loop
    def run(self) -> None:
        reason = "stopped"
        try:
            reason = self._run()
        except Exception as exc:  # a capture thread must never die silently
            reason = f"capture failed: {type(exc).__name__}: {exc}"
        finally:
            self.out.put_marker(self.spec.name, SourceEnd(self.spec.name, reason))

    def _run(self) -> str:
        failures, delay = 0, self.retry.initial_s
        while not self.stop.is_set():
            cap = _open_capture(self.spec, self.stall_timeout)
            if cap is None:
                if not self.spec.reconnects:
                    return "cannot open"
                failures += 1
                if self.retry.limit and failures > self.retry.limit:
                    return f"gave up after {self.retry.limit} failed reconnects"
                if failures == 1 or failures % 10 == 0 or delay >= 5:
                    self.log(f"[{self.spec.name}] not available (attempt {failures}), retrying in {delay:.1f} s")
                if self.stop.wait(delay):
                    break
                delay = min(delay * 2, self.retry.max_s)
                continue
            if self.counters.frames:  # a first connection after waiting is no reconnect
                self._count("reconnects", "reconnects")
            if self.counters.frames or failures:
                self.log(f"[{self.spec.name}] connected")
            failures, delay = 0, self.retry.initial_s
            ended = self._read(cap)
            cap.release()
            if self.stop.is_set():
                break
            if not self.spec.reconnects:
                return "end of video"
            self.out.put_marker(self.spec.name, SourceLost(self.spec.name, ended))
            self.log(f"[{self.spec.name}] {ended}, reconnecting")
            if self.stop.wait(delay):
                break
        return "stopped"

    def _read(self, cap: cv2.VideoCapture) -> str:
        """Read one connection until it ends; returns why it ended."""
        self.assembler.reset()  # a partial snippet never spans a reconnect
        self.clock.connected(cap)
        pace0 = None
        decode_s = 0.0
        while not self.stop.is_set():
            tic, cpu = time.perf_counter(), time.thread_time()
            ok = cap.grab()  # waits for the next frame (a live source's pace, or a stall) and demuxes/decodes it
            dt = time.perf_counter() - tic
            if ok:
                ok, frame = cap.retrieve()  # converts it to BGR
            # The "decode" stage: this thread's CPU seconds, so neither a live source's wait in grab() nor the
            # time other threads hold the cores counts (FFmpeg's own decoder threads, if any, are not seen).
            decode_s += time.thread_time() - cpu
            if not ok:
                if self.spec.kind == "stream" and dt >= 0.9 * self.stall_timeout:
                    self._count("stalls", "stalls")
                    return f"no frame for {self.stall_timeout:g} s (stalled)"
                return "stream lost"
            self.counters.frames += 1
            self.stats.count("frames", source=self.spec.name)
            if not self._valid(frame):
                # A damaged frame spoils its snippet: drop the partial snippet, keep the stream going.
                self._count("corrupt_frames", "corrupt_frames")
                self.assembler.reset()
                decode_s = 0.0
                continue
            self._check_geometry(frame)
            t = self.clock.now(cap)
            if self.spec.realtime and self.spec.kind == "file":
                pace0 = time.monotonic() - t if pace0 is None else pace0
                ahead = pace0 + t - time.monotonic()
                if ahead > 0 and self.stop.wait(ahead):
                    break
            done = self.assembler.push(frame, t)
            if done is not None:
                self._deliver(done, *self.assembler.span, decode_s)
                decode_s = 0.0
        return "stopped"

    def _deliver(self, frames: list[np.ndarray], t_start: float, t_end: float, decode_s: float) -> None:
        clip = None
        if self.keep_clip_frames:  # every decoded frame, for clips; downscaled so a queued 4K snippet stays small
            from .clips import shrink

            clip = [shrink(f, self.clip_max_side) for f in self.assembler.all_frames]
        motion = None
        if self.motion:  # on the full-resolution frames, exactly as vad-calibrate computes it
            from .calibration import motion_descriptor

            motion = motion_descriptor(frames)
        # Resize to the backbone's input scale here: a queued 4K snippet then holds ~0.35 MB a frame, not 25 MB,
        # and preprocess's own resize of an already-resized frame is an exact copy (features unchanged, tested).
        cpu = time.thread_time()
        small = [self.encoder.prepare_frame(f, self.spec.view) for f in frames]
        decode_s += time.thread_time() - cpu  # the resize is capture-thread work too (vtest.avi: more than decoding)
        self.stats.busy("decode", decode_s)
        self._emit(Snippet(self.spec.name, self.snippet_index, t_start, t_end, self.anchor, small, decode_s, clip, motion))
        self.snippet_index += 1
