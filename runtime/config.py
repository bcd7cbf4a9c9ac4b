"""``vad-runtime --config cameras.yaml``: one file with global defaults, a block per camera and the event sinks.

Validated with pydantic on load: an unknown key, a wrong type or an out-of-range value is one line naming the key
path (``cameras.lobby.start: must be in [0, 1]``). ``{VAR}`` in any string is replaced by the environment variable
``VAR`` (``rtsp://admin:{VAD_RTSP_PASSWORD}@cam/1``), so no password sits in the file or on the command line;
``--print-config`` shows the effective config with every substituted value and URL credential redacted.
The example ``examples/cameras.yaml`` is loaded by a test.

Per camera, ``model``/``backbone``/``backend``, the scoring keys and the ``calibration`` block override ``defaults``
key by key (a key left out or null takes the default); ``CameraConfig.resolved`` and ``CameraConfig.calibration_for``
are the one place they are resolved. A camera's calibration (issue 12) then replaces its start/stop at run time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from vadedge.errors import VadInputError

from .scoring import AlertPolicy

ENV_REF = re.compile(r"\{([A-Z_][A-Z0-9_]*)\}")


def _not_bool(v):
    # pydantic's lax mode reads YAML's true/yes as 1 for numbers: a typo, never a window of 1
    if isinstance(v, bool):
        raise ValueError(f"must be a number (got {v!r})")
    return v


def _source(v):
    """A camera index (>= 0: OpenCV crashes on some negative ones), or a non-empty file path or URL."""
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    if isinstance(v, str) and v.strip():
        return v
    from .sources import redact

    shown = redact(v) if isinstance(v, str) else v
    raise ValueError(f"must be a camera index >= 0, a video file path or a stream URL (got {shown!r})")


def _http_url(v: str) -> str:
    from urllib.parse import urlsplit

    from .sources import redact

    if urlsplit(v).scheme not in ("http", "https") or not urlsplit(v).netloc:
        raise ValueError(f"must be an http:// or https:// URL (got {redact(v)!r})")
    return v


def _topic_prefix(v: str) -> str:
    if any(c in v for c in "+#\0"):
        raise ValueError(f"must not contain the MQTT wildcards + or # (got {v!r})")
    return v


def _unit(v: float) -> float:
    if not 0.0 <= v <= 1.0:
        raise ValueError("must be in [0, 1]")
    return v


def _positive(v):
    if v <= 0:
        raise ValueError("must be > 0")
    return v


def _port(v: int) -> int:
    if not 0 <= v <= 65535:
        raise ValueError("must be in 0..65535")
    return v


def _view(v: str) -> str:
    from .preprocess import InputView

    try:
        return str(InputView.parse(v, "input"))
    except VadInputError as exc:
        raise ValueError(str(exc).removeprefix("input ")) from None


def _backend(v: str) -> str:
    from .backends import BACKENDS

    if v not in BACKENDS:
        raise ValueError(f"must be one of {', '.join(BACKENDS)} (got {v!r})")
    return v


NoBool = BeforeValidator(_not_bool)
Unit = Annotated[float, NoBool, AfterValidator(_unit)]
Backend = Annotated[str, AfterValidator(_backend)]
View = Annotated[str, AfterValidator(_view)]
PosInt = Annotated[int, NoBool, AfterValidator(_positive)]
PosFloat = Annotated[float, NoBool, AfterValidator(_positive)]
NonNegInt = Annotated[int, NoBool, Field(ge=0)]
NonNegFloat = Annotated[float, NoBool, Field(ge=0)]
Port = Annotated[int, NoBool, AfterValidator(_port)]
Source = Annotated[int | str, BeforeValidator(_source)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
TopicPrefix = Annotated[str, AfterValidator(_topic_prefix)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)  # NaN passes every v <= 0 test


class Scoring(_Strict):
    """What a camera block may override (every field None = take ``defaults``)."""

    model: str | None = Field(None, description="this camera's model file (.plan, .onnx or .safetensors)")
    backbone: str | None = Field(None, description="this camera's backbone ONNX (its feature dim must match the model)")
    backend: Backend | None = Field(None, description="auto, tensorrt, ort-cuda, ort-cpu, openvino or torch")
    window: PosInt | None = Field(None, description="snippets in the sliding window")
    smooth: PosInt | None = Field(None, description="moving average over this many scores")
    start: Unit | None = Field(None, description="alert start threshold")
    stop: Unit | None = Field(None, description="alert stop threshold (hysteresis, <= start)")
    min_duration: PosInt | None = Field(None, description="minimum alert length in snippets")
    update_every: PosFloat | None = Field(None, description="stream seconds between update events (on a new peak)")
    input: View | None = Field(None, description="what the model sees: center, full or roi:x,y,w,h (fractions)")


CalibrationMode = Literal["model", "normality", "fused"]  # calibrating.MODES


class CalibrationConfig(_Strict):
    """``calibration:`` (README "Per-camera calibration"); the flags --calibration, --calibrate,
    --false-alarms-per-hour, --calibration-mode and --no-motion override it."""

    directory: str | None = Field(None, description="each camera's calibration is loaded from / saved to this folder")
    calibrate: NonNegFloat = Field(0.0, description="> 0: calibrate on the first this many seconds (declared normal)")
    false_alarms_per_hour: PosFloat = Field(1.0, description="calibrate: target alerts per hour on normal footage")
    mode: CalibrationMode = Field("model", description="model score, scene normality (k-NN novelty) or fused")
    motion: bool = Field(True, description="normality/fused: keep the motion memory beside the appearance memory")


class CameraCalibration(_Strict):
    """A camera's ``calibration:`` block: each key None = take ``defaults.calibration``."""

    directory: str | None = None
    calibrate: NonNegFloat | None = None
    false_alarms_per_hour: PosFloat | None = None
    mode: CalibrationMode | None = None
    motion: bool | None = None


