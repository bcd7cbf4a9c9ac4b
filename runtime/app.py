"""``vad-runtime``: live anomaly scoring of camera / file / RTSP snippets with a sliding window.

    vad-runtime --camera 0                                       # model and backbone from the demo (runs/demo/)
    vad-runtime --model m.plan --backbone b.onnx --rtsp rtsp://user:pw@cam/stream --video lobby.mp4
    vad-runtime --demo                                           # the built-in synthetic demo end to end

Capture runs in one thread per source; the main thread encodes each snippet with the backbone, scores the
window with the model (TensorRT, onnxruntime or PyTorch), smooths, applies the alert hysteresis and writes
events. SIGINT/SIGTERM stop it cleanly: open alerts are closed and flushed.
"""

from __future__ import annotations

import argparse
import queue
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vadedge.atomic import atomic_path
from vadedge.errors import VadInputError, run_cli

from .backends import BACKENDS
from .encoder import SnippetEncoder
from .events import EventLog
from .scoring import Alert, Alerter, AlertPolicy, SlidingWindow, Smoother
from .sources import BackoffPolicy, CaptureThread, SourceEnd, SourceSpec, redact
from .stats import Stats, serve_metrics

DEFAULT_DIR = Path("runs/demo")


@dataclass
class RuntimeConfig:
    window: int = 32
    smooth: int = 3
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    queue_size: int = 8
    stats_every: float = 10.0
    clips: str | None = None
    clip_pre_s: float = 3.0
    display: bool = False
    crop: str = "center"


@dataclass
class SourceState:
    window: SlidingWindow
    smoother: Smoother
    alerter: Alerter
    recent: deque  # (t_start, t_end, frames) of the last snippets, for alert clips
    trace: list = field(default_factory=list)  # (t_start, t_end, raw, smoothed, expert)


