"""ONNX export: custom vad nodes with plugin attributes and function fallbacks, onnxruntime vs PyTorch parity
for all three models (T in {1, 17, 200, 1000}, batch 1 and 4), the standard-ops variant, FP16 islands, CLI."""

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from export_models import FEATURE_DIM, small_model
from vadedge.export.onnx_export import export_onnx, read_metadata
from vadedge.export.ops import DOMAIN, function_protos
from vadedge.export.parity import PARITY_B, PARITY_T, compare
from vadedge.runtime.backends import OrtRunner, TorchRunner
from vadedge.train.checkpoint import save_checkpoint
from vadedge.train.layers.memory import memory_read

MODELS = ("urdmu", "gsmoe", "mome")
EXPECTED_OPS = {"urdmu": {"VadMemoryRead"}, "gsmoe": {"VadMemoryRead"}, "mome": {"VadMemoryRead", "VadTop1Route"}}
REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    files = {}
    for name in MODELS:
        model = small_model(name)
        files[name] = (model, export_onnx(model, out / f"{name}.onnx"), export_onnx(model, out / f"{name}.std.onnx", standard_ops=True))
    return files


@pytest.mark.parametrize("name", MODELS)
def test_custom_nodes_carry_plugin_attributes_and_fallbacks(exported, name):
    _, result, _ = exported[name]
    proto = onnx.load(str(result.path))
    nodes = [n for n in proto.graph.node if n.domain == DOMAIN]
    assert {n.op_type for n in nodes} == EXPECTED_OPS[name]
    for n in nodes:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["plugin_version"] == b"1" and attrs["plugin_namespace"] == b"vad"
        if n.op_type == "VadMemoryRead":
            assert attrs["k"] >= 1
    assert {f.name for f in proto.functions} == EXPECTED_OPS[name]
    assert any(o.domain == DOMAIN and o.version == 1 for o in proto.opset_import)
    meta = read_metadata(result.path)
    assert meta["model"] == name and int(meta["feature_dim"]) == FEATURE_DIM
    graph_in = proto.graph.input[0]
    dims = graph_in.type.tensor_type.shape.dim
    assert graph_in.name == "features" and dims[0].dim_param and dims[1].dim_param and dims[2].dim_value == FEATURE_DIM


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("variant", ["custom", "standard"])
def test_onnxruntime_matches_pytorch(exported, name, variant):
    model, custom, standard = exported[name]
    rows = compare(model, (custom if variant == "custom" else standard).path)
    assert len(rows) == len(PARITY_T) * len(PARITY_B)
    for row in rows:
        assert row.ok() and row.tol <= 2.3e-5, str(row)  # 1e-5 up to T = 200, sqrt(T / 200) growth beyond
        assert row.experts_equal in (None, True), str(row)


def test_standard_ops_variant_has_no_custom_domain(exported):
    proto = onnx.load(str(exported["mome"][2].path))
    assert not [n for n in proto.graph.node if n.domain == DOMAIN] and not list(proto.functions)
    assert {n.op_type for n in proto.graph.node} >= {"TopK", "Sigmoid", "MatMul"}


def _run_single_op(op_type: str, inputs: dict, attrs: dict, outputs: list[tuple[str, int]]):
    node = helper.make_node(op_type, list(inputs), [o for o, _ in outputs], domain=DOMAIN,
                            plugin_version="1", plugin_namespace="vad", **attrs)
    graph = helper.make_graph([node], "single", [helper.make_tensor_value_info(k, TensorProto.FLOAT, None) for k in inputs],
                              [helper.make_tensor_value_info(o, t, None) for o, t in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(DOMAIN, 1)],
                              functions=[f for f in function_protos() if f.name == op_type])
    return ort.InferenceSession(model.SerializeToString()).run(None, inputs)


@pytest.mark.parametrize("b,n,d,bm,m,k", [(1, 1, 8, 1, 60, 4), (2, 17, 32, 1, 60, 4), (3, 200, 16, 3, 10, 1), (1, 5, 8, 1, 6, 9)])
def test_memory_read_fallback_matches_the_training_op(b, n, d, bm, m, k):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((b, n, d), dtype=np.float32)
    mem = rng.standard_normal((bm, m, d), dtype=np.float32)
    score, augment = _run_single_op("VadMemoryRead", {"query": q, "memory": mem}, {"k": k},
                                    [("score", TensorProto.FLOAT), ("augment", TensorProto.FLOAT)])
    ref_score, ref_aug, _ = memory_read(torch.from_numpy(q), torch.from_numpy(mem), k)
    np.testing.assert_allclose(score, ref_score.numpy(), atol=1e-6)
    np.testing.assert_allclose(augment, ref_aug.numpy(), atol=1e-5)