class Defaults(_Strict):
    """Global defaults (``defaults:``); the CLI flags of the same names override them."""

    model: str = "runs/demo/model.onnx"
    backbone: str = "runs/demo/backbone.onnx"
    backend: Backend = "auto"
    threads: NonNegInt = 0
    window: PosInt = 32
    smooth: PosInt = 3
    start: Unit = 0.6
    stop: Unit = 0.4
    min_duration: PosInt = 2
    update_every: PosFloat = 5.0
    input: View = "center"
    stall_timeout: PosFloat = 10.0
    queue: PosInt = 8
    clips: str | None = None
    clip_pre_roll: NonNegFloat = 3.0
    clip_post_roll: NonNegFloat = 2.0
    clip_keep_hours: NonNegFloat = 0.0
    clip_max_mb: NonNegFloat = 0.0
    realtime: bool = False
    max_batch: PosInt = 1  # snippets scored together across cameras (runtime/batching.py); 1: one at a time
    # wait at most this long for a batch to fill (0: take only what is ready); bounded as RuntimeConfig.MAX_WAIT_MS
    max_wait_ms: Annotated[NonNegFloat, Field(le=10_000)] = 0.0
    calibration: CalibrationConfig = CalibrationConfig()


class JsonlConfig(_Strict):
    path: str = "events.jsonl"


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: Port = 1883
    prefix: TopicPrefix = "vadedge"
    username: str | None = None
    password: str | None = None
    client_id: str = ""
    reconnect_max_s: PosFloat = 30.0
    queue_size: PosInt = 256


class WebhookConfig(_Strict):
    url: HttpUrl
    headers: dict[str, str] = {}
    timeout_s: PosFloat = 5.0
    retries: NonNegInt = 3
    backoff_s: PosFloat = 0.5
    queue_size: PosInt = 256


class CameraSinks(_Strict):
    """A camera's own sinks, in addition to the global ones (they get only this camera's events)."""

    mqtt: MqttConfig | None = None
    webhook: list[WebhookConfig] = []


class CameraConfig(Scoring):
    source: Source = Field(description="camera index, video file path, or rtsp:// / http:// URL")
    realtime: bool | None = None
    calibration: CameraCalibration = CameraCalibration()
    sinks: CameraSinks = CameraSinks()

    @property
    def kind(self) -> str:
        if isinstance(self.source, int):
            return "camera"
        return "stream" if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", self.source) else "file"

    def resolved(self, d: Defaults) -> dict:
        """This camera's scoring values, each from the block or else from ``defaults``."""
        return {k: (getattr(self, k) if getattr(self, k) is not None else getattr(d, k)) for k in Scoring.model_fields}

    def calibration_for(self, d: Defaults) -> CalibrationConfig:
        """This camera's calibration settings, each key from its block or else from ``defaults.calibration``."""
        own = {k: v for k, v in self.calibration.model_dump().items() if v is not None}
        return d.calibration.model_copy(update=own)

    def policy(self, d: Defaults) -> AlertPolicy:
        # Issue 12 (calibration) plugs in here: thresholds measured on this camera replace start/stop.
        r = self.resolved(d)
        return AlertPolicy(r["start"], r["stop"], r["min_duration"])


class SinksConfig(_Strict):
    jsonl: JsonlConfig | None = JsonlConfig()
    mqtt: MqttConfig | None = None
    webhook: list[WebhookConfig] = []


class MetricsConfig(_Strict):
    port: Port = 0
    host: str = "127.0.0.1"


