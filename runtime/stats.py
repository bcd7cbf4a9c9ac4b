"""Runtime metrics on ``prometheus_client`` (own registry), a periodic stats line and the HTTP endpoints.

``Stats.count/observe/total/line`` are what the capture threads, the scorer and the sinks call; each call
updates a Prometheus metric in ``Stats.registry``. Every counter is exported from the start at 0 for every
source (and every sink), so a dashboard's ``rate()`` works before the first event. Latencies are histograms in
seconds (``_bucket/_sum/_count``); the stats line's p50/p99 come from a bounded window of recent values.

Endpoints (``serve_metrics``): ``/metrics`` (Prometheus text), ``/healthz`` (process up), ``/readyz`` (200 when
the models are loaded and every source delivered a frame recently, else 503 with the reason).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from vadedge import __version__
from vadedge.errors import VadInputError

# Per snippet: decode (CPU seconds of its capture thread: decoding its frames, resizing them for the backbone), wait
# (queued and batched: ready -> its batch starts), the calls it waited for (preprocess, backbone, head: a batched
# call counts whole for each of its snippets), sinks, total (decode + its batch's preprocess..head) and latency (ready -> scored: what real time must keep under a period).
STAGES = ("decode", "wait", "preprocess", "backbone", "head", "sinks", "total", "latency")
BATCH_STAGES = ("backbone", "head")  # calls whose batch sizes are exported (vad_batch_size{stage})

# name -> help; exported as vad_<name>_total{source=...} (per camera) or {sink=...} (per sink)
SOURCE_COUNTERS = {
    "frames": "Decoded frames",
    "snippets_captured": "Snippets assembled by the capture thread",
    "snippets_scored": "Snippets scored by the model",
    "snippets_dropped": "Whole snippets dropped by a live source because the scorer was behind",
    "corrupt_frames": "Frames refused as corrupt (empty or wrong shape)",
    "reconnects": "Reconnects of a live source",
    "stalls": "Live source stalls (no frame for --stall-timeout seconds)",
    "geometry_changes": "Changes of frame size (a fresh snippet starts at the new size)",
    "sources_lost": "Times a live source was lost (its open alert was closed)",
    "nonfinite_scores": "Non-finite (NaN/inf) model scores, never alerted on",
    "alerts": "Confirmed alerts (start events)",
    "clip_failures": "Clips that could not be saved (the event was still written)",
}
SINK_COUNTERS = {
    "sink_events": "Events delivered by a sink",
    "sink_drops": "Events a sink dropped because its queue was full (slow or dead sink)",
    "sink_failures": "Failed deliveries by a sink (after its retries)",
    "sink_reconnects": "Reconnects of a sink to its server (MQTT broker)",
}
# Seconds: 1 ms .. 10 s (a backbone on a small CPU is ~50-100 ms; a stalled sink shows in the top buckets).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def escape_label(value: str) -> str:
    """Prometheus text-format label value escaping (backslash, double quote, newline)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Stats:
    """Counters, latency histograms and per-camera gauges of one runtime (thread-safe)."""

    def __init__(self, window: int = 2000, sources: list[str] = (), sinks: list[str] = ()):
        self.lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        self.counters: dict[tuple[str, str], int] = defaultdict(int)  # (name, label) -> value, for total() and line()
        self.latency: dict[str, deque] = {s: deque(maxlen=window) for s in STAGES}
        self.busy_s: dict[str, float] = defaultdict(float)  # stage -> seconds in its calls (a batched call once)
        self.batches: dict[str, deque] = {s: deque(maxlen=window) for s in BATCH_STAGES}
        self.started = time.time()
        self.last_frame: dict[str, float] = {}  # source -> monotonic time of its last decoded frame (for /readyz)
        self.ready_check = None  # () -> (ok, reason); set by the runtime once its models are loaded
        self._counters = {name: Counter(f"vad_{name}", doc, ["source"], registry=self.registry)
                          for name, doc in SOURCE_COUNTERS.items()}
        self._counters.update({name: Counter(f"vad_{name}", doc, ["sink"], registry=self.registry)
                               for name, doc in SINK_COUNTERS.items()})
        self._latency = Histogram("vad_stage_latency_seconds", "Per-snippet latency of each pipeline stage", ["stage"],
                                  buckets=BUCKETS, registry=self.registry)
        for stage in STAGES:
            self._latency.labels(stage)
        # A batched call is one call: its seconds once (cost per snippet = busy / snippets), its size in a histogram.
        self._busy = Counter("vad_stage_busy_seconds", "Seconds spent in each stage's calls (a batched call counted once)",
                             ["stage"], registry=self.registry)
        self._batch = Histogram("vad_batch_size", "Snippets (backbone) or windows (head) per model call", ["stage"],
                                buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)
        for stage in BATCH_STAGES:
            self._busy.labels(stage)
            self._batch.labels(stage)
        for stage in ("decode", "preprocess"):
            self._busy.labels(stage)
        self.score = Gauge("vad_score", "Latest smoothed anomaly score per camera", ["source"], registry=self.registry)
        self.alert_open = Gauge("vad_alert_open", "1 while a confirmed alert is open on the camera", ["source"],
                                registry=self.registry)
        # Per camera: cameras may run different model files (config file ``cameras.<name>.model``).
        self.info = Info("vad_build", "Package version and each camera's model, backend and model file hash",
                         ["camera"], registry=self.registry)
        Gauge("vad_uptime_seconds", "Seconds since the runtime started", registry=self.registry).set_function(
            lambda: time.time() - self.started)
        for s in sources:
            self.add_source(s)
        for s in sinks:
            self.add_sink(s)

    def add_source(self, source: str) -> None:
        """Export every per-camera counter and gauge of ``source`` at 0 from now on."""
        for name in SOURCE_COUNTERS:
            self._counters[name].labels(source)
        self.score.labels(source)
        self.alert_open.labels(source)

    def add_sink(self, sink: str) -> None:
        for name in SINK_COUNTERS:
            self._counters[name].labels(sink)

    def set_info(self, camera: str, **labels: str) -> None:
        """``vad_build_info{camera=...}``: the version and what scores this camera (model, backend, model_sha256)."""
        self.info.labels(camera).info({"version": __version__, **{k: str(v) for k, v in labels.items()}})

    def count(self, name: str, value: int = 1, source: str = "") -> None:
        """Add ``value`` to counter ``name`` for a camera (or, for sink_* counters, a sink)."""
        metric = self._counters.get(name)
        if metric is None:
            with self.lock:
                metric = self._counters.get(name)
                if metric is None:  # a counter not listed above still gets exported (with a generic help)
                    metric = self._counters[name] = Counter(f"vad_{name}", f"vad-runtime counter {name}", ["source"],
                                                            registry=self.registry)
        metric.labels(source).inc(value)
        with self.lock:
            self.counters[(name, source)] += value
            if name == "frames":
                self.last_frame[source] = time.monotonic()

    def observe(self, stage: str, seconds: float) -> None:
        self._latency.labels(stage).observe(seconds)
        with self.lock:
            self.latency[stage].append(seconds)

    def busy(self, stage: str, seconds: float) -> None:
        """Seconds one call of ``stage`` took (``vad_stage_busy_seconds_total``), counted once however many
        snippets it served."""
        self._busy.labels(stage).inc(seconds)
        with self.lock:
            self.busy_s[stage] += seconds

    def batch(self, stage: str, size: int) -> None:
        """The batch size of one ``stage`` call (``vad_batch_size``)."""
        self._batch.labels(stage).observe(size)
        with self.lock:
            self.batches[stage].append(size)

    def batch_sizes(self, stage: str) -> tuple[int, float]:
        """(calls, mean batch size) of ``stage`` so far (the recent window)."""
        with self.lock:
            sizes = list(self.batches[stage])
        return len(sizes), float(np.mean(sizes)) if sizes else 0.0

    def total(self, name: str) -> int:
        with self.lock:
            return sum(v for (n, _), v in self.counters.items() if n == name)

    def percentiles(self, stage: str) -> tuple[float, float] | None:
        with self.lock:
            data = np.asarray(self.latency[stage])
        if data.size == 0:
            return None
        return float(np.percentile(data, 50)), float(np.percentile(data, 99))

    def line(self) -> str:
        up = max(time.time() - self.started, 1e-9)
        parts = [f"up {up:.0f}s", f"fps {self.total('frames') / up:.1f}", f"snippets/s {self.total('snippets_scored') / up:.2f}",
                 f"drops {self.total('snippets_dropped')}", f"corrupt {self.total('corrupt_frames')}",
                 f"reconnects {self.total('reconnects')}", f"stalls {self.total('stalls')}",
                 f"non-finite {self.total('nonfinite_scores')}"]
        if self.total("sink_drops") or self.total("sink_failures"):
            parts.append(f"sink drops/failures {self.total('sink_drops')}/{self.total('sink_failures')}")
        for stage in BATCH_STAGES:
            calls, mean = self.batch_sizes(stage)
            if calls and mean > 1:
                parts.append(f"{stage} batch {mean:.1f}")
        for stage in STAGES:
            p = self.percentiles(stage)
            if p:
                parts.append(f"{stage} p50/p99 {1e3 * p[0]:.1f}/{1e3 * p[1]:.1f} ms")
        return " | ".join(parts)

    def prometheus(self) -> str:
        """The registry in Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry).decode()

    def ready(self) -> tuple[bool, str]:
        if self.ready_check is None:
            return False, "models not loaded"
        return self.ready_check()


def serve_metrics(stats: Stats, port: int, host: str = "127.0.0.1", idle_timeout: float = 10.0) -> ThreadingHTTPServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` from a daemon thread; returns the server (call shutdown()).

    Binds loopback by default (``--metrics-host 0.0.0.0`` exposes it); a bad or busy port is a one-line error.
    A client that connects and sends nothing is dropped after ``idle_timeout`` seconds."""
    if not 0 <= port <= 65535:
        raise VadInputError(f"--metrics-port {port}: must be in 0..65535")

    class Handler(BaseHTTPRequestHandler):
        timeout = idle_timeout  # socket timeout: an idle connection does not hold a thread forever

        def do_GET(self):  # noqa: N802 (http.server API)
            path = self.path.split("?")[0].rstrip("/")
            if path in ("/metrics", ""):
                self._reply(200, stats.prometheus(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._reply(200, "ok\n")
            elif path == "/readyz":
                ok, reason = stats.ready()
                self._reply(200 if ok else 503, ("ready" if ok else f"not ready: {reason}") + "\n")
            else:
                self.send_error(404)

        def _reply(self, code: int, text: str, ctype: str = "text/plain; charset=utf-8") -> None:
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise VadInputError(f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
