"""``vad-runtime``: live anomaly scoring of camera / file / stream snippets with a sliding window.

    vad-runtime --camera 0                                       # model and backbone from the demo (runs/demo/)
    vad-runtime --model m.plan --backbone b.onnx --rtsp rtsp://user:pw@cam/stream --video lobby.mp4
    vad-runtime --demo                                           # the built-in synthetic demo end to end

Capture runs in one thread per source; the main thread encodes each snippet with the backbone, scores the
window with the model (TensorRT, onnxruntime or PyTorch), smooths, applies the alert hysteresis and writes
start/update/end events. Files are scored losslessly; live sources drop whole snippets when the scorer falls
behind (counted). SIGINT/SIGTERM stop it cleanly: open alerts are closed and flushed.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vadedge.atomic import atomic_path
from vadedge.errors import VadInputError, run_cli

from .backends import BACKENDS, ScorerUnavailable
from .calibrating import MODES as CALIBRATION_MODES
from .calibrating import CalibrationSettings, Collector, load_calibration
from .calibration import Calibration
from .clips import ClipRecorder
from .encoder import SnippetEncoder
from .events import EventLog, check_output_dir, check_output_file
from .scoring import Alert, Alerter, AlertPolicy, SlidingWindow, Smoother
from .sources import (CaptureThread, RetryPolicy, SnippetQueue, SourceEnd, SourceLost, SourceSpec, check_file,
                      check_live, safe_filename, stream_name)
from .stats import Stats, serve_metrics

DEFAULT_DIR = Path("runs/demo")


@dataclass
class RuntimeConfig:
    window: int = 32
    smooth: int = 3
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    queue_size: int = 8  # snippets buffered per source (live sources drop beyond it, files wait)
    stats_every: float = 10.0
    clips: str | None = None
    clip_pre_s: float = 3.0  # seconds of pre-roll kept in memory (only with clips)
    clip_max_s: float = 60.0  # longest clip (frames go to the file as they come: memory holds the pre-roll only)
    display: bool = False
    crop: str = "center"
    stall_timeout: float = 10.0  # seconds without a frame before a live stream is reconnected
    update_every: float = 5.0  # stream seconds between update events of an open alert (on a new peak only)
    keep_trace: bool = False  # keep every snippet's scores (for --scores-out); off: no per-snippet growth
    duration: float = 0.0  # stop after this many seconds (0: until the sources end or a signal)

    def __post_init__(self):
        checks = [("--window", self.window >= 1, "must be >= 1 snippet"), ("--smooth", self.smooth >= 1, "must be >= 1"),
                  ("--queue", self.queue_size >= 1, "must be >= 1 snippet per source"),
                  ("--stall-timeout", self.stall_timeout > 0, "must be > 0 seconds"),
                  ("--update-every", self.update_every > 0, "must be > 0 seconds"),
                  ("--duration", self.duration >= 0, "must be >= 0 seconds"),
                  ("--stats-every", self.stats_every >= 0, "must be >= 0 seconds"),
                  ("--clip-pre-roll", 0 <= self.clip_pre_s <= self.clip_max_s, "must be in [0, clip maximum]")]
        for flag, ok, what in checks:
            if not ok:
                value = {"--window": self.window, "--smooth": self.smooth, "--queue": self.queue_size,
                         "--stall-timeout": self.stall_timeout, "--update-every": self.update_every,
                         "--duration": self.duration, "--stats-every": self.stats_every,
                         "--clip-pre-roll": self.clip_pre_s}[flag]
                raise VadInputError(f"{flag} {value}: {what}")


@dataclass
class SourceState:
    window: SlidingWindow
    smoother: Smoother
    alerter: Alerter
    clips: ClipRecorder | None = None  # only with clips
    trace: list | None = None  # (t_start, t_end, raw, smoothed, expert); only with keep_trace
    nonfinite: int = 0
    calibration: Calibration | None = None  # this camera's calibrated score and thresholds
    collector: Collector | None = None  # --calibrate: footage being collected (no alerts meanwhile)


class Runtime:
    def __init__(self, runner, encoder: SnippetEncoder, sources: list[SourceSpec], cfg: RuntimeConfig,
                 events: EventLog, stats: Stats | None = None, log=print, retry: RetryPolicy | None = None,
                 backoff: RetryPolicy | None = None, calibration: CalibrationSettings | None = None):
        if runner.feature_dim != encoder.feature_dim:
            raise VadInputError(f"model expects {runner.feature_dim}-d features but the backbone gives {encoder.feature_dim}-d "
                                "(train the model on features from this backbone)")
        self.runner, self.encoder, self.sources, self.cfg = runner, encoder, sources, cfg
        self.events, self.stats, self.log = events, stats or Stats(), log
        self.stop = threading.Event()
        self.queue = SnippetQueue([s.name for s in sources], cfg.queue_size)
        retry = retry or backoff
        self.calibration = calibration or CalibrationSettings()
        self.state = {s.name: self._fresh_state(s.name) for s in sources}
        motion = self.calibration.wants_motion() or any(st.calibration is not None and st.calibration.uses_motion
                                                          for st in self.state.values())
        self.threads = [CaptureThread(s, encoder, self.queue, self.stop, self.stats, retry, log, cfg.stall_timeout,
                                      keep_clip_frames=bool(cfg.clips), motion=motion) for s in sources]
        self.alerts: list[Alert] = []
        self.ended: dict[str, str] = {}  # source -> why it ended
        self.event_extra = {"model": runner.model_name}
        if getattr(runner, "synthetic", False):
            self.event_extra["synthetic_model"] = True
        self.keep_features = False  # tests and the demo: keep every snippet's features
        self.features_seen: dict[str, list[np.ndarray]] = {}

    def _fresh_state(self, name: str) -> SourceState:
        cfg = self.cfg
        clips = ClipRecorder(cfg.clips, cfg.clip_pre_s, cfg.clip_max_s) if cfg.clips else None
        st = SourceState(SlidingWindow(self.runner, cfg.window), Smoother(cfg.smooth),
                         Alerter(name, cfg.policy, self.runner.expert_names), clips, trace=[] if cfg.keep_trace else None)
        previous = getattr(self, "state", {}).get(name)
        if previous is not None:  # a reconnect keeps the camera's calibration (or its collection so far)
            st.collector, st.calibration = previous.collector, previous.calibration
        elif self.calibration.seconds:
            st.collector = Collector(name, self.calibration.seconds)
        elif self.calibration.active:
            st.calibration = load_calibration(self.calibration, name, cfg.window, cfg.smooth, self.encoder.feature_dim)
        if st.calibration is not None:
            st.alerter.policy = st.calibration.policy
        return st

    # ---------------------------------------------------------------- one snippet
    def process(self, snippet) -> None:
        st = self.state[snippet.source]
        t0 = time.perf_counter()
        timings: dict = {}
        try:
            feats = self.encoder.encode_sampled(snippet.frames, timings)  # the same call vad-extract makes
            preview = snippet.frames[-1] if self.cfg.display else None
            snippet.frames = None  # the backbone's copies are no longer needed
            t2 = time.perf_counter()
            raw, expert = st.window.push(feats.mean(0))
            t3 = time.perf_counter()
        except ScorerUnavailable as exc:  # a remote scorer is down: count, skip this snippet, keep running
            self.stats.count("scorer_unavailable", source=snippet.source)
            if self.stats.total("scorer_unavailable") % 50 == 1:
                self.log(f"warning: [{snippet.source}] snippet at {snippet.t_start:.1f} s not scored: {exc}")
            return
        if self.keep_features:
            self.features_seen.setdefault(snippet.source, []).append(feats)
        for stage, dt in (("decode", snippet.decode_s), ("preprocess", timings["preprocess"]), ("backbone", timings["backbone"]),
                          ("head", t3 - t2), ("total", snippet.decode_s + t3 - t0)):
            self.stats.observe(stage, dt)
        self.stats.count("snippets_scored", source=snippet.source)
        if not np.isfinite(raw):
            self._nonfinite(snippet, st)
            return
        if st.collector is not None:  # --calibrate: this footage is declared normal, no alerts yet
            if st.collector.add(snippet.t_start, snippet.t_end, raw, feats.mean(0), snippet.motion):
                self._finish_calibration(snippet.source, st)
            return
        if st.calibration is not None:
            raw = st.calibration.score(raw, feats.mean(0), snippet.motion)
        score = st.smoother(raw)
        if st.trace is not None:
            st.trace.append((snippet.t_start, snippet.t_end, raw, score, -1 if expert is None else expert))
        confirmed, closed = st.alerter.update(snippet.t_start, snippet.t_end, score, expert, snippet.anchor)
        if closed is not None:
            self._report_end(closed, st)
        if st.clips is not None:
            open_alert = st.alerter.open
            self._clip_step(snippet.source, st, lambda: st.clips.add(snippet.t_start, snippet.t_end, snippet.clip_frames,
                                                                     open_alert.start if open_alert else None))
            snippet.clip_frames = None
        if confirmed is not None:
            if st.clips is not None:
                self._clip_step(snippet.source, st, lambda: st.clips.start(confirmed.source, confirmed.id, confirmed.start))
            self._write("start", Alerter.mark_reported(confirmed))
            label = f", expert {confirmed.expert_name or confirmed.expert}" if confirmed.expert is not None else ""
            self.log(f"ALERT [{snippet.source}] started at {confirmed.start:.1f} s (score {confirmed.peak:.2f}{label})")
        else:
            update = st.alerter.due_update(self.cfg.update_every)
            if update is not None:
                self._write("update", update)
        if self.cfg.display:
            self._show(snippet.source, preview, score, st.alerter.open is not None)

    def _finish_calibration(self, source: str, st: SourceState) -> None:
        collector, st.collector = st.collector, None
        try:
            st.calibration = collector.finish(self.calibration, self.cfg.window, self.cfg.smooth,
                                              self.cfg.policy.min_snippets, self.log)
        except VadInputError as exc:  # e.g. a saturated model: say what to do, keep the configured thresholds
            self.log(f"warning: [{source}] not calibrated: {exc}; alerting with --start {self.cfg.policy.start:g} "
                     f"--stop {self.cfg.policy.stop:g}")
            return
        st.alerter.policy = st.calibration.policy
        self.log(f"[{source}] {st.calibration.summary()} (saved in {self.calibration.directory})")

    def _nonfinite(self, snippet, st: SourceState) -> None:
        """A NaN/inf score never feeds the smoother or the alerts; it is counted and logged (rate-limited)."""
        st.nonfinite += 1
        self.stats.count("nonfinite_scores", source=snippet.source)
        if st.nonfinite == 1 or st.nonfinite % 100 == 0:
            self.log(f"warning: [{snippet.source}] non-finite score at {snippet.t_start:.1f} s "
                     f"({st.nonfinite} so far; check the model and backbone files)")

    def _write(self, kind: str, alert: Alert) -> None:
        self.events.write(alert.to_record(kind, **self.event_extra))

    def _report_end(self, alert: Alert, st: SourceState) -> None:
        if st.clips is not None:
            alert.clip = self._clip_step(alert.source, st, st.clips.finish)
        self._write("end", alert)
        self.alerts.append(alert)
        self.log(f"ALERT [{alert.source}] {alert.start:.1f}-{alert.end:.1f} s peak {alert.peak:.2f} ({alert.closed_by})")

    def _close(self, source: str, reason: str) -> None:
        st = self.state[source]
        closed = st.alerter.close(reason)
        if closed is not None:
            self._report_end(closed, st)

    # ---------------------------------------------------------------- clips
    def _clip_step(self, source: str, st: SourceState, step):
        """Run one clip operation; a failure (codec, full disk, folder gone) is a warning and never loses an event."""
        try:
            return step()
        except Exception as exc:
            st.clips.abort()
            self.log(f"warning: [{source}] clip not saved ({type(exc).__name__}: {exc})")
            self.stats.count("clip_failures", source=source)
            return None

    def _show(self, source: str, frame: np.ndarray, score: float, alerting: bool) -> None:
        import cv2

        frame = frame.copy()
        color = (0, 0, 255) if alerting else (0, 200, 0)
        cv2.putText(frame, f"{source} score {score:.2f}", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, color, 2)
        try:
            cv2.imshow("vad-runtime", frame)
            cv2.waitKey(1)
        except cv2.error:
            self.log("--display needs an OpenCV build with GUI support (opencv-python, not -headless); display off")
            self.cfg.display = False

    # ---------------------------------------------------------------- loop
    def _handle_marker(self, item, live: set) -> None:
        if isinstance(item, SourceLost):
            self.stats.count("sources_lost", source=item.source)
            self._close(item.source, "source lost")
            # The window would mix snippets from both sides of the gap: start afresh (the trace goes on).
            fresh = self._fresh_state(item.source)
            fresh.trace = self.state[item.source].trace
            self.state[item.source] = fresh
            return
        live.discard(item.source)
        self.ended[item.source] = item.reason
        self.log(f"[{item.source}] {item.reason}")
        st = self.state[item.source]
        if st.collector is not None and st.collector.scores:  # the footage ended before --calibrate was reached
            self.log(f"warning: [{item.source}] footage ended before {st.collector.seconds:g} s: calibrating on the "
                     f"{len(st.collector.scores)} snippets collected")
            self._finish_calibration(item.source, st)
        self._close(item.source, "shutdown" if self.stop.is_set() else "end of stream")

    def run(self) -> list[Alert]:
        for t in self.threads:
            t.start()
        live = {s.name for s in self.sources}
        started = time.monotonic()
        next_stats = started + self.cfg.stats_every
        try:
            while live and not self.stop.is_set():
                item = self.queue.get(timeout=0.2)
                if isinstance(item, (SourceEnd, SourceLost)):
                    self._handle_marker(item, live)
                elif item is not None:
                    self.process(item)
                now = time.monotonic()
                if self.cfg.stats_every and now >= next_stats:
                    self.log(self.stats.line())
                    next_stats = now + self.cfg.stats_every
                if self.cfg.duration and now - started >= self.cfg.duration:
                    self.log(f"--duration {self.cfg.duration:g} s reached: stopping")
                    self.stop.set()
        finally:
            self.shutdown("shutdown")
        return self.alerts

    def shutdown(self, reason: str) -> None:
        """Stop capture, close every open alert and flush the event log (idempotent)."""
        self.stop.set()
        for name in self.state:
            self._close(name, reason)
        for t in self.threads:
            t.join(timeout=5)
        self.events.close()

    def traces(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(st.trace or [], dtype=np.float64).reshape(-1, 5) for name, st in self.state.items()}


def write_traces(path: str | Path, traces: dict[str, np.ndarray]) -> None:
    """Per source [n, 5]: t_start, t_end, raw score, smoothed score, expert (-1: none)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{safe_filename(k): v for k, v in traces.items()})


