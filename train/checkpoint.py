"""Checkpoints: weights in safetensors with the JSON configs in the file's metadata.

A checkpoint alone rebuilds its model (``load_model``). Nothing is unpickled. Writes are atomic.
Resumable training state (optimizer moments, step, RNG) goes in a second safetensors file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import vadedge
from vadedge.atomic import atomic_path
from vadedge.errors import VadInputError
from vadedge.validate import require_finite, require_keys, require_shapes

from .models.registry import create_model, model_config_dict

FORMAT = "vadedge-checkpoint/1"
STATE_FORMAT = "vadedge-train-state/1"


@dataclass
class CheckpointInfo:
    model: str
    model_config: dict[str, Any]
    train_config: dict[str, Any]
    step: int
    metrics: dict[str, float]
    package_version: str
    extra: dict[str, Any]


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, *, step: int = 0,
                    train_config: dict | None = None, metrics: dict | None = None, extra: dict | None = None) -> Path:
    header = {
        "format": FORMAT,
        "model": model.model_name,
        "model_config": model_config_dict(model),
        "train_config": train_config or {},
        "step": step,
        "metrics": metrics or {},
        "package_version": vadedge.__version__,
        "extra": extra or {},
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"vadedge": json.dumps(header)})
    return path


def _vadedge_metadata(path: Path) -> dict:
    """The JSON this package stores in a safetensors file's metadata; raises ValueError/KeyError/OSError."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if not 0 < n < 100_000_000:
            raise ValueError("bad header size")
        return json.loads(json.loads(fh.read(n))["__metadata__"]["vadedge"])


def read_header(path: str | os.PathLike) -> CheckpointInfo:
    """Read a checkpoint's configs without loading weights (no torch tensors are created)."""
    path = Path(path)
    if not path.is_file():
        raise VadInputError(f"checkpoint {path} not found")
    try:
        header = _vadedge_metadata(path)
    except (ValueError, KeyError, TypeError):
        raise VadInputError(f"checkpoint {path}: not a vadedge safetensors checkpoint (use vad-convert for official .pkl files)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else header
        raise VadInputError(f"checkpoint {path}: format {got!r}, expected {FORMAT!r}")
    require_keys(header, ("model", "model_config"), f"checkpoint {path}: header")
    step = header.get("step", 0)
    if type(step) is not int or step < 0:
        raise VadInputError(f"checkpoint {path}: header field step = {step!r}, expected an integer >= 0")
    return CheckpointInfo(header["model"], header["model_config"], header.get("train_config", {}), step,
                          header.get("metrics", {}), header.get("package_version", "?"), header.get("extra", {}))


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, CheckpointInfo]:
    """Rebuild a checkpoint's model; a bad config value, a tensor of the wrong shape or a NaN/inf weight
    is a one-line VadInputError naming the file and the field or tensor."""
    info = read_header(path)
    try:
        model = create_model(info.model, info.model_config)
    except VadInputError as exc:
        raise VadInputError(f"checkpoint {path}: {exc}") from None
    try:
        state = load_file(str(path), device=str(device))
    except SafetensorError as exc:
        raise VadInputError(f"checkpoint {path}: unreadable weights ({exc})") from None
    require_shapes({k: v.shape for k, v in model.state_dict().items()}, state, f"checkpoint {path}",
                   " (does model_config match the weights?)")
    require_finite(state, f"checkpoint {path}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VadInputError(f"checkpoint {path}: weights do not match model {info.model!r} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.to(device).eval(), info


def save_train_state(path: str | os.PathLike, optimizer: torch.optim.Optimizer, *, step: int, best: dict,
                     rng: dict[str, torch.Tensor]) -> None:
    """Optimizer moments, step, best-so-far and RNG states, as tensors + JSON (no pickle)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state["state"].items():
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"opt.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    for key, value in rng.items():
        tensors[f"rng.{key}"] = value.cpu().contiguous()
    header = {"format": STATE_FORMAT, "step": step, "best": best, "param_groups": state["param_groups"], "scalars": scalars}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"vadedge": json.dumps(header)})


def load_train_state(path: str | os.PathLike, optimizer: torch.optim.Optimizer) -> tuple[int, dict, dict[str, torch.Tensor]]:
    path = Path(path)
    try:
        header = _vadedge_metadata(path)
        tensors = load_file(str(path))
    except (OSError, ValueError, KeyError, TypeError, SafetensorError):
        raise VadInputError(f"training state {path}: missing or unreadable (expected a vadedge train-state file)") from None
    if not isinstance(header, dict) or header.get("format") != STATE_FORMAT:
        got = header.get("format") if isinstance(header, dict) else header
        raise VadInputError(f"training state {path}: format {got!r}, expected {STATE_FORMAT!r}")
    require_keys(header, ("step", "best", "param_groups", "scalars"), f"training state {path}: header")
    if type(header["step"]) is not int or header["step"] < 0:
        raise VadInputError(f"training state {path}: header field step = {header['step']!r}, expected an integer >= 0")
    opt_state: dict[int, dict[str, Any]] = {}
    rng: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        kind, rest = name.split(".", 1)
        if kind == "opt":
            pid, key = rest.split(".", 1)
            opt_state.setdefault(int(pid), {})[key] = value
        else:
            rng[rest] = value
    for pid, extra in header["scalars"].items():
        opt_state.setdefault(int(pid), {}).update(extra)
    try:
        optimizer.load_state_dict({"state": opt_state, "param_groups": header["param_groups"]})
    except (ValueError, KeyError, TypeError) as exc:
        raise VadInputError(f"training state {path}: does not fit this model's optimizer ({str(exc).splitlines()[0]})") from None
    return int(header["step"]), header["best"], rng

