"""The runtime pipeline: sources -> encoder -> scorer -> alerting -> sinks, one snippet or one batch at a time.

    capture threads    sources.py      one per camera / file / stream, per-source bounded queues
    batching           batching.py     gather ready snippets across sources (--max-batch, --max-wait-ms); one backbone
                                       call per encoder, one head call per runner and window length
    encoder            encoder.py      SnippetEncoder.encode_batch: the backbone, exactly as vad-extract runs it
    scorer             scoring.py      SlidingWindow (the model over the last W snippets) + Smoother
    alerting           scoring.py      Alerter: hysteresis with each camera's CameraScoring; a calibration
                                       (calibrating.py, issue 12) replaces a camera's thresholds
    sinks              sinks/          JSONL first and synchronously, then MQTT / webhook from their own queues
    clips, snapshots   clips.py        written while the alert runs
    metrics            stats.py        prometheus_client registry, /metrics /healthz /readyz

``Runtime`` holds one ``SourceState`` per camera, and per camera its model and backbone (``runner_for`` /
``encoder_for``: cameras with the same files share one object); ``app.py`` only turns flags / a config file into
these parts.
Files are scored losslessly; live sources drop whole snippets when the scorer falls behind (counted).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vadedge.atomic import atomic_path
from vadedge.errors import VadInputError

from .batching import BatchScorer, Scored, gather
from .calibrating import CalibrationSettings, Collector, load_calibration
from .calibration import Calibration
from .clips import ClipRecorder, prune, write_snapshot
from .encoder import SnippetEncoder
from .events import EventLog, file_sha256
from .scoring import Alert, Alerter, AlertPolicy, CameraScoring, SlidingWindow, Smoother
from .sinks import Sink
from .sinks.jsonl import JsonlSink
from .sources import CaptureThread, RetryPolicy, SnippetQueue, SourceLost, SourceSpec, safe_filename
from .stats import Stats


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
    clip_post_s: float = 2.0  # seconds after an alert's end (closed by the score) still in its clip
    clip_max_side: int = 1280  # clip frames downscaled to at most this many pixels (bounds the pre-roll's memory)
    clip_keep_hours: float = 0.0  # retention: delete clips/snapshots older than this (0: keep)
    clip_max_mb: float = 0.0  # retention: keep the clip folder under this many MB, oldest deleted first (0: no limit)
    display: bool = False
    crop: str = "center"
    stall_timeout: float = 10.0  # seconds without a frame before a live stream is reconnected
    update_every: float = 5.0  # stream seconds between update events of an open alert (on a new peak only)
    keep_trace: bool = False  # keep every snippet's scores (for --scores-out); off: no per-snippet growth
    duration: float = 0.0  # stop after this many seconds (0: until the sources end or a signal)
    max_batch: int = 1  # snippets of all sources scored in one backbone / head call (batching.py); 1: one at a time
    max_wait_ms: float = 0.0  # wait at most this long for a batch to fill (0: only the snippets already queued)

    MAX_WAIT_MS = 10_000.0  # longer is a typo: it would hold a snippet (and its alert) back for more than 10 s

    def __post_init__(self):
        checks = [("--window", self.window >= 1, "must be >= 1 snippet"), ("--smooth", self.smooth >= 1, "must be >= 1"),
                  ("--queue", self.queue_size >= 1, "must be >= 1 snippet per source"),
                  ("--stall-timeout", self.stall_timeout > 0, "must be > 0 seconds"),
                  ("--update-every", self.update_every > 0, "must be > 0 seconds"),
                  ("--duration", self.duration >= 0, "must be >= 0 seconds"),
                  ("--stats-every", self.stats_every >= 0, "must be >= 0 seconds"),
                  ("--clip-pre-roll", 0 <= self.clip_pre_s <= self.clip_max_s, "must be in [0, clip maximum]"),
                  ("--clip-post-roll", self.clip_post_s >= 0, "must be >= 0 seconds"),
                  ("--clip-keep-hours", self.clip_keep_hours >= 0, "must be >= 0 (0: keep)"),
                  ("--clip-max-mb", self.clip_max_mb >= 0, "must be >= 0 (0: no limit)"),
                  ("--max-batch", self.max_batch >= 1, "must be >= 1 snippet"),
                  ("--max-wait-ms", 0 <= self.max_wait_ms <= self.MAX_WAIT_MS, f"must be in [0, {self.MAX_WAIT_MS:g}] ms")]
        for flag, ok, what in checks:
            if not ok:
                value = {"--window": self.window, "--smooth": self.smooth, "--queue": self.queue_size,
                         "--stall-timeout": self.stall_timeout, "--update-every": self.update_every,
                         "--duration": self.duration, "--stats-every": self.stats_every,
                         "--clip-pre-roll": self.clip_pre_s, "--clip-post-roll": self.clip_post_s,
                         "--clip-keep-hours": self.clip_keep_hours, "--clip-max-mb": self.clip_max_mb,
                         "--max-batch": self.max_batch, "--max-wait-ms": self.max_wait_ms}[flag]
                raise VadInputError(f"{flag} {value}: {what}")


@dataclass
class SourceState:
    window: SlidingWindow
    smoother: Smoother
    alerter: Alerter
    clips: ClipRecorder | None = None  # only with clips
    trace: list | None = None  # (t_start, t_end, raw, smoothed, expert); only with keep_trace
    nonfinite: int = 0
    peak: tuple | None = None  # (alert id, score, frame, t) of the open alert's peak snippet (clips on: snapshot)
    calibration: Calibration | None = None  # this camera's calibrated score and thresholds
    collector: Collector | None = None  # --calibrate: footage being collected (no alerts meanwhile)


def per_source(value, names: list[str], what: str) -> dict:
    """One object for every source, or a mapping source -> object (which must cover every source)."""
    if not isinstance(value, Mapping):
        return {n: value for n in names}
    missing = [n for n in names if n not in value]
    if missing:
        raise ValueError(f"Runtime: no {what} for {missing}")
    return {n: value[n] for n in names}


class Runtime:
    """``runner``, ``encoder``, ``calibration`` and ``model_file``: one for every source, or a mapping per source
    (cameras with their own model/backbone files). Sources sharing a file share the object (app.py builds each
    file once), so a batching stage can group sources by ``runner_for``/``encoder_for`` identity."""

    def __init__(self, runner, encoder: SnippetEncoder | Mapping[str, SnippetEncoder], sources: list[SourceSpec],
                 cfg: RuntimeConfig, events: EventLog, stats: Stats | None = None, log=print,
                 retry: RetryPolicy | None = None, backoff: RetryPolicy | None = None,
                 calibration: CalibrationSettings | Mapping[str, CalibrationSettings] | None = None,
                 sinks: list[Sink] = (), model_file: str | Mapping[str, str] | None = None,
                 scoring: dict[str, CameraScoring] | None = None):
        names = [s.name for s in sources]
        self._runners = per_source(runner, names, "runner")
        self._encoders = per_source(encoder, names, "encoder")
        model_files = per_source(model_file, names, "model_file")
        for name in names:
            r, e = self._runners[name], self._encoders[name]
            if r.feature_dim != e.feature_dim:
                raise VadInputError(f"camera {name}: model {model_files[name] or r.model_name} expects {r.feature_dim}-d "
                                    f"features but backbone {e.path} gives {e.feature_dim}-d (train the model on "
                                    "features from this backbone)")
        self.sources, self.cfg = sources, cfg
        self.events, self.stats, self.log = events, stats or Stats(), log
        # The JSONL log first and synchronously (the record of truth); network sinks queue in their own threads.
        self.sinks: list[Sink] = [JsonlSink(events, name="jsonl"), *sinks]
        for sink in self.sinks:
            sink.bind(self.stats)
        for s in sources:
            self.stats.add_source(s.name)
        self.stop = threading.Event()
        self.queue = SnippetQueue(names, cfg.queue_size)
        retry = retry or backoff
        # Per camera: window, smoothing, thresholds (config file blocks; the flags' values for the rest); a camera's
        # calibration (below) then replaces its thresholds.
        default = CameraScoring(cfg.window, cfg.smooth, cfg.policy, cfg.update_every)
        self.scoring = {s.name: (scoring or {}).get(s.name, default) for s in sources}
        self.calibration = per_source(calibration or CalibrationSettings(), names, "calibration")
        self.state = {s.name: self._fresh_state(s.name) for s in sources}
        self.threads = [CaptureThread(s, self.encoder_for(s.name), self.queue, self.stop, self.stats, retry, log,
                                      cfg.stall_timeout, keep_clip_frames=bool(cfg.clips), clip_max_side=cfg.clip_max_side,
                                      motion=self._wants_motion(s.name))
                        for s in sources]
        self.alerts: list[Alert] = []
        self.ended: dict[str, str] = {}  # source -> why it ended
        self.event_extra = {n: self._model_fields(n, model_files[n]) for n in names}  # per camera: its own model
        self.keep_features = False  # tests and the demo: keep every snippet's features
        self.features_seen: dict[str, list[np.ndarray]] = {}
        self.live: set[str] = set(names)
        self.stats.ready_check = self._ready
        # Backbone calls grouped by encoder object, head calls by the runner object of each source's window.
        self.scorer = BatchScorer(self.encoder_for, lambda name: self.state[name].window, self.stats, log, cfg.max_batch)

    def runner_for(self, source: str):
        """The scoring head of ``source`` (shared by the sources with the same model file)."""
        return self._runners[source]

    def encoder_for(self, source: str) -> SnippetEncoder:
        """The backbone of ``source`` (shared by the sources with the same backbone file)."""
        return self._encoders[source]

    def _wants_motion(self, source: str) -> bool:
        """The capture thread computes motion descriptors only for a camera whose calibration needs them."""
        cal = self.state[source].calibration
        return self.calibration[source].wants_motion() or (cal is not None and cal.uses_motion)

    def _model_fields(self, source: str, model_file: str | None) -> dict:
        """The event fields naming the model that scores ``source`` (and its info metric)."""
        runner = self.runner_for(source)
        sha = getattr(runner, "model_sha256", None)  # a remote (Triton) model carries its file's hash
        model_file = model_file or getattr(runner, "path", None)
        if sha is None and model_file is None:
            raise ValueError("Runtime needs model_file (its SHA-256 goes into every event)")
        extra = {"model": runner.model_name, "model_sha256": sha or file_sha256(model_file)}
        self.stats.set_info(source, model=runner.model_name, backend=runner.backend, model_sha256=extra["model_sha256"])
        if getattr(runner, "synthetic", False):
            extra["synthetic_model"] = True
        return extra

    def _ready(self) -> tuple[bool, str]:
        """/readyz: the models are loaded (we exist) and every running source gave a frame within the stall timeout."""
        now, late = time.monotonic(), []
        for name in sorted(self.live):
            last = self.stats.last_frame.get(name)
            if last is None or now - last > self.cfg.stall_timeout:
                late.append(name)
        return (not late, f"no recent frame from {', '.join(late)}" if late else "")

    def _fresh_state(self, name: str) -> SourceState:
        cfg = self.cfg
        clips = ClipRecorder(cfg.clips, cfg.clip_pre_s, cfg.clip_max_s, cfg.clip_post_s, cfg.clip_max_side,
                             log=self.log) if cfg.clips else None
        sc = self.scoring[name]
        runner, calibration = self.runner_for(name), self.calibration[name]
        st = SourceState(SlidingWindow(runner, sc.window), Smoother(sc.smooth),
                         Alerter(name, sc.policy, runner.expert_names), clips, trace=[] if cfg.keep_trace else None)
        previous = getattr(self, "state", {}).get(name)
        if previous is not None:  # a reconnect keeps the camera's calibration (or its collection so far)
            st.collector, st.calibration = previous.collector, previous.calibration
        elif calibration.seconds:
            st.collector = Collector(name, calibration.seconds)
        elif calibration.active:
            st.calibration = load_calibration(calibration, name, sc.window, sc.smooth, self.encoder_for(name).feature_dim)
        if st.calibration is not None:
            st.alerter.policy = st.calibration.policy
        return st

    # ---------------------------------------------------------------- scoring
    def process(self, snippet) -> None:
        """Score one snippet and act on its score (alerts, sinks, clips)."""
        self.process_batch([snippet])

    def process_batch(self, snippets: list) -> None:
        """Encode and score snippets of any sources together (batching.py), then act on each score in order."""
        for scored in self.scorer.score(snippets):
            self._report(scored)

    def _report(self, scored: Scored) -> None:
        """Everything after the model: stats, smoothing, calibration, alerts, events, clips, sinks (both paths)."""
        snippet, feats, raw, expert = scored.snippet, scored.feats, scored.raw, scored.expert
        if scored.error is not None:  # a remote scorer (Triton) is down: count, skip this snippet, keep running
            self.stats.count("scorer_unavailable", source=snippet.source)
            if self.stats.total("scorer_unavailable") % 50 == 1:
                self.log(f"warning: [{snippet.source}] snippet at {snippet.t_start:.1f} s not scored: {scored.error}")
            return
        st = self.state[snippet.source]
        if self.keep_features:
            self.features_seen.setdefault(snippet.source, []).append(feats)
        timings, work = scored.timings, scored.done - scored.started
        for stage, dt in (("decode", snippet.decode_s), ("wait", scored.started - snippet.ready),
                          ("preprocess", timings["preprocess"]), ("backbone", timings["backbone"]), ("head", timings["head"]),
                          ("total", snippet.decode_s + work), ("latency", scored.done - snippet.ready)):
            self.stats.observe(stage, dt)
        self.stats.count("snippets_scored", source=snippet.source)
        if not np.isfinite(raw):
            self._nonfinite(snippet, st)
            return
        if st.collector is not None:  # --calibrate: this footage is declared normal, no alerts yet
            if st.clips is not None:  # still the pre-roll of the first alert after calibrating
                self._clip_step(snippet.source, st, lambda: st.clips.add(snippet.t_start, snippet.t_end,
                                                                         snippet.clip_frames, None))
                snippet.clip_frames = None
            if st.collector.add(snippet.t_start, snippet.t_end, raw, feats.mean(0), snippet.motion):
                self._finish_calibration(snippet.source, st)
            return
        if st.calibration is not None:
            raw = st.calibration.score(raw, feats.mean(0), snippet.motion)
        score = st.smoother(raw)
        self.stats.score.labels(snippet.source).set(score)
        if st.trace is not None:
            st.trace.append((snippet.t_start, snippet.t_end, raw, score, -1 if expert is None else expert))
        confirmed, closed = st.alerter.update(snippet.t_start, snippet.t_end, score, expert, snippet.anchor)
        if closed is not None:
            self._report_end(closed, st)
        if st.clips is not None:
            open_alert = st.alerter.open
            frames = snippet.clip_frames
            if open_alert is not None and frames and (st.peak is None or st.peak[0] != open_alert.id or score > st.peak[1]):
                st.peak = (open_alert.id, score, frames[len(frames) // 2], snippet.t_start)  # one frame, for the snapshot
            self._clip_step(snippet.source, st, lambda: st.clips.add(snippet.t_start, snippet.t_end, frames,
                                                                     open_alert.start if open_alert else None))
            snippet.clip_frames = None
            self._retention(st)
        if confirmed is not None:
            if st.clips is not None:
                self._clip_step(snippet.source, st, lambda: st.clips.start(confirmed.source, confirmed.id, confirmed.start))
            self._write("start", Alerter.mark_reported(confirmed))
            self.stats.count("alerts", source=snippet.source)
            label = f", expert {confirmed.expert_name or confirmed.expert}" if confirmed.expert is not None else ""
            self.log(f"ALERT [{snippet.source}] started at {confirmed.start:.1f} s (score {confirmed.peak:.2f}{label})")
        else:
            update = st.alerter.due_update(self.scoring[snippet.source].update_every)
            if update is not None:
                self._write("update", update)
        alert_open = st.alerter.open is not None and st.alerter.open.confirmed
        self.stats.alert_open.labels(snippet.source).set(int(alert_open))
        t4 = time.perf_counter()
        for sink in self.sinks:
            if sink.accepts(snippet.source):
                sink.state(snippet.source, score, alert_open)
        self.stats.observe("sinks", time.perf_counter() - t4)
        if self.cfg.display:
            self._show(snippet.source, scored.preview, score, st.alerter.open is not None)

    def _finish_calibration(self, source: str, st: SourceState) -> None:
        collector, st.collector = st.collector, None
        sc = self.scoring[source]  # this camera's window, smoothing and configured thresholds
        try:
            st.calibration = collector.finish(self.calibration[source], sc.window, sc.smooth, sc.policy.min_snippets, self.log)
        except VadInputError as exc:  # e.g. a saturated model: say what to do, keep the configured thresholds
            self.log(f"warning: [{source}] not calibrated: {exc}; alerting with --start {sc.policy.start:g} "
                     f"--stop {sc.policy.stop:g}")
            return
        st.alerter.policy = st.calibration.policy
        self.log(f"[{source}] {st.calibration.summary()} (saved in {self.calibration[source].directory})")

    def _nonfinite(self, snippet, st: SourceState) -> None:
        """A NaN/inf score never feeds the smoother or the alerts; it is counted and logged (rate-limited)."""
        st.nonfinite += 1
        self.stats.count("nonfinite_scores", source=snippet.source)
        if st.nonfinite == 1 or st.nonfinite % 100 == 0:
            self.log(f"warning: [{snippet.source}] non-finite score at {snippet.t_start:.1f} s "
                     f"({st.nonfinite} so far; check the model and backbone files)")

    def _write(self, kind: str, alert: Alert) -> None:
        record = alert.to_record(kind, **self.event_extra[alert.source])
        for sink in self.sinks:  # JSONL first: written (fsynced) before any network sink sees the event
            if sink.accepts(alert.source):
                sink.emit(record)

    def _report_end(self, alert: Alert, st: SourceState) -> None:
        if st.clips is not None:
            # Closed by the score: the clip goes on for the post-roll; a lost/ended source closes it now.
            post_from = alert.end if alert.closed_by == "score" else None
            alert.clip = self._clip_step(alert.source, st, lambda: st.clips.finish(post_from))
            alert.snapshot = self._snapshot(alert, st)
        self._write("end", alert)
        self.stats.alert_open.labels(alert.source).set(0)
        for sink in self.sinks:
            if sink.accepts(alert.source):
                sink.state(alert.source, alert.score, False)
        self.alerts.append(alert)
        self.log(f"ALERT [{alert.source}] {alert.start:.1f}-{alert.end:.1f} s peak {alert.peak:.2f} ({alert.closed_by})")

    def _close(self, source: str, reason: str) -> None:
        st = self.state[source]
        closed = st.alerter.close(reason)
        if closed is not None:
            self._report_end(closed, st)

    # ---------------------------------------------------------------- clips
    def _snapshot(self, alert: Alert, st: SourceState) -> str | None:
        """JPEG of the alert's peak snippet with the score drawn; a failure is a warning."""
        peak, st.peak = st.peak, None
        if peak is None or peak[0] != alert.id:
            return None
        try:
            return write_snapshot(self.cfg.clips, alert.source, alert.id, peak[2], peak[1], peak[3])
        except Exception as exc:
            self.log(f"warning: [{alert.source}] snapshot not saved ({type(exc).__name__}: {exc})")
            self.stats.count("clip_failures", source=alert.source)
            return None

    def _retention(self, st: SourceState) -> None:
        """After a clip is complete: apply the age/size limit to the clip folder."""
        if not st.clips.finished:
            return
        st.clips.finished.clear()
        if self.cfg.clip_keep_hours or self.cfg.clip_max_mb:
            try:
                for p in prune(self.cfg.clips, self.cfg.clip_keep_hours * 3600, int(self.cfg.clip_max_mb * 2**20)):
                    self.log(f"retention: deleted {p.name}")
            except OSError as exc:
                self.log(f"warning: clip retention failed ({exc})")

    def _flush_clip(self, source: str, st: SourceState) -> None:
        """A clip still in its post-roll is closed now (the source ended or was lost, or shutdown)."""
        if st.clips is not None and st.clips.recording is not None:
            self._clip_step(source, st, st.clips.finish)
            st.clips.finished.append("flushed")
            self._retention(st)

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
            self._flush_clip(item.source, self.state[item.source])
            # The window would mix snippets from both sides of the gap: start afresh (the trace goes on).
            fresh = self._fresh_state(item.source)
            fresh.trace = self.state[item.source].trace
            self.state[item.source] = fresh
            return
        live.discard(item.source)
        self.live.discard(item.source)
        self.ended[item.source] = item.reason
        self.log(f"[{item.source}] {item.reason}")
        st = self.state[item.source]
        if st.collector is not None and st.collector.scores:  # the footage ended before --calibrate was reached
            self.log(f"warning: [{item.source}] footage ended before {st.collector.seconds:g} s: calibrating on the "
                     f"{len(st.collector.scores)} snippets collected")
            self._finish_calibration(item.source, st)
        self._close(item.source, "shutdown" if self.stop.is_set() else "end of stream")
        self._flush_clip(item.source, self.state[item.source])

    def run(self) -> list[Alert]:
        for t in self.threads:
            t.start()
        live = {s.name for s in self.sources}
        started = time.monotonic()
        next_stats = started + self.cfg.stats_every
        try:
            while live and not self.stop.is_set():
                wait = self.cfg.max_wait_ms / 1e3
                if self.cfg.duration:  # a batch still filling never holds the run past --duration
                    wait = max(min(wait, started + self.cfg.duration - time.monotonic()), 0.0)
                batch, marker = gather(self.queue, self.cfg.max_batch, wait, timeout=0.2, stop=self.stop)
                if batch:
                    self.process_batch(batch)
                if marker is not None:  # after the batch: it holds only this source's earlier snippets
                    self._handle_marker(marker, live)
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
            self._flush_clip(name, self.state[name])
        for t in self.threads:
            t.join(timeout=5)
        for sink in self.sinks:  # network sinks get a few seconds to deliver what is queued
            sink.close()

    def traces(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(st.trace or [], dtype=np.float64).reshape(-1, 5) for name, st in self.state.items()}


def write_traces(path: str | Path, traces: dict[str, np.ndarray]) -> None:
    """Per source [n, 5]: t_start, t_end, raw score, smoothed score, expert (-1: none)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{safe_filename(k): v for k, v in traces.items()})
