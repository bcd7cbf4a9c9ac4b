"""Video sources: one capture thread per camera / video file / RTSP stream, delivering whole snippets.

Each thread decodes frames with OpenCV, assembles 16-frame snippets (keeping only the frames the backbone
samples) and puts them in a bounded queue. When the scorer falls behind, the queue is full and the whole
new snippet is dropped (never single frames, which would change what a snippet means) and counted. A live
source that stops delivering frames is reopened with exponential backoff; a video file ends cleanly.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from .encoder import SnippetAssembler, SnippetEncoder
from .stats import Stats

_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact(url: str) -> str:
    """rtsp://user:pass@host/… -> rtsp://***@host/… (credentials never reach logs or events)."""
    return _CREDENTIALS.sub("***@", str(url))


@dataclass
class SourceSpec:
    name: str  # shown in logs and events; never contains credentials
    target: str | int  # camera index, file path or URL passed to cv2.VideoCapture
    live: bool  # cameras and streams reconnect; files end
    realtime: bool = False  # pace a file at its frame rate (simulates a camera)


@dataclass
class Snippet:
    source: str
    index: int  # snippet number in this source since start
    t_start: float  # seconds: stream time for files, wall-clock time for live sources
    t_end: float
    frames: list[np.ndarray]  # the backbone's sampled frames
    decode_s: float  # time spent decoding this snippet's frames


@dataclass
class SourceEnd:
    source: str
    reason: str


@dataclass
class BackoffPolicy:
    initial_s: float = 0.5
    max_s: float = 30.0
    max_attempts: int = 0  # 0: retry forever


@dataclass
class SourceCounters:
    frames: int = 0
    snippets: int = 0
    dropped_snippets: int = 0
    corrupt_frames: int = 0
    reconnects: int = 0
    extra: dict = field(default_factory=dict)


class CaptureThread(threading.Thread):
    def __init__(self, spec: SourceSpec, encoder: SnippetEncoder, out: "queue.Queue", stop: threading.Event, stats: Stats,
                 backoff: BackoffPolicy | None = None, log=print):
        super().__init__(name=f"capture-{spec.name}", daemon=True)
        self.spec, self.out, self.stop, self.stats, self.log = spec, out, stop, stats, log
        self.backoff = backoff or BackoffPolicy()
        self.assembler = SnippetAssembler(encoder)
        self.counters = SourceCounters()
        self.frame_shape: tuple | None = None

    # ---------------------------------------------------------------- helpers
    def _open(self):
        cap = cv2.VideoCapture(self.spec.target)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _emit(self, snippet: Snippet) -> None:
        try:
            self.out.put_nowait(snippet)
            self.counters.snippets += 1
            self.stats.count("snippets_captured", source=self.spec.name)
        except queue.Full:
            self.counters.dropped_snippets += 1
            self.stats.count("snippets_dropped", source=self.spec.name)

    def _valid(self, frame) -> bool:
        if frame is None or frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0:
            return False
        if self.frame_shape is None:
            self.frame_shape = frame.shape
        return frame.shape == self.frame_shape

    def _wait(self, delay: float) -> bool:
        """Sleep unless stopping; True if we should stop."""
        return self.stop.wait(delay)

    # ---------------------------------------------------------------- main loop
    def run(self) -> None:
        attempt, delay = 0, self.backoff.initial_s
        snippet_index = 0
        stream_frames = 0
        while not self.stop.is_set():
            cap = self._open()
            if cap is None:
                if not self.spec.live:
                    self.out.put(SourceEnd(self.spec.name, "cannot open"))
                    self.log(f"[{self.spec.name}] cannot open the video")
                    return
                attempt += 1
                if self.backoff.max_attempts and attempt > self.backoff.max_attempts:
                    self.out.put(SourceEnd(self.spec.name, "gave up reconnecting"))
                    return
                self.log(f"[{self.spec.name}] not available, retrying in {delay:.1f} s")
                if self._wait(delay):
                    break
                delay = min(delay * 2, self.backoff.max_s)
                continue
            if attempt or self.counters.frames:
                self.counters.reconnects += 1
                self.stats.count("reconnects", source=self.spec.name)
                self.log(f"[{self.spec.name}] connected")
            attempt, delay = 0, self.backoff.initial_s
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            fps = fps if 1.0 <= fps <= 240.0 else 25.0
            self.assembler.reset()  # a partial snippet never spans a reconnect
            t0_wall = time.time()
            start_t, decode_s = None, 0.0
            while not self.stop.is_set():
                tic = time.perf_counter()
                ok, frame = cap.read()
                decode_s += time.perf_counter() - tic
                if not ok:
                    break
                self.counters.frames += 1
                self.stats.count("frames", source=self.spec.name)
                if not self._valid(frame):
                    # A damaged frame spoils its snippet: drop the whole snippet, keep the stream going.
                    self.counters.corrupt_frames += 1
                    self.stats.count("corrupt_frames", source=self.spec.name)
                    self.assembler.reset()
                    start_t, decode_s = None, 0.0
                    stream_frames += 1
                    continue
                now = stream_frames / fps if not self.spec.live else time.time()
                start_t = now if start_t is None else start_t
                stream_frames += 1
                if self.spec.realtime and not self.spec.live:
                    ahead = stream_frames / fps - (time.time() - t0_wall)
                    if ahead > 0 and self._wait(ahead):
                        break
                done = self.assembler.push(frame)
                if done is not None:
                    end_t = stream_frames / fps if not self.spec.live else time.time()
                    self._emit(Snippet(self.spec.name, snippet_index, start_t, end_t, done, decode_s))
                    snippet_index += 1
                    start_t, decode_s = None, 0.0
            cap.release()
            if self.stop.is_set():
                break
            if not self.spec.live:
                self.out.put(SourceEnd(self.spec.name, "end of video"))
                return
            self.log(f"[{self.spec.name}] stream lost, reconnecting")
            if self._wait(delay):
                break
        self.out.put(SourceEnd(self.spec.name, "stopped"))
