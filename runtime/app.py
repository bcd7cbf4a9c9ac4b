"""``vad-runtime``: live anomaly scoring of camera / file / stream snippets with a sliding window.

    vad-runtime --camera 0                                       # model and backbone from the demo (runs/demo/)
    vad-runtime --model m.plan --backbone b.onnx --rtsp rtsp://user:pw@cam/stream --video lobby.mp4
    vad-runtime --demo                                           # the built-in synthetic demo end to end

This module is the wiring only: flags and/or ``--config cameras.yaml`` (config.py) become the effective config,
which becomes the pipeline's parts (pipeline.py: sources -> encoder -> scorer -> alerting -> sinks, clips,
metrics). SIGINT/SIGTERM stop it cleanly: open alerts are closed and flushed.
"""

from __future__ import annotations

import argparse
import functools
import signal
from pathlib import Path

from vadedge.cli import make_parser
from vadedge.errors import VadInputError, run_cli

from .backends import BACKENDS
from .calibrating import MODES as CALIBRATION_MODES
from .calibrating import CalibrationSettings
from .calibration import model_hash
from .config import (CameraConfig, JsonlConfig, MetricsConfig, MqttConfig, RuntimeFile, Scoring, WebhookConfig,
                     from_flag, load_config, redacted, substitute_env)
from .encoder import SnippetEncoder
from .events import EventLog, check_output_dir, check_output_file
from .pipeline import Runtime, RuntimeConfig, SourceState, write_traces  # noqa: F401 (the runtime's public API)
from .preprocess import InputView
from .scoring import AlertPolicy, CameraScoring
from .sinks.webhook import WebhookSink
from .sources import RetryPolicy, SourceSpec, check_file, check_live, redact, stream_name
from .stats import Stats, serve_metrics

DEFAULT_DIR = Path("runs/demo")
EXAMPLES = [
    "vad-runtime --demo                                     # SYNTHETIC demo end to end (needs the train extra)",
    "vad-runtime --video lobby.mp4 --start 0.7 --input full # one file, every snippet scored, the whole frame",
    "VAD_RTSP_PASSWORD=... vad-runtime --config examples/cameras.yaml --metrics-port 9108",
    "vad-runtime --config cameras.yaml --print-config       # effective config, secrets redacted",
    "vad-runtime --camera 0 --mqtt mqtt://127.0.0.1:1883/vadedge --webhook http://nvr.local/hooks/vad",
]