# ---------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser("vad-runtime", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_argument_group("sources (any number, mixed)")
    src.add_argument("--camera", type=int, action="append", default=[], metavar="N", help="camera index (cv2.VideoCapture(N))")
    src.add_argument("--video", action="append", default=[], metavar="PATH", help="video file: every snippet scored (lossless)")
    src.add_argument("--rtsp", action="append", default=[], metavar="URL", help="RTSP/HTTP stream (credentials are never logged)")
    src.add_argument("--realtime", action="store_true", help="pace video files at their own timestamps and drop like a camera")
    src.add_argument("--stall-timeout", type=float, default=10.0, help="seconds without a frame before a stream is reconnected")
    src.add_argument("--retry-forever", action="store_true", help="a camera/stream unavailable at start is retried instead of an error")
    src.add_argument("--retry-limit", type=int, default=0, help="give up on a lost live source after this many failed reconnects (0: never)")
    src.add_argument("--reconnect-max-s", type=float, default=30.0, help="longest wait between reconnect attempts")
    m = p.add_argument_group("model")
    m.add_argument("--model", default=str(DEFAULT_DIR / "model.onnx"), help="engine .plan, .onnx or checkpoint .safetensors")
    m.add_argument("--backbone", default=str(DEFAULT_DIR / "backbone.onnx"), help="backbone ONNX (vad-extract --export-backbone)")
    m.add_argument("--backend", choices=BACKENDS, default="auto")
    m.add_argument("--threads", type=int, default=0, help="onnxruntime CPU threads (0 = default)")
    m.add_argument("--triton", metavar="URL", help="score on Triton Inference Server (grpc://HOST:8001, a vad-export-triton "
                   "repository) instead of --model/--backbone")
    d = RuntimeConfig()
    s = p.add_argument_group("scoring and alerts")
    s.add_argument("--window", type=int, default=d.window, help="snippets in the sliding window")
    s.add_argument("--smooth", type=int, default=d.smooth, help="moving average over this many scores")
    s.add_argument("--start", type=float, default=d.policy.start, help="alert start threshold")
    s.add_argument("--stop", type=float, default=d.policy.stop, help="alert stop threshold (hysteresis)")
    s.add_argument("--min-duration", type=int, default=d.policy.min_snippets, help="minimum alert length in snippets")
    s.add_argument("--update-every", type=float, default=d.update_every, help="seconds between update events (on a new peak)")
    c = p.add_argument_group("per-camera calibration (README \"Per-camera calibration\")")
    c.add_argument("--calibration", metavar="DIR", help="load each camera's calibration from DIR (thresholds replace --start/--stop)")
    c.add_argument("--calibrate", type=float, default=0.0, metavar="SECONDS",
                   help="calibrate each source on its first SECONDS of footage (declared normal), save to --calibration DIR")
    c.add_argument("--false-alarms-per-hour", type=float, default=1.0, help="--calibrate: target alerts per hour on normal footage")
    c.add_argument("--calibration-mode", choices=CALIBRATION_MODES, default="model",
                   help="--calibrate: model score, scene normality (k-NN novelty) or their fusion")
    c.add_argument("--no-motion", action="store_true", help="--calibrate normality/fused: appearance memory only")
    o = p.add_argument_group("outputs")
    o.add_argument("--events", default="events.jsonl", help="JSON Lines event log: a file, - or /dev/stdout (logs then go to stderr), a FIFO")
    o.add_argument("--clips", help="save a clip around each alert in this folder")
    o.add_argument("--clip-pre-roll", type=float, default=d.clip_pre_s, help="seconds before the alert in each clip")
    o.add_argument("--scores-out", help="write per-source score traces (.npz)")
    o.add_argument("--display", action="store_true", help="overlay window (needs OpenCV with GUI)")
    o.add_argument("--stats-every", type=float, default=d.stats_every, help="seconds between stats lines (0: off)")
    o.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port (0: off)")
    o.add_argument("--metrics-host", default="127.0.0.1", help="metrics address (0.0.0.0 exposes it on every interface)")
    o.add_argument("--queue", type=int, default=d.queue_size, help="snippets buffered per source (live sources drop beyond it)")
    o.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: run until the sources end)")
    p.add_argument("--demo", action="store_true", help="built-in SYNTHETIC demo: render, extract, train, export, stream")
    p.add_argument("--out", default=str(DEFAULT_DIR), help="--demo output folder")
    return p


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def sources_from_args(args) -> list[SourceSpec]:
    """Sources from the flags; names never hold credentials (streams: host and port only)."""
    for i in args.camera:
        if i < 0:  # OpenCV crashes on some negative indexes instead of failing
            raise VadInputError(f"--camera {i}: camera index must be >= 0 (0 is the first /dev/video* device)")
    specs = [SourceSpec(f"camera{i}", i, "camera") for i in args.camera]
    specs += [SourceSpec(Path(v).stem, v, "file", realtime=args.realtime) for v in args.video]
    specs += [SourceSpec(stream_name(u), u, "stream") for u in args.rtsp]
    if not specs:
        raise VadInputError("no source: give --camera N, --video PATH or --rtsp URL")
    for spec, name in zip(specs, _unique([s.name for s in specs])):
        spec.name = name
    return specs