class RuntimeFile(_Strict):
    version: Literal[1] = 1
    defaults: Defaults = Defaults()
    cameras: dict[str, CameraConfig] = {}
    sinks: SinksConfig = SinksConfig()
    metrics: MetricsConfig = MetricsConfig()

    def check(self, source: str = "config") -> "RuntimeFile":
        """Cross-field rules pydantic's per-field checks cannot see; one line naming the key path."""
        for path, values in [("defaults", self.defaults.model_dump())] + [
                (f"cameras.{n}", c.resolved(self.defaults)) for n, c in self.cameras.items()]:
            if values["stop"] > values["start"]:
                raise VadInputError(f"{source}: {path}.stop: must be <= start ({values['stop']} > {values['start']})")
        # A camera inheriting ``calibrate`` from defaults without any directory: the defaults' key is named.
        calibrations = [(f"cameras.{n}" if {"calibrate", "directory"} & c.calibration.model_fields_set else "defaults",
                         f"camera {n}'s", c.calibration_for(self.defaults)) for n, c in self.cameras.items()]
        for path, whose, cal in calibrations or [("defaults", "each camera's", self.defaults.calibration)]:
            if cal.calibrate and not cal.directory:
                raise VadInputError(f"{source}: {path}.calibration.calibrate: needs calibration.directory "
                                    f"(where {whose} calibration is saved)")
        from .sources import safe_filename

        taken: dict[str, str] = {}  # a camera's file/topic name (case-insensitive filesystems) -> its config key
        for name in self.cameras:
            if not name or ENV_REF.search(name):
                raise VadInputError(f"{source}: cameras.{name!r}: not a usable camera name")
            safe = safe_filename(name)
            if (other := taken.setdefault(safe.lower(), name)) != name:  # one calibration file, one MQTT topic
                raise VadInputError(f"{source}: cameras.{name}: its files and MQTT topics would be those of cameras."
                                    f"{other} ({safe}); rename one")
        return self


# ---------------------------------------------------------------- loading
def substitute_env(node, path: str, secrets: set):
    """``{VAR}`` -> os.environ[VAR] in every string; the values used are collected (redacted when printed)."""
    if isinstance(node, dict):
        return {k: substitute_env(v, f"{path}.{k}" if path else str(k), secrets) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_env(v, f"{path}.{i}", secrets) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def repl(m):
        if m.group(1) not in os.environ:
            raise VadInputError(f"{path}: environment variable {m.group(1)} is not set")
        secrets.add(os.environ[m.group(1)])
        return os.environ[m.group(1)]

    return ENV_REF.sub(repl, node)


def _message(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return f"{loc}: unknown key"
    if kind == "missing":
        return f"{loc}: required key missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind.endswith(("_type", "_parsing", "_from_float")) or kind == "finite_number":
        msg = f"{msg[0].lower()}{msg[1:]} (got {err['input']!r})"
    elif kind in ("greater_than_equal", "less_than_equal", "literal_error"):
        msg = msg.replace("Input should be", "must be")
    return f"{loc}: {msg}"


def parse_config(data, source: str = "config") -> tuple[RuntimeFile, set]:
    """A loaded YAML document -> (validated config, substituted secret values)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise VadInputError(f"{source}: expected a mapping with defaults/cameras/sinks/metrics, got {type(data).__name__}")
    secrets: set = set()
    try:
        data = substitute_env(data, "", secrets)
    except VadInputError as exc:
        raise VadInputError(f"{source}: {exc}") from None
    try:
        cfg = RuntimeFile.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise VadInputError(f"{source}: {_message(errors[0])}{extra}") from None
    return cfg.check(source), secrets


def from_flag(cls: type[BaseModel], flag: str, **values) -> BaseModel:
    """A config section built from a command-line flag, validated like the file: one line naming the flag."""
    try:
        return cls(**values)
    except ValidationError as exc:
        raise VadInputError(f"{flag}: {_message(exc.errors()[0])}") from None


def load_config(path: str | os.PathLike) -> tuple[RuntimeFile, set]:
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VadInputError(f"--config {p}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VadInputError(f"--config {p}: cannot read ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise VadInputError(f"--config {p}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse_config(data, str(p))


def redacted(cfg: RuntimeFile, secrets: set) -> dict:
    """The effective config as plain data with substituted values and URL credentials replaced by ``***``."""
    from .sources import redact

    def clean(node):
        if isinstance(node, dict):  # a password or a header value (tokens) is never shown, substituted or literal
            return {k: ("***" if k == "password" and v else {h: "***" for h in v} if k == "headers" and v
                        else clean(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [clean(v) for v in node]
        if isinstance(node, str):
            node = redact(node) if "://" in node else node
            for s in sorted(secrets, key=len, reverse=True):
                if s:
                    node = node.replace(s, "***")
        return node

    data = cfg.model_dump(mode="json")
    d = cfg.defaults
    data["cameras"] = {n: {"source": c.source, "kind": c.kind,
                           "realtime": d.realtime if c.realtime is None else c.realtime, **c.resolved(d),
                           "calibration": c.calibration_for(d).model_dump(mode="json"),
                           "sinks": c.sinks.model_dump(mode="json")}
                       for n, c in cfg.cameras.items()}  # what each camera really runs with
    return clean(data)