# ---------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = make_parser("vad-runtime", __doc__.splitlines()[0], EXAMPLES)
    c = p.add_argument_group("config file (flags given as well override it)")
    c.add_argument("--config", metavar="YAML", help="cameras, thresholds, sinks and metrics in one file (examples/cameras.yaml)")
    c.add_argument("--print-config", action="store_true", help="print the effective config (secrets redacted) and exit")
    src = p.add_argument_group("sources (any number, mixed)")
    src.add_argument("--camera", type=int, action="append", default=[], metavar="N", help="camera index (cv2.VideoCapture(N))")
    src.add_argument("--video", action="append", default=[], metavar="PATH", help="video file: every snippet scored (lossless)")
    src.add_argument("--rtsp", action="append", default=[], metavar="URL", help="RTSP/HTTP stream; {VAR} in it is read from the environment, so a password stays out of `ps` (credentials are never logged)")
    src.add_argument("--realtime", action="store_true", help="pace video files at their own timestamps and drop like a camera")
    src.add_argument("--stall-timeout", type=float, default=10.0, help="seconds without a frame before a stream is reconnected")
    src.add_argument("--retry-forever", action="store_true", help="a camera/stream unavailable at start is retried instead of an error")
    src.add_argument("--retry-limit", type=int, default=0, help="give up on a lost live source after this many failed reconnects (0: never)")
    src.add_argument("--reconnect-max-s", type=float, default=30.0, help="longest wait between reconnect attempts")
    m = p.add_argument_group("model")
    m.add_argument("--model", default=str(DEFAULT_DIR / "model.onnx"), help="engine .plan, .onnx or checkpoint .safetensors (given: for every camera of --config too)")
    m.add_argument("--backbone", default=str(DEFAULT_DIR / "backbone.onnx"), help="backbone ONNX (vad-extract --export-backbone; given: for every camera of --config too)")
    m.add_argument("--backend", choices=BACKENDS, default="auto", help="auto: TensorRT, then onnxruntime CUDA, then CPU")
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
    s.add_argument("--input", default="center", help="what the model sees of each frame: center (square), full "
                   "(whole frame, letterboxed) or roi:x,y,w,h (fractions); use the same as vad-extract --input")
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
    o.add_argument("--mqtt", metavar="URL", help="MQTT sink, mqtt://[user[:{ENV_VAR}]@]host[:port][/prefix] (prefix: vadedge)")
    o.add_argument("--webhook", action="append", default=[], metavar="URL", help="POST every event as JSON to this URL (retried)")
    o.add_argument("--clips", help="save a clip around each alert in this folder")
    o.add_argument("--clip-pre-roll", type=float, default=d.clip_pre_s, help="seconds before the alert in each clip")
    o.add_argument("--clip-post-roll", type=float, default=d.clip_post_s, help="seconds after the alert's end in each clip")
    o.add_argument("--clip-keep-hours", type=float, default=d.clip_keep_hours, help="delete clips and snapshots older than this (0: keep)")
    o.add_argument("--clip-max-mb", type=float, default=d.clip_max_mb, help="keep the clip folder under this size, oldest first (0: no limit)")
    o.add_argument("--scores-out", help="write per-source score traces (.npz)")
    o.add_argument("--display", action="store_true", help="overlay window (needs OpenCV with GUI)")
    o.add_argument("--stats-every", type=float, default=d.stats_every, help="seconds between stats lines (0: off)")
    o.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port (0: off)")
    o.add_argument("--metrics-host", default="127.0.0.1", help="metrics address (0.0.0.0 exposes it on every interface)")
    o.add_argument("--queue", type=int, default=d.queue_size, help="snippets buffered per source (live sources drop beyond it)")
    o.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: run until the sources end)")
    b = p.add_argument_group("batching across cameras (README \"Scaling out\")")
    b.add_argument("--max-batch", type=int, default=d.max_batch, help="score up to this many ready snippets of all "
                   "sources in one backbone call and their windows in one head call (1: one snippet at a time)")
    b.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms, help="wait at most this long for a batch to fill "
                   "(0: batch only the snippets already waiting; adds no latency)")
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
    urls = [substitute_env(u, "--rtsp", set()) for u in args.rtsp]  # {VAR}: the password stays out of `ps`
    specs += [SourceSpec(stream_name(u), u, "stream") for u in urls]
    if not specs:
        raise VadInputError("no source: give --camera N, --video PATH or --rtsp URL")
    for spec, name in zip(specs, _unique([s.name for s in specs])):
        spec.name = name
    return specs


# Flags that are also ``defaults`` keys of the config file (same names): given on the command line, they win.
FLAG_KEYS = ("model", "backbone", "backend", "threads", "window", "smooth", "start", "stop", "min_duration", "update_every",
             "stall_timeout", "queue", "clips", "clip_pre_roll", "clip_post_roll", "clip_keep_hours", "clip_max_mb", "realtime", "input",
             "max_batch", "max_wait_ms")

# Calibration flags -> keys of the config file's ``calibration:`` blocks (--no-motion sets motion: false).
CALIBRATION_FLAGS = {"calibration": "directory", "calibrate": "calibrate", "false_alarms_per_hour": "false_alarms_per_hour",
                     "calibration_mode": "mode"}


