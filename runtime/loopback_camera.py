"""A real HTTP MJPEG camera on 127.0.0.1 that serves a real video file's frames, for tests, soak runs and
dry runs of a deployment before the cameras are installed.

    python -m vadedge.runtime.loopback_camera --video ../shared/data/video/vtest.avi --port 8554
    vad-runtime --rtsp http://127.0.0.1:8554/video.mjpg

It speaks ``multipart/x-mixed-replace`` (what most IP cameras serve at ``/video.mjpg``), which OpenCV's FFmpeg
backend reads like any network camera. Faults a real camera shows can be switched on while it serves:
``drop(seconds)`` (connections cut, new ones refused), ``stall()`` (connections stay open, no frames) and
``set_size(w, h)`` (the camera comes back, or carries on, at another resolution).
"""

from __future__ import annotations

import argparse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

from vadedge.errors import VadInputError

BOUNDARY = b"vadframe"


def read_frames(video: str | Path, limit: int = 300) -> list[np.ndarray]:
    """Up to ``limit`` decoded BGR frames of a video file."""
    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise VadInputError(f"{video}: no decodable frame")
    return frames


class LoopbackCamera:
    """Serves ``frames`` in a loop at ``fps`` on ``http://127.0.0.1:PORT/video.mjpg`` from a daemon thread."""

    def __init__(self, frames: list[np.ndarray], fps: float = 25.0, size: tuple[int, int] | None = None, port: int = 0,
                 host: str = "127.0.0.1", quality: int = 85):
        self.frames, self.fps, self.quality = frames, fps, quality
        self.lock = threading.Lock()
        self._jpegs: list[bytes] = []
        self.set_size(*(size or (frames[0].shape[1], frames[0].shape[0])))
        self.offline_until = 0.0
        self.generation = 0  # drop()/stall() end the connections of older generations
        self.stalled_generation = -1
        self.frames_sent = 0
        self.connections = 0
        camera = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):  # noqa: N802 (http.server API)
                camera._serve(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="loopback-camera", daemon=True)

    # ---------------------------------------------------------------- controls
    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/video.mjpg"

    def start(self) -> "LoopbackCamera":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.offline_until = float("inf")
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def set_size(self, width: int, height: int) -> None:
        """Serve frames at ``width`` x ``height`` from now on (mid-stream, or after a drop)."""
        params = [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        jpegs = [cv2.imencode(".jpg", cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA), params)[1].tobytes()
                 for f in self.frames]
        with self.lock:
            self._jpegs, self.size = jpegs, (width, height)

    def drop(self, seconds: float) -> None:
        """Cut every connection and refuse new ones for ``seconds`` (a camera rebooting)."""
        with self.lock:
            self.offline_until = time.monotonic() + seconds
            self.generation += 1

    def stall(self) -> None:
        """Open connections stay up but send nothing more; new connections are served normally."""
        with self.lock:
            self.stalled_generation = self.generation
            self.generation += 1

    # ---------------------------------------------------------------- serving
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        if time.monotonic() < self.offline_until:
            handler.send_error(503, "camera offline")
            return
        with self.lock:
            generation = self.generation
            self.connections += 1
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        period, next_t, i = 1.0 / self.fps, time.monotonic(), 0
        try:
            while True:
                with self.lock:
                    stalled = generation == self.stalled_generation
                    cut = generation != self.generation and not stalled
                    jpeg = self._jpegs[i % len(self._jpegs)]
                if cut or time.monotonic() < self.offline_until:
                    return
                if stalled:
                    time.sleep(0.05)
                    continue
                handler.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                    + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                handler.wfile.flush()
                self.frames_sent += 1
                i += 1
                next_t += period
                time.sleep(max(0.0, next_t - time.monotonic()))
        except (BrokenPipeError, ConnectionResetError, OSError):
            return


def main(argv=None) -> int:
    p = argparse.ArgumentParser("vadedge.runtime.loopback_camera", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--video", required=True, help="video file whose frames are served (looped)")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--port", type=int, default=8554)
    p.add_argument("--size", help="WIDTHxHEIGHT (default: the video's)")
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    with LoopbackCamera(read_frames(args.video), args.fps, size, args.port) as cam:
        print(f"serving {args.video} at {cam.url} ({args.fps:g} fps); Ctrl-C stops", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
