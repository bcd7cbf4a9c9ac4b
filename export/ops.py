"""The custom ONNX ops the TensorRT plugins accelerate, and their ONNX-function fallbacks.

Each op is emitted as a node in the ``vad`` domain (= the plugin namespace) carrying ``plugin_version`` and
``plugin_namespace`` attributes, so TensorRT's ONNX parser maps it onto the plugin of the same name. The
file also carries an ONNX function of the same name and domain with the op's decomposition into standard
ops: onnxruntime (and TensorRT without the plugin library) runs that instead, so one file serves both.

Precision: the op inputs are cast to FP32 and the outputs back, so similarity, top-k and means stay FP32
islands in an FP16 graph (TensorRT 11 networks are strongly typed: the graph's types are what runs).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator

import onnx
import torch
from onnxscript import FLOAT, INT32, script
from onnxscript import opset20 as op
from onnxscript.values import Opset

from .backend import DOMAIN, PLUGIN_VERSION

OPSET = 20
vad = Opset(DOMAIN, 1)


# ---------------------------------------------------------------- ONNX-function fallbacks
@script(vad, default_opset=op)
def VadMemoryRead(query: FLOAT, memory: FLOAT, k: int, plugin_version: str, plugin_namespace: str) -> tuple[FLOAT, FLOAT]:
    """query [B, N, D], memory [Bm, M, D] (Bm = 1 or B) -> score [B, N] (top-k mean of sigmoid sims), augment [B, N, D]."""
    dim = op.Cast(op.Shape(memory, start=-1), to=1)
    sim = op.Sigmoid(op.Div(op.MatMul(query, op.Transpose(memory, perm=[0, 2, 1])), op.Sqrt(dim)))
    slots = op.Shape(memory, start=-2, end=-1)
    kk = op.Min(op.Unsqueeze(op.Constant(value_int=k), op.Constant(value_ints=[0])), slots)
    top, _ = op.TopK(sim, kk, axis=-1)
    score = op.ReduceMean(top, op.Constant(value_ints=[-1]), keepdims=0)
    augment = op.MatMul(sim, memory)
    return score, augment


@script(vad, default_opset=op)
def VadTop1Route(logits: FLOAT, plugin_version: str, plugin_namespace: str) -> tuple[INT32, FLOAT]:
    """logits [N, E] -> chosen expert [N] (int32) and its softmax probability [N]."""
    probs = op.Softmax(logits, axis=-1)
    weight, index = op.TopK(probs, op.Constant(value_ints=[1]), axis=-1)
    axes = op.Constant(value_ints=[-1])
    return op.Cast(op.Squeeze(index, axes), to=6), op.Squeeze(weight, axes)


FALLBACKS = (VadMemoryRead, VadTop1Route)


def function_protos() -> list[onnx.FunctionProto]:
    return [f.to_function_proto() for f in FALLBACKS]


# ---------------------------------------------------------------- torch side
def _attrs(**kw) -> dict:
    return {**kw, "plugin_version": PLUGIN_VERSION, "plugin_namespace": DOMAIN}


def memory_read_export(query: torch.Tensor, memory: torch.Tensor, k: int, custom: bool):
    """Drop-in for ``layers.memory.memory_read`` during export: FP32 island, custom node or standard ops."""
    from vadedge.train.layers.memory import topk_mean

    dtype = query.dtype
    q, m = query.float(), memory.float()
    if m.dim() == 2:
        m = m.unsqueeze(0)
    squeeze = q.dim() == 2
    if squeeze:
        q = q.unsqueeze(0)
    if custom:
        score, augment = torch.onnx.ops.symbolic_multi_out(
            f"{DOMAIN}::VadMemoryRead", [q, m], _attrs(k=int(min(k, m.shape[1]))),
            dtypes=[torch.float32, torch.float32], shapes=[q.shape[:-1], q.shape], version=1)
    else:
        sim = torch.sigmoid(torch.matmul(q, m.transpose(-1, -2)) / math.sqrt(m.shape[-1]))
        score, augment = topk_mean(sim, k, dim=-1), torch.matmul(sim, m)
    if squeeze:
        score, augment = score.squeeze(0), augment.squeeze(0)
    return score.to(dtype), augment.to(dtype), None


def top1_route_export(logits: torch.Tensor, custom: bool):
    """Drop-in for ``layers.routing.top1_route`` during export (index and weight only: no probabilities)."""
    from vadedge.train.layers.routing import Routing

    x = logits.float()
    if custom:
        index, weight = torch.onnx.ops.symbolic_multi_out(
            f"{DOMAIN}::VadTop1Route", [x], _attrs(), dtypes=[torch.int32, torch.float32],
            shapes=[x.shape[:-1], x.shape[:-1]], version=1)
        index = index.long()
    else:
        weight, index = torch.topk(torch.softmax(x, -1), 1, dim=-1)
        weight, index = weight.squeeze(-1), index.squeeze(-1)
    return Routing(None, index, weight.to(logits.dtype))


@dataclass(frozen=True)
class _Patch:
    module: str
    name: str


# Every module that binds the functions by name (``from .memory import memory_read``).
_MEMORY_READ_USERS = (_Patch("vadedge.train.layers.memory", "memory_read"), _Patch("vadedge.train.layers.memory_experts", "memory_read"))
_ROUTE_USERS = (_Patch("vadedge.train.models.mome", "top1_route"),)


@contextlib.contextmanager
def export_ops(custom: bool) -> Iterator[None]:
    """Route the models' memory reads and top-1 routing through the export forms (mmdeploy-style rewrite)."""
    import importlib

    saved = []
    replacements = [(p, lambda q, m, k: memory_read_export(q, m, k, custom)) for p in _MEMORY_READ_USERS]
    replacements += [(p, lambda logits: top1_route_export(logits, custom)) for p in _ROUTE_USERS]
    try:
        for patch, fn in replacements:
            mod = importlib.import_module(patch.module)
            saved.append((mod, patch.name, getattr(mod, patch.name)))
            setattr(mod, patch.name, fn)
        yield
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
