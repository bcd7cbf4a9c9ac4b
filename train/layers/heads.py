"""Snippet score heads shared by the models."""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """Linear -> ReLU -> Linear -> Sigmoid: per-snippet anomaly score in [0, 1] (UR-DMU's and MoME's detector)."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(x)))).squeeze(-1)
