"""Webhook sink: each event is POSTed as JSON to a URL, retried with exponential backoff.

A 2xx reply is success; a connection error, a timeout or a 5xx/429 reply is retried (``retries`` times, waiting
``backoff_s`` doubling up to ``backoff_max_s``); a 4xx reply is a permanent failure (no retry). Failures are
counted in ``vad_sink_failures_total{sink=...}``. Runs in the sink's own thread: a slow endpoint never delays
scoring (its queue is bounded; overflow is counted in ``vad_sink_drops_total``).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

from . import QueuedSink, register_sink


@register_sink("webhook")
class WebhookSink(QueuedSink):
    def __init__(self, url: str, headers: dict | None = None, timeout_s: float = 5.0, retries: int = 3,
                 backoff_s: float = 0.5, backoff_max_s: float = 30.0, name: str | None = None, stats=None,
                 queue_size: int = 256):
        self.url, self.headers, self.timeout_s = url, dict(headers or {}), timeout_s
        self.retries, self.backoff_s, self.backoff_max_s = retries, backoff_s, backoff_max_s
        self.attempts = 0  # POSTs made (tests and the stats line)
        self._closing = threading.Event()
        super().__init__(name, stats, queue_size, close_timeout=timeout_s + 1)

    def _post(self, body: bytes) -> None:
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **self.headers})
        self.attempts += 1
        with urllib.request.urlopen(req, timeout=self.timeout_s) as reply:
            reply.read()

    def deliver(self, record: dict) -> None:
        body = json.dumps(record, sort_keys=True).encode()
        wait = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                self._post(body)
                return
            except urllib.error.HTTPError as exc:
                if exc.code < 500 and exc.code != 429:
                    raise  # the endpoint refuses this request: retrying cannot help
                last = exc
            except (OSError, TimeoutError) as exc:  # URLError, refused, reset, timeout
                last = exc
            if attempt < self.retries and self._closing.wait(wait):
                break  # shutting down: stop waiting between retries
            wait = min(wait * 2, self.backoff_max_s)
        raise last

    def close(self) -> None:
        super().close()
        self._closing.set()
