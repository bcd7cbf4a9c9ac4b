"""MQTT sink (paho-mqtt): events, per-camera retained score/state and availability, Frigate-style topics.

Topics under ``prefix`` (default ``vadedge``):

- ``<prefix>/events``: every ``vadedge.event/1`` record (JSON, QoS 1, not retained);
- ``<prefix>/<camera>/score``: latest smoothed score, e.g. ``0.4312`` (retained, QoS 0, after every snippet);
- ``<prefix>/<camera>/state``: ``ON`` while an alert is open, else ``OFF`` (retained, QoS 1, on change);
- ``<prefix>/available``: ``online`` / ``offline`` (retained; ``offline`` is also the last will, so a crashed or
  unplugged box shows offline in Home Assistant).

``<camera>`` is the camera name made topic-safe (``/``, ``+``, ``#`` and other odd characters become ``_``).
paho reconnects by itself (1 s doubling to ``reconnect_max_s``); QoS-1 events published while the broker is away
stay in paho's bounded queue and go out after the reconnect, in order.
"""

from __future__ import annotations

import json
import threading

from ..sources import safe_filename
from . import QueuedSink, register_sink


@register_sink("mqtt")
class MqttSink(QueuedSink):
    def __init__(self, host: str = "127.0.0.1", port: int = 1883, prefix: str = "vadedge", username: str | None = None,
                 password: str | None = None, client_id: str = "", keepalive: int = 30, reconnect_max_s: float = 30.0,
                 max_queued: int = 1000, name: str | None = None, stats=None, queue_size: int = 256, log=print):
        import paho.mqtt.client as mqtt

        # First: paho's thread may call _on_connect (name, stats) before this constructor returns.
        super().__init__(name, stats, queue_size)
        self.prefix = prefix.rstrip("/")
        self.address, self.log, self._refused = f"{host}:{port}", log, None
        self.connected = threading.Event()
        self._states: dict[str, bool] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if username:
            self.client.username_pw_set(username, password)
        self.client.will_set(self.topic("available"), "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(1, max(1, int(reconnect_max_s)))
        self.client.max_queued_messages_set(max_queued)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self._was_connected = False
        self.client.connect_async(host, port, keepalive)
        self.client.loop_start()

    def topic(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts])

    def camera_topic(self, source: str, leaf: str) -> str:
        return self.topic(safe_filename(source), leaf)

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:  # e.g. bad credentials: paho keeps retrying; said once, every refusal counted
            self._count("sink_failures")
            if self._refused != str(reason_code):
                self._refused = str(reason_code)
                self.log(f"warning: MQTT sink {self.name}: {self.address} refused the connection ({reason_code}); "
                         "events wait in paho's queue until it accepts")
            return
        self._refused = None
        if self._was_connected:  # a reconnect (broker restart, network): counted; retained state is re-published
            self._count("sink_reconnects")
        self._was_connected = True
        client.publish(self.topic("available"), "online", qos=1, retain=True)
        for source, is_open in list(self._states.items()):
            client.publish(self.camera_topic(source, "state"), "ON" if is_open else "OFF", qos=1, retain=True)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        self.connected.clear()

    def deliver(self, record: dict) -> None:
        info = self.client.publish(self.topic("events"), json.dumps(record, sort_keys=True), qos=1)
        if info.rc not in (0, 4):  # 4 = MQTT_ERR_NO_CONN: queued by paho, sent after the reconnect
            raise OSError(f"MQTT publish failed (rc {info.rc})")

    def deliver_state(self, source: str, score: float, alert_open: bool) -> None:
        self.client.publish(self.camera_topic(source, "score"), f"{score:.4f}", qos=0, retain=True)
        if self._states.get(source) != alert_open:
            self._states[source] = alert_open
            self.client.publish(self.camera_topic(source, "state"), "ON" if alert_open else "OFF", qos=1, retain=True)

    def close(self) -> None:
        super().close()
        try:
            if self.connected.is_set():
                self.client.publish(self.topic("available"), "offline", qos=1, retain=True).wait_for_publish(2.0)
        except (RuntimeError, ValueError):
            pass
        self.client.disconnect()
        self.client.loop_stop()
