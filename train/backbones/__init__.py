"""Frame backbones that turn video snippets into features; exported to ONNX for vad-extract and vad-runtime."""

from __future__ import annotations

from pathlib import Path

import torch

from vadedge.errors import VadInputError


def load_matching(model: torch.nn.Module, state: dict, path: Path, what: str) -> torch.nn.Module:
    """Load ``state`` into ``model`` only if every tensor is there with the right shape (extra keys are ignored);
    otherwise one line naming the file and the first problem."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise VadInputError(f"{path}: not {what} weights, missing {missing[:3]}{' …' if len(missing) > 3 else ''}")
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise VadInputError(f"{path}: {k} has shape {tuple(state[k].shape)}, {what} expects {tuple(v.shape)}")
    model.load_state_dict({k: state[k].to(v.dtype) for k, v in expected.items()}, strict=True)
    return model.eval()