def effective_config(args) -> tuple[RuntimeFile, set]:
    """The config file (if any) with the flags given on the command line applied on top; flag sources become cameras.

    Flag values are not re-validated here: RuntimeConfig/AlertPolicy name the flag in their one-line errors."""
    fc, secrets = load_config(args.config) if args.config else (RuntimeFile(), set())
    defaults = build_parser().parse_args([])
    given = {k: getattr(args, k) for k in FLAG_KEYS if getattr(args, k) != getattr(defaults, k)}
    if "input" in given:  # a bad flag is named as the flag, not as the camera blocks it overrides
        InputView.parse(given["input"], "--input")
    cameras = dict(fc.cameras)
    if given:
        fc = fc.model_copy(update={"defaults": fc.defaults.model_copy(update=given)})
        scoring_keys = {k: None for k in given if k in Scoring.model_fields}  # flags win over camera blocks too
        cameras = {n: c.model_copy(update=scoring_keys) for n, c in cameras.items()}
    if args.camera or args.video or args.rtsp:
        for spec in sources_from_args(args):
            name = spec.name if spec.name not in cameras else f"{spec.name}#flag"
            cameras[name] = CameraConfig.model_construct(source=spec.target, realtime=None,
                                                         **{k: None for k in Scoring.model_fields})
    calibration = {key: getattr(args, flag) for flag, key in CALIBRATION_FLAGS.items()
                   if getattr(args, flag) != getattr(defaults, flag)}
    if args.no_motion:
        calibration["motion"] = False
    if calibration:  # like the scoring flags: over defaults.calibration and every camera's block
        d = fc.defaults
        fc = fc.model_copy(update={"defaults": d.model_copy(update={"calibration": d.calibration.model_copy(update=calibration)})})
        cameras = {n: c.model_copy(update={"calibration": c.calibration.model_copy(update=dict.fromkeys(calibration))})
                   for n, c in cameras.items()}
    sinks = fc.sinks
    if args.events != defaults.events or not args.config:
        sinks = sinks.model_copy(update={"jsonl": JsonlConfig(path=args.events) if args.events else None})
    if args.mqtt:
        sinks = sinks.model_copy(update={"mqtt": mqtt_from_url(args.mqtt)})
    if args.webhook:
        sinks = sinks.model_copy(update={"webhook": [*sinks.webhook, *(from_flag(WebhookConfig, "--webhook", url=u) for u in args.webhook)]})
    metrics = fc.metrics
    if args.metrics_port != defaults.metrics_port or args.metrics_host != defaults.metrics_host:
        metrics = MetricsConfig.model_construct(port=args.metrics_port, host=args.metrics_host)
    fc = fc.model_copy(update={"cameras": cameras, "sinks": sinks, "metrics": metrics})
    if args.config and given:  # a flag over one key of a block (--start under a block's stop) must still make sense
        fc.check(f"{args.config} with the flags given")
    return fc, secrets


