"""Model registry and the registered models."""

from .registry import create_model, get_entry, list_models, register_model
from .urdmu import URDMU, URDMUConfig

__all__ = ["URDMU", "URDMUConfig", "create_model", "get_entry", "list_models", "register_model"]