def check_sources(specs: list[SourceSpec], snippet_frames: int, stall_timeout: float, retry: RetryPolicy, log) -> None:
    """Before any work: every file gives a snippet; every camera/stream opens (or retrying was asked for)."""
    for spec in specs:
        if spec.kind == "file":
            check_file(spec.target, snippet_frames)
    for spec in specs:
        if spec.kind == "file":
            continue
        reason = check_live(spec, stall_timeout)
        if reason is None:
            continue
        if not retry.retries_at_start:
            raise VadInputError(f"{reason}; pass --retry-forever (or --retry-limit N) to wait for it")
        log(f"warning: {reason}; retrying")


def run_from_args(args, log=print) -> Runtime:
    from .backends import make_runner

    policy = AlertPolicy(args.start, args.stop, args.min_duration)
    cfg = RuntimeConfig(args.window, args.smooth, policy, args.queue, args.stats_every, args.clips, args.clip_pre_roll,
                        display=args.display, stall_timeout=args.stall_timeout, update_every=args.update_every,
                        keep_trace=bool(args.scores_out), duration=args.duration)
    if args.retry_limit < 0:
        raise VadInputError(f"--retry-limit {args.retry_limit}: must be >= 0")
    retry = RetryPolicy(max_s=args.reconnect_max_s, limit=args.retry_limit, forever=args.retry_forever)
    specs = sources_from_args(args)
    # Outputs and the metrics port are checked before the models load: a typo costs seconds, not minutes.
    if args.clips:
        check_output_dir(args.clips, "--clips")
    if args.scores_out:
        check_output_file(args.scores_out, "--scores-out")
    if args.events:
        check_output_file(args.events, "--events")
    stats = Stats()
    if args.triton:
        from .triton import triton_parts

        runner, encoder = triton_parts(args.triton, cfg.crop, stats)
    else:
        if not Path(args.model).is_file():
            raise VadInputError(f"--model {args.model}: not found (run the demo first: vad-runtime --demo, or pass --model)")
        runner = make_runner(args.model, args.backend, args.threads)
        encoder = SnippetEncoder(args.backbone, cfg.crop, args.threads, device="openvino" if runner.backend == "openvino" else "cpu")
    calibration = CalibrationSettings(args.calibration, args.calibrate, args.false_alarms_per_hour, args.calibration_mode,
                                      not args.no_motion)
    if calibration.active and args.triton:  # the hashes vad-export-triton stored for the served files
        calibration = calibration.for_hashes(runner.model_sha256, runner.backbone_sha256)
    elif calibration.active:
        calibration = calibration.for_files(args.model, args.backbone)
    check_sources(specs, encoder.snippet_frames, cfg.stall_timeout, retry, log)
    server = serve_metrics(stats, args.metrics_port, args.metrics_host) if args.metrics_port else None
    events = EventLog(args.events, log)
    try:
        runtime = Runtime(runner, encoder, specs, cfg, events, stats, log, retry, calibration=calibration)
    except BaseException:
        if server is not None:
            server.shutdown()
        events.close()
        raise
    log(f"vad-runtime: {runner.model_name} on {runner.backend}, window {cfg.window}, sources {[s.name for s in specs]}")
    for name, st in runtime.state.items():
        if st.calibration is not None:
            log(f"[{name}] {st.calibration.summary()}")
        elif st.collector is not None:
            log(f"[{name}] calibrating on the first {calibration.seconds:g} s (declared normal): no alerts until then")
        elif calibration.active:
            log(f"[{name}] no calibration in {calibration.directory}: alerting with --start {cfg.policy.start:g} --stop {cfg.policy.stop:g}")
    if getattr(runner, "synthetic", False):
        log(f"warning: {args.model} is a SYNTHETIC demo model (trained on rendered scenes): its scores on real video are "
            "not meaningful; every event is marked synthetic_model=true")

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
    lost = {k: v for k, v in runtime.ended.items() if v.startswith("gave up")}
    if lost and len(lost) == len(specs):  # a service manager must see that nothing is watched any more
        raise VadInputError(f"every source was lost: {'; '.join(f'{k}: {v}' for k, v in lost.items())}")
    return runtime


def run(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.demo:
        from .demo import run_demo

        run_demo(Path(args.out))
    else:
        import sys

        # With events on stdout, log lines go to stderr so stdout stays pure JSON Lines.
        stream = sys.stderr if args.events in ("-", "/dev/stdout") else sys.stdout
        run_from_args(args, log=lambda msg: print(msg, file=stream, flush=True))


def main(argv=None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