def mqtt_from_url(url: str) -> MqttConfig:
    """``mqtt://[user[:password]@]host[:port][/prefix]``; ``{VAR}`` in it comes from the environment."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(substitute_env(url, "--mqtt", set()))
    if parts.scheme != "mqtt" or not parts.hostname:
        raise VadInputError(f"--mqtt {redact(url)}: expected mqtt://[user[:password]@]host[:port][/prefix]")
    try:
        port = parts.port or 1883
    except ValueError:
        raise VadInputError(f"--mqtt {redact(url)}: port must be in 0..65535") from None
    return from_flag(MqttConfig, "--mqtt", host=parts.hostname, port=port, prefix=parts.path.strip("/") or "vadedge",
                      username=unquote(parts.username) if parts.username else None,
                      password=unquote(parts.password) if parts.password else None)


def make_sinks(fc: RuntimeFile, log=print) -> list:
    """The network sinks of the config (the JSONL log is the runtime's own, always first): the global ones, then
    each camera's own (named ``<camera>.mqtt`` / ``<camera>.webhookN``, fed only that camera's events)."""
    sinks = _network_sinks(fc.sinks, "sinks", "", log)
    for name, cam in fc.cameras.items():
        for sink in _network_sinks(cam.sinks, f"cameras.{name}.sinks", f"{name}.", log):
            sink.sources = {name}
            sinks.append(sink)
    return sinks


def _network_sinks(cfg, where: str, prefix: str, log=print) -> list:
    sinks = []
    if cfg.mqtt is not None:
        m = cfg.mqtt
        try:
            from .sinks.mqtt import MqttSink
        except ImportError:
            raise VadInputError(f"{where}.mqtt: needs paho-mqtt (pip install 'vadedge[mqtt]')") from None
        sinks.append(MqttSink(m.host, m.port, m.prefix, m.username, m.password, m.client_id,
                              reconnect_max_s=m.reconnect_max_s, queue_size=m.queue_size, name=f"{prefix}mqtt", log=log))
    for i, w in enumerate(cfg.webhook):
        name = f"{prefix}webhook{i}" if len(cfg.webhook) > 1 else f"{prefix}webhook"
        sinks.append(WebhookSink(w.url, w.headers, w.timeout_s, w.retries, w.backoff_s, name=name, queue_size=w.queue_size))
    return sinks


def check_sources(specs: list[SourceSpec], snippet_frames: dict[str, int], stall_timeout: float, retry: RetryPolicy,
                  log) -> None:
    """Before any work: every file gives a snippet (of its own backbone's length); every camera/stream opens (or
    retrying was asked for)."""
    for spec in specs:
        if spec.kind == "file":
            check_file(spec.target, snippet_frames[spec.name])
    for spec in specs:
        if spec.kind == "file":
            continue
        reason = check_live(spec, stall_timeout)
        if reason is None:
            continue
        if not retry.retries_at_start:
            raise VadInputError(f"{reason}; pass --retry-forever (or --retry-limit N) to wait for it")
        log(f"warning: {reason}; retrying")


def build_models(fc: RuntimeFile, args, cfg: RuntimeConfig, stats: Stats, log) -> tuple[dict, dict, dict]:
    """Per camera: (runner, encoder, model file or None for Triton). Each distinct model file and backbone file is
    loaded once (keyed by resolved path, backend and threads): cameras with the same files share the objects."""
    from .backends import make_runner

    names, d = list(fc.cameras), fc.defaults
    if args.triton:  # one server for every camera: its repository holds one head and one backbone
        from .triton import triton_parts

        for name, cam in fc.cameras.items():
            if cam.model is not None or cam.backbone is not None:
                log(f"warning: --triton serves one model for every camera: cameras.{name}.model/backbone are not used")
        runner, encoder = triton_parts(args.triton, cfg.crop, stats)
        return dict.fromkeys(names, runner), dict.fromkeys(names, encoder), dict.fromkeys(names)
    model_flag = args.model != build_parser().get_default("model") or not args.config
    runners, encoders, files, built = {}, {}, {}, {}
    for name, cam in fc.cameras.items():
        r = cam.resolved(d)
        if not Path(r["model"]).is_file():
            where = "--model" if model_flag else (f"cameras.{name}.model" if cam.model is not None else "defaults.model")
            raise VadInputError(f"{where} {r['model']}: not found (run the demo first: vad-runtime --demo, or pass --model)")
        key = ("model", Path(r["model"]).resolve(), r["backend"], d.threads)
        if key not in built:
            built[key] = make_runner(r["model"], r["backend"], d.threads)
        runners[name] = built[key]
        device = "openvino" if runners[name].backend == "openvino" else "cpu"
        key = ("backbone", Path(r["backbone"]).resolve(), device, d.threads)
        if key not in built:
            built[key] = SnippetEncoder(r["backbone"], cfg.crop, d.threads, device=device)
        encoders[name], files[name] = built[key], r["model"]
    return runners, encoders, files


def calibration_settings(cam: CameraConfig, d, runner, model_file: str | None, triton: str | None,
                         file_hash) -> CalibrationSettings:
    """A camera's calibration settings (its block over ``defaults.calibration``, flags applied before), bound to
    the hashes of the model and backbone that score this camera (a calibration is valid for those files only)."""
    c = cam.calibration_for(d)
    settings = CalibrationSettings(c.directory, c.calibrate, c.false_alarms_per_hour, c.mode, c.motion)
    if not settings.active:
        return settings
    if triton:  # the hashes vad-export-triton stored for the served files
        return settings.for_hashes(runner.model_sha256, runner.backbone_sha256)
    return settings.for_hashes(file_hash(model_file), file_hash(cam.resolved(d)["backbone"]))


def log_camera_start(runtime: Runtime, name: str, model_file: str | None, log) -> None:
    """One camera's start lines: what scores it, and its calibration state."""
    runner, encoder, st = runtime.runner_for(name), runtime.encoder_for(name), runtime.state[name]
    calibration = runtime.calibration[name]
    log(f"[{name}] {runner.model_name} ({model_file or 'served'}) on {runner.backend}, backbone {encoder.path}, "
        f"window {runtime.scoring[name].window}")
    if st.calibration is not None:
        log(f"[{name}] {st.calibration.summary()}")
    elif st.collector is not None:
        log(f"[{name}] calibrating on the first {calibration.seconds:g} s (declared normal): no alerts until then")
    elif calibration.active:
        policy = runtime.scoring[name].policy
        log(f"[{name}] no calibration in {calibration.directory}: alerting with --start {policy.start:g} --stop {policy.stop:g}")
    if getattr(runner, "synthetic", False):
        log(f"warning: [{name}] {model_file or 'the served model'} is a SYNTHETIC demo model (trained on rendered "
            "scenes): its scores on real video are not meaningful; its events are marked synthetic_model=true")


