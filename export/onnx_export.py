"""Checkpoint -> ONNX: the inference graph of UR-DMU, GS-MoE or MoME with dynamic batch and snippet count.

Graph I/O (every model): input ``features`` [B, T, F] float32; outputs ``scores`` [B, T] float32 and, for
the mixtures, ``expert`` [B, T] int64 (GS-MoE: dominant class expert; MoME: routed anomaly expert). The
file's metadata holds the model name and config, so the runtime needs nothing else.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from vadedge import __version__
from vadedge.atomic import atomic_path
from vadedge.errors import VadInputError

from .ops import DOMAIN, OPSET, PLUGIN_VERSION, export_ops, function_protos

PRECISIONS = ("fp32", "fp16")
META_PREFIX = "vadedge."


class InferenceGraph(nn.Module):
    """The exported forward: float32 in, float32 scores (+ int64 expert ids) out, whatever the inner precision."""

    def __init__(self, model: nn.Module, precision: str):
        super().__init__()
        self.model = model
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.name = model.model_name

    def forward(self, features: torch.Tensor):
        x = features.to(self.dtype)
        if self.name == "mome":
            out = self.model.forward_detailed(x)
            return out["scores"].float(), out["anomaly_expert"]
        if self.name == "gsmoe":
            out = self.model.forward_detailed(x)
            return out["scores"].float(), out["dominant_expert"]
        return self.model(x).float()


def output_names(model_name: str) -> list[str]:
    return ["scores", "expert"] if model_name in ("mome", "gsmoe") else ["scores"]


def expert_names(model: nn.Module) -> list[str]:
    """What an ``expert`` id means, for alerts."""
    c = model.config
    if model.model_name == "gsmoe":
        return list(c.experts)
    if model.model_name == "mome":
        return [f"explicit{i}" for i in range(c.explicit_experts)] + [f"implicit{i}" for i in range(c.implicit_anomaly_experts)]
    return []


@dataclass
class ExportResult:
    path: Path
    custom_ops: dict[str, int]  # op type -> node count in the vad domain
    metadata: dict[str, str]


def export_onnx(model: nn.Module, path: str | os.PathLike, *, standard_ops: bool = False, precision: str = "fp32",
                example_t: int = 64, extra_meta: dict | None = None) -> ExportResult:
    """Export ``model`` (eval mode) to ``path`` atomically; returns the custom-op census and metadata."""
    if precision not in PRECISIONS:
        raise VadInputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    model = model.eval().float()
    # FP16 converts a copy: half() then float() on the caller's model would leave its weights FP16-rounded
    # (a later FP32 export of the same model was 3e-3 off).
    graph = InferenceGraph(copy.deepcopy(model) if precision == "fp16" else model, precision).eval()
    if precision == "fp16":
        graph.model.half()
    feature_dim = model.config.feature_dim
    x = torch.randn(2, example_t, feature_dim)
    batch, time = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("snippets", min=1, max=1 << 20)
    names = output_names(model.model_name)
    with export_ops(custom=not standard_ops), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(graph, (x,), dynamo=True, opset_version=OPSET, input_names=["features"],
                                    output_names=names, dynamic_shapes={"features": {0: batch, 1: time}},
                                    optimize=True, verbose=False, report=False)
    proto = program.model_proto
    if precision == "fp16":
        fp32_transposes_before_constant_matmuls(proto)
    census: dict[str, int] = {}
    for node in proto.graph.node:
        if node.domain == DOMAIN:
            census[node.op_type] = census.get(node.op_type, 0) + 1
    if census:
        present = {f.name for f in proto.functions}
        proto.functions.extend(f for f in function_protos() if f.name in census and f.name not in present)
    meta = {
        "model": model.model_name,
        "model_config": json.dumps(_config_dict(model)),
        "feature_dim": str(feature_dim),
        "precision": precision,
        "custom_ops": json.dumps(census),
        "plugin_namespace": DOMAIN,
        "plugin_version": PLUGIN_VERSION,
        "outputs": json.dumps(names),
        "expert_names": json.dumps(expert_names(model)),
        "package_version": __version__,
        **{k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (extra_meta or {}).items()},
    }
    for key, value in meta.items():
        proto.metadata_props.add(key=META_PREFIX + key, value=value)
    onnx.checker.check_model(proto)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return ExportResult(path, census, meta)


def fp32_transposes_before_constant_matmuls(proto: onnx.ModelProto) -> int:
    """Run each FP16 activation Transpose that feeds (directly or through Casts) the left side of a MatMul with a
    constant right side as Cast(FP32) -> Transpose -> Cast(FP16), in place; returns how many were rewritten.

    Why: onnxruntime's CPU graph optimizer (its ``NchwcTransformer``, run at the default ORT_ENABLE_ALL level;
    checked with 1.32) crashes the process with a segmentation fault at session creation on exactly that pattern
    (minimal case: FP16 input [A, B, K] -> Transpose(perm=[1, 0, 2]) -> MatMul with an FP16 [K, N] initializer);
    torch emits it for nn.MultiheadAttention's batch_first transposes and GS-MoE's expert-score permute. The
    rewrite is exact (FP16 -> FP32 -> FP16 is lossless) and leaves the MatMul in FP16.
    """
    from onnx import TensorProto, helper

    graph = proto.graph
    inferred = onnx.shape_inference.infer_shapes(proto).graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.value_info) + list(inferred.input)}
    constant = {t.name for t in graph.initializer}
    for node in graph.node:  # topological order: outputs of nodes fed only by constants are constant
        if node.op_type != "Shape" and all(not i or i in constant for i in node.input):
            constant.update(node.output)
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def feeds_constant_matmul(name: str) -> bool:
        for c in consumers.get(name, []):
            if c.op_type == "MatMul" and c.input[0] == name and c.input[1] in constant:
                return True
            if c.op_type == "Cast" and feeds_constant_matmul(c.output[0]):
                return True
        return False

    nodes, rewritten = [], 0
    for node in graph.node:
        src = node.input[0] if node.input else ""
        if not (node.op_type == "Transpose" and types.get(src) == TensorProto.FLOAT16 and src not in constant
                and feeds_constant_matmul(node.output[0])):
            nodes.append(node)
            continue
        out, perm = node.output[0], [a for a in node.attribute if a.name == "perm"]
        nodes += [helper.make_node("Cast", [src], [f"{out}__f32_in"], to=TensorProto.FLOAT),
                  helper.make_node("Transpose", [f"{out}__f32_in"], [f"{out}__f32"], name=node.name,
                                   perm=list(perm[0].ints) if perm else None),
                  helper.make_node("Cast", [f"{out}__f32"], [out], to=TensorProto.FLOAT16)]
        rewritten += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return rewritten


def _config_dict(model: nn.Module) -> dict:
    from vadedge.train.config import config_to_dict

    return config_to_dict(model.config)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``vadedge.*`` metadata of an exported file (without loading the weights)."""
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key[len(META_PREFIX):]: p.value for p in proto.metadata_props if p.key.startswith(META_PREFIX)}
