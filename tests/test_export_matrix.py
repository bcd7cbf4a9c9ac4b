"""Every exported file loads and runs everywhere: 3 models (demo sizes) x fp32/fp16 x custom/standard ops x a few T.

Each file is loaded by onnxruntime with its default session options (ORT_ENABLE_ALL) in a child process, so a
crash in onnxruntime's graph optimizer (the FP16 GS-MoE export used to segfault in NchwcTransformer) is a
failing test with the child's exit status, not a dead test run.
"""

import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from export_models import demo_model
from vadedge.export.onnx_export import InferenceGraph, export_onnx, fp32_transposes_before_constant_matmuls
from vadedge.export.parity import FP16_MIN_EXPERT_AGREEMENT, tolerance

MODELS = ("urdmu", "gsmoe", "mome")
SNIPPETS = (1, 17, 200)

CHILD = textwrap.dedent("""
    import sys, numpy as np, onnxruntime as ort
    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])  # default options
    inputs = np.load(sys.argv[2])
    out = {}
    for key in inputs.files:
        for i, value in enumerate(session.run(None, {session.get_inputs()[0].name: inputs[key]})):
            out[f"{key}/{i}"] = value
    np.savez(sys.argv[3], **out)
""")


def run_in_child(onnx_path, inputs: dict, tmp_path) -> dict:
    np.savez(tmp_path / "in.npz", **inputs)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(onnx_path), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{onnx_path.name}: onnxruntime child exited {proc.returncode} (negative: signal): {proc.stderr[-500:]}"
    with np.load(tmp_path / "out.npz") as out:
        return {k: out[k] for k in out.files}


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    return request.param, demo_model(request.param)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("ops", ["custom", "standard"])
def test_export_loads_in_a_fresh_process_and_matches(model, precision, ops, tmp_path):
    name, net = model
    path = export_onnx(net, tmp_path / f"{name}.{ops}.{precision}.onnx", standard_ops=ops == "standard", precision=precision).path
    rng = np.random.default_rng(0)
    inputs = {f"T{t}": rng.standard_normal((2, t, net.config.feature_dim), dtype=np.float32) for t in SNIPPETS}
    out = run_in_child(path, inputs, tmp_path)
    graph = InferenceGraph(net, "fp32")
    for t in SNIPPETS:
        with torch.no_grad():
            ref = graph(torch.from_numpy(inputs[f"T{t}"]))
        ref = ref if isinstance(ref, tuple) else (ref,)
        err = np.abs(out[f"T{t}/0"] - ref[0].numpy()).max()
        assert err <= tolerance(precision, t), f"{name} {ops} {precision} T={t}: {err:.2e}"
        if len(ref) > 1:
            agreement = (out[f"T{t}/1"] == ref[1].numpy()).mean()
            assert agreement >= (1.0 if precision == "fp32" else FP16_MIN_EXPERT_AGREEMENT), f"T={t}: experts {agreement:.3f}"


def _transpose_matmul_model(through_cast: bool) -> onnx.ModelProto:
    """The minimal pattern that crashed onnxruntime 1.32: FP16 [A, B, K] -> Transpose(1, 0, 2) -> MatMul(constant)."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32 if through_cast else np.float16), "w")
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2])]
    if through_cast:
        nodes.append(helper.make_node("Cast", ["xt"], ["xc"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("MatMul", ["xc" if through_cast else "xt", "w"], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["A", "B", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT if through_cast else TensorProto.FLOAT16, ["B", "A", 16])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    return model


@pytest.mark.parametrize("through_cast", [False, True])
def test_fp16_transpose_before_constant_matmul_is_rewritten_exactly(through_cast, tmp_path):
    model = _transpose_matmul_model(through_cast)
    assert fp32_transposes_before_constant_matmuls(model) == 1
    ops = [(n.op_type, next((a.i for a in n.attribute if a.name == "to"), None)) for n in model.graph.node]
    assert ops[:3] == [("Cast", TensorProto.FLOAT), ("Transpose", None), ("Cast", TensorProto.FLOAT16)]
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "m.onnx"))
    x = np.random.default_rng(1).standard_normal((3, 5, 8)).astype(np.float16)
    got = run_in_child(tmp_path / "m.onnx", {"x": x}, tmp_path)["x/0"]
    w = numpy_helper.to_array(model.graph.initializer[0])
    want = np.matmul(x.transpose(1, 0, 2).astype(np.float32), w.astype(np.float32))
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-3, atol=2e-3)
    assert fp32_transposes_before_constant_matmuls(model) == 0  # idempotent: the new Transpose is FP32


def test_fp16_export_leaves_the_model_untouched(tmp_path):
    from export_models import small_model

    model = small_model("gsmoe")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m16.onnx", precision="fp16")
    after = model.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items())