@pytest.mark.parametrize("rows,experts", [(1, 12), (1000, 24), (7, 1)])
def test_top1_route_fallback_picks_the_argmax(rows, experts):
    logits = np.random.default_rng(1).standard_normal((rows, experts), dtype=np.float32)
    index, weight = _run_single_op("VadTop1Route", {"logits": logits}, {}, [("index", TensorProto.INT32), ("weight", TensorProto.FLOAT)])
    assert index.dtype == np.int32 and np.array_equal(index, logits.argmax(-1))
    probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
    np.testing.assert_allclose(weight, probs.max(-1), atol=1e-6)


def test_fp16_export_keeps_fp32_islands(tmp_path):
    model = small_model("mome")
    result = export_onnx(model, tmp_path / "m16.onnx", precision="fp16")
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(result.path)))
    types = {v.name: v.type.tensor_type.elem_type for v in list(proto.graph.value_info) + list(proto.graph.input)}
    types.update({i.name: i.data_type for i in proto.graph.initializer})
    assert any(i.data_type == TensorProto.FLOAT16 for i in proto.graph.initializer), "weights are FP16"
    for node in (n for n in proto.graph.node if n.domain == DOMAIN):
        for name in node.input:
            assert types.get(name) == TensorProto.FLOAT, f"{node.op_type} input {name} is not FP32"
    # Where onnxruntime CPU has the FP16 kernels, the scores stay close to FP32.
    try:
        session = ort.InferenceSession(str(result.path))
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"onnxruntime CPU cannot run this FP16 graph: {str(exc).splitlines()[0]}")
    x = np.random.default_rng(0).standard_normal((1, 40, FEATURE_DIM), dtype=np.float32)
    with torch.no_grad():
        ref = model.forward_detailed(torch.from_numpy(x))["scores"].numpy()
    assert np.abs(session.run(None, {"features": x})[0] - ref).max() < 2e-2


def test_to_onnx_cli_and_runners_agree(tmp_path):
    ckpt = tmp_path / "mome.safetensors"
    save_checkpoint(ckpt, small_model("mome"))
    proc = subprocess.run([sys.executable, str(REPO / "export" / "to_onnx.py"), str(ckpt), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "custom ops: VadTop1Route x2, VadMemoryRead x4" in proc.stdout and "parity PASS (fp32)" in proc.stdout
    onnx_path = ckpt.with_suffix(".onnx")
    x = np.random.default_rng(2).standard_normal((2, 33, FEATURE_DIM), dtype=np.float32)
    ort_out, torch_out = OrtRunner(onnx_path).run(x), TorchRunner(ckpt).run(x)
    assert set(ort_out) == {"scores", "expert"}
    np.testing.assert_allclose(ort_out["scores"], torch_out["scores"], atol=1e-5)
    assert np.array_equal(ort_out["expert"], torch_out["expert"])
    bad = subprocess.run([sys.executable, str(REPO / "export" / "to_onnx.py"), str(tmp_path / "missing.safetensors")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
    assert json.loads(read_metadata(onnx_path)["expert_names"]) == ["explicit0", "explicit1", "explicit2", "implicit0", "implicit1"]


def test_check_exits_1_when_parity_fails(tmp_path):
    """A real failure: activations beyond FP16's range (65504) make the FP16 file's scores NaN."""
    model = small_model("urdmu")
    with torch.no_grad():
        model.embed.conv.weight.mul_(1e4)
    ckpt = tmp_path / "big.safetensors"
    save_checkpoint(ckpt, model)
    proc = subprocess.run([sys.executable, str(REPO / "export" / "to_onnx.py"), str(ckpt), "--check", "--check-max-t", "17",
                           "--precision", "fp16"], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "parity FAIL (fp16)" in proc.stdout and "T=17" in proc.stdout and "T=200" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "fp16 tolerance" in errors[0] and proc.stderr.strip().endswith(errors[0])
