"""Model registry and the registered models."""

from .registry import create_model, get_entry, list_models, register_model
from .urdmu import URDMU, URDMUConfig
from .gsmoe import GSMoE, GSMoEConfig  # noqa: E402  (registers "gsmoe")
from .mome import MoME, MoMEConfig  # noqa: E402  (registers "mome")

__all__ = ["GSMoE", "GSMoEConfig", "MoME", "MoMEConfig", "URDMU", "URDMUConfig", "create_model", "get_entry", "list_models", "register_model"]
