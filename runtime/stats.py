"""Runtime counters and per-stage latencies, a periodic stats line and a Prometheus text endpoint."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from vadedge.errors import VadInputError

STAGES = ("decode", "preprocess", "backbone", "head", "total")


def escape_label(value: str) -> str:
    """Prometheus text-format label value escaping (backslash, double quote, newline)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Stats:
    def __init__(self, window: int = 2000):
        self.lock = threading.Lock()
        self.counters: dict[tuple[str, str], int] = defaultdict(int)
        self.latency: dict[str, deque] = {s: deque(maxlen=window) for s in STAGES}
        self.started = time.time()

    def count(self, name: str, value: int = 1, source: str = "") -> None:
        with self.lock:
            self.counters[(name, source)] += value

    def observe(self, stage: str, seconds: float) -> None:
        with self.lock:
            self.latency[stage].append(seconds)

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
        for stage in STAGES:
            p = self.percentiles(stage)
            if p:
                parts.append(f"{stage} p50/p99 {1e3 * p[0]:.1f}/{1e3 * p[1]:.1f} ms")
        return " | ".join(parts)

    def prometheus(self) -> str:
        up = max(time.time() - self.started, 1e-9)
        lines = ["# TYPE vad_uptime_seconds gauge", f"vad_uptime_seconds {up:.3f}"]
        with self.lock:
            counters = dict(self.counters)
        for name in sorted({n for n, _ in counters}):
            lines.append(f"# TYPE vad_{name}_total counter")
            for (n, source), v in sorted(counters.items()):
                if n == name:
                    label = f'{{source="{escape_label(source)}"}}' if source else ""
                    lines.append(f"vad_{name}_total{label} {v}")
        lines += ["# TYPE vad_frames_per_second gauge", f"vad_frames_per_second {self.total('frames') / up:.3f}",
                  "# TYPE vad_snippets_per_second gauge", f"vad_snippets_per_second {self.total('snippets_scored') / up:.3f}",
                  "# TYPE vad_stage_latency_seconds summary"]
        for stage in STAGES:
            p = self.percentiles(stage)
            if p:
                lines.append(f'vad_stage_latency_seconds{{stage="{stage}",quantile="0.5"}} {p[0]:.6f}')
                lines.append(f'vad_stage_latency_seconds{{stage="{stage}",quantile="0.99"}} {p[1]:.6f}')
        return "\n".join(lines) + "\n"


def serve_metrics(stats: Stats, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """GET /metrics in Prometheus text format, from a daemon thread; returns the server (call shutdown()).

    Binds loopback by default (``--metrics-host 0.0.0.0`` exposes it); a bad or busy port is a one-line error."""
    if not 0 <= port <= 65535:
        raise VadInputError(f"--metrics-port {port}: must be in 0..65535")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            if self.path.rstrip("/") not in ("/metrics", ""):
                self.send_error(404)
                return
            body = stats.prometheus().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise VadInputError(f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
