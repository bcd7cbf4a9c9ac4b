"""CLIP ViT-B/16 image encoder (512-d, the features MoME and VadCLIP are trained on), with weights from a file
the user supplies: OpenAI's TorchScript ``ViT-B-16.pt``, or an open_clip / Hugging-Face-free state dict
(``.pt``/``.bin`` via ``torch.load(weights_only=True)``, or ``.safetensors``) with the OpenAI key names
(``visual.conv1.weight``, ``visual.transformer.resblocks.0.attn.in_proj_weight``, …)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from vadedge.errors import VadInputError

from . import load_matching

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x):  # [L, N, D] (sequence first, as CLIP)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    """OpenAI CLIP's visual tower (same module names, so its state dict loads as is)."""

    feature_dim = 512

    def __init__(self, size: int = 224, patch: int = 16, width: int = 768, layers: int = 12, heads: int = 12, output_dim: int = 512):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((size // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, 224, 224] CLIP-normalised RGB -> [N, 512] image embeddings (not L2-normalised, as VadCLIP stores them)."""
        x = self.conv1(x).flatten(2).transpose(1, 2)  # [N, 196, width]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], 1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x).transpose(0, 1)).transpose(0, 1)
        return self.ln_post(x[:, 0]) @ self.proj


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 — OpenAI ships TorchScript archives, which torch.load refuses
        try:
            obj = torch.jit.load(str(path), map_location="cpu").state_dict()
        except Exception as exc:  # noqa: BLE001
            raise VadInputError(f"{path}: neither a state dict nor a TorchScript CLIP archive ({str(exc).splitlines()[0]})") from None
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise VadInputError(f"{path}: expected a state dict of CLIP weights")
    return obj


def load_clip_visual(path: str | os.PathLike) -> VisionTransformer:
    """ViT-B/16 visual tower from a user-supplied CLIP checkpoint; every tensor must match by name and shape."""
    path = Path(path)
    if not path.is_file():
        raise VadInputError(f"{path}: CLIP ViT-B/16 weights not found (OpenAI ViT-B-16.pt or an open_clip state dict)")
    state = _read_state(path)
    visual = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")} or dict(state)
    return load_matching(VisionTransformer(), visual, path, "CLIP ViT-B/16")