def run_from_args(args, log=print) -> Runtime:
    fc, _ = effective_config(args)
    d = fc.defaults
    cfg = RuntimeConfig(d.window, d.smooth, AlertPolicy(d.start, d.stop, d.min_duration), d.queue, args.stats_every,
                        d.clips, d.clip_pre_roll, clip_post_s=d.clip_post_roll, clip_keep_hours=d.clip_keep_hours,
                        clip_max_mb=d.clip_max_mb, display=args.display, stall_timeout=d.stall_timeout,
                        update_every=d.update_every, keep_trace=bool(args.scores_out), duration=args.duration,
                        max_batch=d.max_batch, max_wait_ms=d.max_wait_ms)
    if args.retry_limit < 0:
        raise VadInputError(f"--retry-limit {args.retry_limit}: must be >= 0")
    retry = RetryPolicy(max_s=args.reconnect_max_s, limit=args.retry_limit, forever=args.retry_forever)
    specs = [SourceSpec(name, cam.source, cam.kind, realtime=bool(d.realtime if cam.realtime is None else cam.realtime),
                        view=InputView.parse(cam.resolved(d)["input"], f"cameras.{name}.input"))
             for name, cam in fc.cameras.items()]
    if not specs:
        raise VadInputError("no source: give --camera N, --video PATH or --rtsp URL, or cameras in --config")
    scoring = {name: CameraScoring(r["window"], r["smooth"], cam.policy(d), r["update_every"])
               for name, cam in fc.cameras.items() for r in [cam.resolved(d)]}
    events_path = fc.sinks.jsonl.path if fc.sinks.jsonl else None
    # Outputs and the metrics port are checked before the models load: a typo costs seconds, not minutes.
    if d.clips:
        check_output_dir(d.clips, "--clips")
    if args.scores_out:
        check_output_file(args.scores_out, "--scores-out")
    if events_path:
        check_output_file(events_path, "--events")
    stats = Stats(sources=[s.name for s in specs])  # every camera's counters at 0 from the first scrape
    # The port is taken before the models load (a busy port costs seconds); /healthz answers while they load and
    # /readyz says "models not loaded".
    server = serve_metrics(stats, fc.metrics.port, fc.metrics.host) if fc.metrics.port else None
    events, sinks = None, []
    try:
        runners, encoders, model_files = build_models(fc, args, cfg, stats, log)
        file_hash = functools.cache(model_hash)  # each file hashed once per run (an engine can be large)
        calibration = {name: calibration_settings(cam, d, runners[name], model_files[name], args.triton, file_hash)
                       for name, cam in fc.cameras.items()}
        check_sources(specs, {n: e.snippet_frames for n, e in encoders.items()}, cfg.stall_timeout, retry, log)
        events = EventLog(events_path, log)
        sinks = make_sinks(fc, log)
        runtime = Runtime(runners, encoders, specs, cfg, events, stats, log, retry, calibration=calibration, sinks=sinks,
                          model_file=model_files, scoring=scoring)
    except BaseException:
        if server is not None:
            server.shutdown()
        if events is not None:
            events.close()
        for sink in sinks:
            sink.close()
        raise
    batching = f", batches of up to {cfg.max_batch} snippets (wait <= {cfg.max_wait_ms:g} ms)" if cfg.max_batch > 1 else ""
    log(f"vad-runtime: sources {[s.name for s in specs]}{batching}")
    for name in runtime.state:
        log_camera_start(runtime, name, model_files[name], log)

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
    if args.print_config:
        import json

        fc, secrets = effective_config(args)
        print(json.dumps(redacted(fc, secrets), indent=2))
        return
    if args.demo:
        from .demo import run_demo

        run_demo(Path(args.out))
    else:
        import sys

        # With events on stdout (--events - or sinks.jsonl.path "-"), log lines go to stderr: stdout stays JSON Lines.
        jsonl = effective_config(args)[0].sinks.jsonl
        stream = sys.stderr if jsonl is not None and jsonl.path in ("-", "/dev/stdout") else sys.stdout
        run_from_args(args, log=lambda msg: print(msg, file=stream, flush=True))


def main(argv=None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
