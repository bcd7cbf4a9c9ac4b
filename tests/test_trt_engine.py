"""Engine building and running. The full TensorRT builder is not installable here and no GPU is lent to CI, so
the build/run tests skip with the probe's reason; the checks around them run everywhere."""

import json
import subprocess
import sys

import numpy as np
import pytest

from export_models import FEATURE_DIM, small_model
from vadedge.errors import VadInputError
from vadedge.export.backend import missing_builder, missing_gpu, missing_runtime
from vadedge.export.to_trt import EngineSpec, build_engine
from vadedge.runtime.backends import TrtRunner, make_runner
from vadedge.train.checkpoint import save_checkpoint

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_require_engine_without_builder_fails_in_one_line(tmp_path):
    if missing_builder() is None:
        pytest.skip("a TensorRT builder is installed here: the missing-builder path cannot be exercised")
    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(ckpt, small_model("urdmu"))
    proc = subprocess.run([sys.executable, str(REPO / "export" / "to_trt.py"), str(ckpt), "--require-engine"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: TensorRT builder not installed")
    assert not (tmp_path / "m.trt").exists()  # failed before writing anything


@pytest.mark.parametrize("fields,match", [(dict(min_t=8, opt_t=4), "min_t <= opt_t"), (dict(precision="int8"), "precision"),
                                          (dict(max_batch=0, min_batch=1, opt_batch=1), "batch")])
def test_engine_spec_validation(fields, match):
    with pytest.raises(VadInputError, match=match):
        EngineSpec(**fields).validate()


def test_runner_refuses_engine_from_other_tensorrt(tmp_path):
    engine = tmp_path / "m.plan"
    engine.write_bytes(b"not an engine")
    engine.with_suffix(".json").write_text(json.dumps({"tensorrt_version": "9.0.0", "version_compatible": False, "model": "urdmu",
                                                       "feature_dim": FEATURE_DIM, "custom_ops": {}, "io": [],
                                                       "window": {"min_t": 1, "opt_t": 8, "max_t": 64}}))
    with pytest.raises(VadInputError) as info:
        make_runner(engine)
    reason = missing_runtime() or missing_gpu()
    assert (reason and reason in str(info.value)) or "engine built by TensorRT 9.0.0" in str(info.value)


def test_engine_build_and_run_matches_onnxruntime(tmp_path, plugin_build):
    reason = missing_builder() or missing_gpu()
    if reason:
        pytest.skip(reason)
    from vadedge.export.onnx_export import export_onnx
    from vadedge.runtime.backends import OrtRunner

    model = small_model("mome")
    onnx_path = export_onnx(model, tmp_path / "m.onnx").path
    spec = EngineSpec(precision="fp32", min_t=1, opt_t=64, max_t=1000, max_batch=4)
    sidecar = build_engine(onnx_path, tmp_path / "m.plan", spec, plugin_build / "libvad_trt_plugins.so", tmp_path / "cache.bin")
    assert sidecar["plugin_library_sha256"] and sidecar["window"]["max_t"] == 1000
    trt_runner, ort_runner = TrtRunner(tmp_path / "m.plan"), OrtRunner(onnx_path)
    for t in (1, 17, 200, 1000):
        x = np.random.default_rng(t).standard_normal((4, t, FEATURE_DIM), dtype=np.float32)
        a, b = trt_runner.run(x), ort_runner.run(x)
        assert np.abs(a["scores"] - b["scores"]).max() <= 1e-4
        assert np.array_equal(a["expert"], b["expert"])
