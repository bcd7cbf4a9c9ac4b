"""Import official UR-DMU checkpoints (``ucf_trans_2022.pkl``, ``xd_trans_2022.pkl``: plain state dicts).

The file is read with ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
Official parameter names are mapped onto this package's names; shapes give the config.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from vadedge.errors import VadInputError
from vadedge.validate import require_finite, require_shapes

from .models.urdmu import URDMU, URDMUConfig

# (official regex, native template) — official names from the public model.py / translayer.py / memory.py.
_URDMU_NAMES = [
    (r"embedding\.conv_1\.0\.(weight|bias)", r"embed.conv.\1"),
    (r"selfatt\.layers\.(\d+)\.0\.norm\.(weight|bias)", r"temporal.blocks.\1.attn_norm.\2"),
    (r"selfatt\.layers\.(\d+)\.0\.fn\.to_qkv\.weight", r"temporal.blocks.\1.attn.qkvt.weight"),
    (r"selfatt\.layers\.(\d+)\.0\.fn\.to_out\.0\.(weight|bias)", r"temporal.blocks.\1.attn.proj.\2"),
    (r"selfatt\.layers\.(\d+)\.1\.norm\.(weight|bias)", r"temporal.blocks.\1.ffn_norm.\2"),
    (r"selfatt\.layers\.(\d+)\.1\.fn\.net\.0\.(weight|bias)", r"temporal.blocks.\1.ffn.fc1.\2"),
    (r"selfatt\.layers\.(\d+)\.1\.fn\.net\.3\.(weight|bias)", r"temporal.blocks.\1.ffn.fc2.\2"),
    (r"Amemory\.memory_block", r"abnormal_memory.memory"),
    (r"Nmemory\.memory_block", r"normal_memory.memory"),
    (r"encoder_mu\.0\.(weight|bias)", r"enc_mu.\1"),
    (r"encoder_var\.0\.(weight|bias)", r"enc_logvar.\1"),
    (r"cls_head\.mlp\.0\.(weight|bias)", r"head.fc1.\1"),
    (r"cls_head\.mlp\.2\.(weight|bias)", r"head.fc2.\1"),
]


def map_official_urdmu(state: dict[str, torch.Tensor], source: str = "state dict") -> dict[str, torch.Tensor]:
    out = {}
    for name, value in state.items():
        name = name.removeprefix("module.")  # saved from nn.DataParallel
        for pattern, template in _URDMU_NAMES:
            if re.fullmatch(pattern, name):
                out[re.sub(pattern, template, name)] = value
                break
        else:
            raise VadInputError(f"{source}: parameter {name!r} is not part of the official UR-DMU model")
    return out


# Tensors the config is read from, with their rank (official names in the error message).
_SIZE_TENSORS = {"embed.conv.weight": ("embedding.conv_1.0.weight", 3),
                 "temporal.blocks.0.attn.qkvt.weight": ("selfatt.layers.0.0.fn.to_qkv.weight", 2),
                 "temporal.blocks.0.ffn.fc1.weight": ("selfatt.layers.0.1.fn.net.0.weight", 2),
                 "normal_memory.memory": ("Nmemory.memory_block", 2), "abnormal_memory.memory": ("Amemory.memory_block", 2),
                 "head.fc1.weight": ("cls_head.mlp.0.weight", 2)}


def _check_size_tensors(state: dict[str, torch.Tensor], source: str) -> None:
    for native, (official, rank) in _SIZE_TENSORS.items():
        if native not in state:
            raise VadInputError(f"{source}: official tensor {official!r} missing (found {len(state)} UR-DMU tensors)")
        if state[native].dim() != rank or 0 in state[native].shape:
            raise VadInputError(f"{source}: official tensor {official!r} has shape {list(state[native].shape)}, "
                                f"expected {rank} non-empty dimensions")


def urdmu_config_from_official(state: dict[str, torch.Tensor], source: str = "official weights", **overrides) -> URDMUConfig:
    """Infer sizes from official tensors; head count is not in the weights (official: 4)."""
    _check_size_tensors(state, source)
    conv = state["embed.conv.weight"]  # [dim, feature_dim, 3]
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("temporal.blocks."))
    heads = overrides.pop("heads", 4)
    inner = state["temporal.blocks.0.attn.qkvt.weight"].shape[0] // 4
    if heads < 1 or inner % heads:
        raise VadInputError(f"{source}: attention width {inner} is not divisible by heads={heads}")
    return URDMUConfig(
        feature_dim=conv.shape[1], dim=conv.shape[0], depth=depth, heads=heads, head_dim=inner // heads,
        mlp_dim=state["temporal.blocks.0.ffn.fc1.weight"].shape[0],
        normal_slots=state["normal_memory.memory"].shape[0], abnormal_slots=state["abnormal_memory.memory"].shape[0],
        head_hidden=state["head.fc1.weight"].shape[0], **overrides,
    )


def load_official_urdmu(path: str | os.PathLike, **config_overrides) -> URDMU:
    path = Path(path)
    if not path.is_file():
        raise VadInputError(f"official checkpoint {path} not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError … for bad files
        raise VadInputError(f"official checkpoint {path}: not a plain state dict loadable with weights_only ({type(exc).__name__})") from None
    if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not all(torch.is_tensor(v) for v in raw.values()):
        raise VadInputError(f"official checkpoint {path}: expected a dict of tensors (a state dict)")
    if not raw:
        raise VadInputError(f"official checkpoint {path}: the state dict is empty")
    source = f"official checkpoint {path}"
    state = map_official_urdmu(raw, source)
    require_finite(raw, source)
    model = URDMU(urdmu_config_from_official(state, source, **config_overrides))
    official = {v: k for k, v in zip(raw, state)}  # mapping keeps order: native -> official name
    expected = {official.get(k, k): v.shape for k, v in model.state_dict().items()}
    require_shapes(expected, raw, source, " (inconsistent with the other official tensors)")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VadInputError(f"official checkpoint {path}: missing {missing[:4]}, unexpected {unexpected[:4]}")
    return model.eval()
