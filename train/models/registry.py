"""Model registry: a name maps to a model class and its typed config dataclass (timm-style)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from vadedge.errors import VadInputError

from ..config import config_from_dict, config_to_dict


@dataclass(frozen=True)
class ModelEntry:
    name: str
    model_cls: type[nn.Module]
    config_cls: type
    loss_factory: Callable[[Any], nn.Module]


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, config_cls: type, loss_factory: Callable[[Any], nn.Module]):
    def deco(model_cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, model_cls, config_cls, loss_factory)
        model_cls.model_name = name
        return model_cls

    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise VadInputError(f"unknown model {name!r}; available: {list_models()}")
    return _REGISTRY[name]


def create_model(name: str, config: Any = None) -> nn.Module:
    """Build a registered model from a config dataclass, a dict (e.g. from a checkpoint) or defaults."""
    entry = get_entry(name)
    if config is None:
        config = entry.config_cls()
    elif isinstance(config, dict):
        config = config_from_dict(entry.config_cls, config, where=f"model_config[{name}]", legacy=True)
    try:
        with warnings.catch_warnings():  # a zero size is refused below, with the tensor's name
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
            model = entry.model_cls(config)
    except (RuntimeError, ValueError, ZeroDivisionError, AssertionError, IndexError) as exc:
        if isinstance(exc, VadInputError):
            raise
        # Values of the right type can still not fit together (dropout 1.5, a width not divisible by heads).
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise VadInputError(f"model_config[{name}]: these values cannot build the model ({reason})") from None
    for key, tensor in model.state_dict().items():
        if tensor.numel() == 0:
            raise VadInputError(f"model_config[{name}]: these values give tensor {key!r} the empty shape "
                                f"{list(tensor.shape)} (a size field is 0)")
    return model


def model_config_dict(model: nn.Module) -> dict[str, Any]:
    return config_to_dict(model.config)