class Runtime:
    def __init__(self, runner, encoder: SnippetEncoder, sources: list[SourceSpec], cfg: RuntimeConfig,
                 events: EventLog, stats: Stats | None = None, log=print, backoff: BackoffPolicy | None = None):
        if runner.feature_dim != encoder.feature_dim:
            raise VadInputError(f"model expects {runner.feature_dim}-d features but the backbone gives {encoder.feature_dim}-d "
                                "(train the model on features from this backbone)")
        self.runner, self.encoder, self.sources, self.cfg = runner, encoder, sources, cfg
        self.events, self.stats, self.log = events, stats or Stats(), log
        self.stop = threading.Event()
        self.queue: queue.Queue = queue.Queue(maxsize=cfg.queue_size * max(1, len(sources)))
        self.threads = [CaptureThread(s, encoder, self.queue, self.stop, self.stats, backoff, log) for s in sources]
        keep = max(8, int(np.ceil(cfg.clip_pre_s * 2)) + 64)
        self.state = {s.name: SourceState(SlidingWindow(runner, cfg.window), Smoother(cfg.smooth),
                                          Alerter(s.name, cfg.policy, runner.expert_names), deque(maxlen=keep))
                      for s in sources}
        self.alerts: list[Alert] = []
        self.keep_features = False  # tests and the demo: keep every snippet's features
        self.features_seen: dict[str, list[np.ndarray]] = {}

    # ---------------------------------------------------------------- one snippet
    def process(self, snippet) -> None:
        st = self.state[snippet.source]
        t0 = time.perf_counter()
        timings: dict = {}
        feats = self.encoder.encode_sampled(snippet.frames, timings)  # the same call vad-extract makes
        t2 = time.perf_counter()
        raw, expert = st.window.push(feats.mean(0))
        t3 = time.perf_counter()
        score = st.smoother(raw)
        if self.keep_features:
            self.features_seen.setdefault(snippet.source, []).append(feats)
        for stage, dt in (("decode", snippet.decode_s), ("preprocess", timings["preprocess"]), ("backbone", timings["backbone"]),
                          ("head", t3 - t2), ("total", snippet.decode_s + t3 - t0)):
            self.stats.observe(stage, dt)
        self.stats.count("snippets_scored", source=snippet.source)
        st.trace.append((snippet.t_start, snippet.t_end, raw, score, -1 if expert is None else expert))
        st.recent.append((snippet.t_start, snippet.t_end, snippet.frames))
        confirmed, closed = st.alerter.update(snippet.t_start, snippet.t_end, score, expert)
        if confirmed is not None:
            label = f", expert {confirmed.expert_name or confirmed.expert}" if confirmed.expert is not None else ""
            self.log(f"ALERT [{snippet.source}] started at {confirmed.start:.1f} s (score {confirmed.peak:.2f}{label})")
        if closed is not None:
            self._report(closed, st)
        if self.cfg.display:
            self._show(snippet, score, st.alerter.open is not None)

    def _report(self, alert: Alert, st: SourceState) -> None:
        if self.cfg.clips:
            alert.clip = self._save_clip(alert, st)
        self.events.write(alert.to_record())
        self.alerts.append(alert)
        self.log(f"ALERT [{alert.source}] {alert.start:.1f}-{alert.end:.1f} s peak {alert.peak:.2f} ({alert.closed_by})")

    def _save_clip(self, alert: Alert, st: SourceState) -> str | None:
        import cv2

        frames = [f for (a, b, fs) in st.recent if b >= alert.start - self.cfg.clip_pre_s and a <= alert.end for f in fs]
        if not frames:
            return None
        path = Path(self.cfg.clips) / f"{alert.source}_{alert.start:.1f}s.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        last_start, last_end, _ = st.recent[-1]
        fps = max(1.0, len(self.encoder.sampled) / max(last_end - last_start, 1e-3))  # sampled frames only
        with atomic_path(path) as tmp:
            tmp_mp4 = tmp.with_suffix(".mp4")
            h, w = frames[0].shape[:2]
            writer = cv2.VideoWriter(str(tmp_mp4), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            for f in frames:
                writer.write(f)
            writer.release()
            tmp_mp4.replace(tmp)
        return str(path)

    def _show(self, snippet, score: float, alerting: bool) -> None:
        import cv2

        frame = snippet.frames[-1].copy()
        color = (0, 0, 255) if alerting else (0, 200, 0)
        cv2.putText(frame, f"{snippet.source} score {score:.2f}", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, color, 2)
        try:
            cv2.imshow("vad-runtime", frame)
            cv2.waitKey(1)
        except cv2.error:
            self.log("--display needs an OpenCV build with GUI support (opencv-python, not -headless); display off")
            self.cfg.display = False

    # ---------------------------------------------------------------- loop
    def run(self) -> list[Alert]:
        for t in self.threads:
            t.start()
        live = {s.name for s in self.sources}
        next_stats = time.time() + self.cfg.stats_every
        try:
            while live and not self.stop.is_set():
                try:
                    item = self.queue.get(timeout=0.2)
                except queue.Empty:
                    item = None
                if isinstance(item, SourceEnd):
                    live.discard(item.source)
                    self.log(f"[{item.source}] {item.reason}")
                    reason = "shutdown" if self.stop.is_set() else "end of stream"  # a stop also ends sources
                    closed = self.state[item.source].alerter.close(reason)
                    if closed is not None:
                        self._report(closed, self.state[item.source])
                elif item is not None:
                    self.process(item)
                if self.cfg.stats_every and time.time() >= next_stats:
                    self.log(self.stats.line())
                    next_stats = time.time() + self.cfg.stats_every
        finally:
            self.shutdown("shutdown")
        return self.alerts

    def shutdown(self, reason: str) -> None:
        """Stop capture, close every open alert and flush the event log (idempotent)."""
        self.stop.set()
        for name, st in self.state.items():
            closed = st.alerter.close(reason)
            if closed is not None:
                self._report(closed, st)
        for t in self.threads:
            t.join(timeout=5)
        self.events.close()

    def traces(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(st.trace, dtype=np.float64).reshape(-1, 5) for name, st in self.state.items()}


def write_traces(path: str | Path, traces: dict[str, np.ndarray]) -> None:
    """Per source [n, 5]: t_start, t_end, raw score, smoothed score, expert (-1: none)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **traces)


# ---------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("vad-runtime", description=__doc__.splitlines()[0])
    src = p.add_argument_group("sources (any number, mixed)")
    src.add_argument("--camera", type=int, action="append", default=[], metavar="N", help="camera index (cv2.VideoCapture(N))")
    src.add_argument("--video", action="append", default=[], metavar="PATH", help="video file (ends at its end)")
    src.add_argument("--rtsp", action="append", default=[], metavar="URL", help="RTSP/HTTP stream (credentials are never logged)")
    src.add_argument("--realtime", action="store_true", help="pace video files at their frame rate, like a camera")
    m = p.add_argument_group("model")
    m.add_argument("--model", default=str(DEFAULT_DIR / "model.onnx"), help="engine .plan, .onnx or checkpoint .safetensors")
    m.add_argument("--backbone", default=str(DEFAULT_DIR / "backbone.onnx"), help="backbone ONNX (vad-extract --export-backbone)")
    m.add_argument("--backend", choices=BACKENDS, default="auto")
    m.add_argument("--threads", type=int, default=0, help="onnxruntime CPU threads (0 = default)")
    d = RuntimeConfig()
    s = p.add_argument_group("scoring and alerts")
    s.add_argument("--window", type=int, default=d.window, help="snippets in the sliding window")
    s.add_argument("--smooth", type=int, default=d.smooth, help="moving average over this many scores")
    s.add_argument("--start", type=float, default=d.policy.start, help="alert start threshold")
    s.add_argument("--stop", type=float, default=d.policy.stop, help="alert stop threshold (hysteresis)")
    s.add_argument("--min-duration", type=int, default=d.policy.min_snippets, help="minimum alert length in snippets")
    o = p.add_argument_group("outputs")
    o.add_argument("--events", default="events.jsonl", help="JSON Lines event log")
    o.add_argument("--clips", help="save a short clip around each alert in this folder")
    o.add_argument("--scores-out", help="write per-source score traces (.npz)")
    o.add_argument("--display", action="store_true", help="overlay window (needs OpenCV with GUI)")
    o.add_argument("--stats-every", type=float, default=d.stats_every, help="seconds between stats lines (0: off)")
    o.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port (0: off)")
    o.add_argument("--queue", type=int, default=d.queue_size, help="snippets buffered per source before dropping")
    o.add_argument("--reconnect-max-s", type=float, default=30.0, help="longest wait between reconnect attempts")
    p.add_argument("--demo", action="store_true", help="built-in SYNTHETIC demo: render, extract, train, export, stream")
    p.add_argument("--out", default=str(DEFAULT_DIR), help="--demo output folder")
    return p


def sources_from_args(args) -> list[SourceSpec]:
    specs = [SourceSpec(f"camera{i}", i, live=True) for i in args.camera]
    specs += [SourceSpec(Path(v).stem, v, live=False, realtime=args.realtime) for v in args.video]
    specs += [SourceSpec(f"stream{i}:{redact(u).split('://', 1)[-1].split('/')[0]}", u, live=True) for i, u in enumerate(args.rtsp)]
    for spec in specs:
        if not spec.live and not Path(spec.target).is_file():
            raise VadInputError(f"--video {spec.target}: file not found")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise VadInputError(f"source names collide: {names} (rename the files)")
    if not specs:
        raise VadInputError("no source: give --camera N, --video PATH or --rtsp URL")
    return specs


def run_from_args(args, log=print) -> Runtime:
    from .backends import make_runner

    policy = AlertPolicy(args.start, args.stop, args.min_duration)
    cfg = RuntimeConfig(args.window, args.smooth, policy, args.queue, args.stats_every, args.clips, display=args.display)
    specs = sources_from_args(args)
    if not Path(args.model).is_file():
        raise VadInputError(f"--model {args.model}: not found (run the demo first: vad-runtime --demo, or pass --model)")
    runner = make_runner(args.model, args.backend, args.threads)
    encoder = SnippetEncoder(args.backbone, cfg.crop, args.threads)
    stats = Stats()
    server = serve_metrics(stats, args.metrics_port) if args.metrics_port else None
    runtime = Runtime(runner, encoder, specs, cfg, EventLog(args.events), stats, log,
                      BackoffPolicy(max_s=args.reconnect_max_s))
    log(f"vad-runtime: {runner.model_name} on {runner.backend}, window {cfg.window}, sources {[s.name for s in specs]}")

    def on_signal(signum, frame):
        log(f"signal {signal.Signals(signum).name}: stopping, closing open alerts")
        runtime.stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        runtime.run()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if server is not None:
            server.shutdown()
        if args.scores_out:
            write_traces(args.scores_out, runtime.traces())
        log(runtime.stats.line())
    return runtime


def run(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.demo:
        from .demo import run_demo

        run_demo(Path(args.out))
    else:
        run_from_args(args, log=lambda msg: print(msg, flush=True))


def main(argv=None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
