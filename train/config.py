"""Typed configs and their (de)serialisation: every checkpoint carries the configs that built it."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vadedge.errors import VadInputError

C = TypeVar("C")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type[C], data: dict[str, Any], where: str = "config", legacy: bool = False) -> C:
    """Build dataclass ``cls`` from ``data``; unknown fields or wrong types are a one-line error.

    With ``legacy`` (a config read back from a checkpoint), a field missing from ``data`` (saved before the
    field existed) takes the value in ``cls.LEGACY_DEFAULTS`` when there is one, so an old checkpoint keeps
    meaning what it meant even where a new default differs; otherwise (new configs: CLI, presets) the
    dataclass default.
    """
    if not isinstance(data, dict):
        raise VadInputError(f"{where}: expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise VadInputError(f"{where}: unknown field(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in getattr(cls, "LEGACY_DEFAULTS", {}).items() if k not in data} if legacy else {}
    for key, value in data.items():
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}", legacy)
        # Integer fields are sizes, counts and steps; a negative default marks a field with a sentinel (-1 = auto).
        if hints[key] is int and kwargs[key] < 0 and not (isinstance(defaults[key], int) and defaults[key] < 0):
            raise VadInputError(f"{where}.{key}: expected an integer >= 0, got {kwargs[key]}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str, legacy: bool = False) -> Any:
    origin = typing.get_origin(hint)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise VadInputError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        (item,) = set(typing.get_args(hint)) - {Ellipsis} or {Any}
        items = [v if item is Any else _coerce(v, item, where, legacy) for v in value]
        return tuple(items) if origin is tuple else items
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return config_from_dict(hint, value, where, legacy)
    raise VadInputError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


@dataclass
class TrainConfig:
    """Optimisation and data settings. Defaults are UR-DMU's published ones (UCF-Crime)."""

    iterations: int = 3000
    lr: float = 1e-4
    optimizer: str = "adam"  # "adam" (UR-DMU) or "adamw" (GS-MoE)
    weight_decay: float = 5e-5
    lr_milestones: list[int] = field(default_factory=list)  # iterations at which the lr is multiplied by lr_gamma
    lr_gamma: float = 1.0
    batch_normal: int = 64
    batch_abnormal: int = 64
    seq_len: int = 200  # fixed number of snippets per training sample (segment-mean resampling)
    eval_every: int = 10
    select_metric: str = "auc"  # best checkpoint by "auc" (UCF-Crime) or "pr_auc_trapz"/"ap" (XD-Violence)
    seed: int = 2022
    deterministic: bool = True
    num_workers: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
