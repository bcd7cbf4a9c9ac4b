"""Frame backbone -> ONNX (input ``frames`` [N, 3, H, W], output ``features`` [N, D]) with its preprocessing
config in the metadata: the single definition vad-extract and vad-runtime both run."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import onnx
import torch

from vadedge.atomic import atomic_path
from vadedge.errors import VadInputError
from vadedge.runtime.preprocess import BackboneConfig

from .onnx_export import META_PREFIX
from .ops import OPSET

BACKBONES = ("efficientnet_lite0",)


def build_backbone(name: str) -> tuple[torch.nn.Module, BackboneConfig]:
    if name == "efficientnet_lite0":
        from vadedge.train.backbones.efficientnet_lite import load_pretrained

        return load_pretrained(224), BackboneConfig(name=name, feature_dim=1280)
    raise VadInputError(f"unknown backbone {name!r}; available: {list(BACKBONES)}")


def export_backbone(name: str, path: str | os.PathLike) -> Path:
    model, cfg = build_backbone(name)
    x = torch.randn(2, 3, cfg.crop, cfg.crop)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(model.eval(), (x,), dynamo=True, opset_version=OPSET, input_names=["frames"],
                                    output_names=["features"], dynamic_shapes={"x": {0: torch.export.Dim("frames", min=1, max=4096)}},
                                    optimize=True, verbose=False)
    proto = program.model_proto
    proto.metadata_props.add(key=META_PREFIX + "backbone_config", value=cfg.to_json())
    onnx.checker.check_model(proto)
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return path
