"""An independent re-statement of the official UR-DMU model and test loop (henrryzh1/UR-DMU).

Names and maths as in the public repository (``translayer.py``, ``memory.py``, ``model.py``,
``ucf_test.py``), written without this package's code, so that tests (checkpoint import gives
identical outputs) and ``benchmarks/offline_eval.py --against-official`` (speed and memory of the
research code) compare against the same thing. Dropout is 0 (test mode). The official code
hard-codes ``.cuda()``; here tensors follow the input's device.
"""

from __future__ import annotations

import torch
from torch import nn


class _OfficialAttention(nn.Module):
    def __init__(self, dim, heads, dim_head):
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_qkv = nn.Linear(dim, dim_head * heads * 4, bias=False)
        self.to_out = nn.Sequential(nn.Linear(2 * dim_head * heads, dim), nn.Dropout(0.0))

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v, t = (c.reshape(b, n, self.heads, -1).permute(0, 2, 1, 3) for c in self.to_qkv(x).chunk(4, dim=-1))
        attn1 = (q @ k.transpose(-1, -2) * self.scale).softmax(-1)
        idx = torch.linspace(1, n, n, device=x.device)
        attn2 = torch.exp(-torch.abs(idx * torch.ones(n, device=x.device) - idx.view(-1, 1)) / torch.exp(torch.tensor(1.0)))
        attn2 = (attn2 / attn2.sum(-1))[None, None].repeat(b, self.heads, 1, 1)
        out = torch.cat([attn1 @ v, attn2 @ t], dim=-1).permute(0, 2, 1, 3).reshape(b, n, -1)
        return self.to_out(out)


class _PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.norm, self.fn = nn.LayerNorm(dim), fn

    def forward(self, x):
        return self.fn(self.norm(x))


class OfficialURDMU(nn.Module):
    """Official WSAD test path: [B, T, f] -> scores [B, T]. Defaults are the published UCF model's sizes."""

    def __init__(self, f=1024, d=512, heads=4, dh=128, mlp=512, slots=60):
        super().__init__()
        self.embedding = nn.Module()
        self.embedding.conv_1 = nn.Sequential(nn.Conv1d(f, d, 3, padding=1), nn.ReLU())
        self.selfatt = nn.Module()
        self.selfatt.layers = nn.ModuleList(nn.ModuleList([
            _PreNorm(d, _OfficialAttention(d, heads, dh)),
            _PreNorm(d, nn.Module())]) for _ in range(2))
        for layer in self.selfatt.layers:
            layer[1].fn.net = nn.Sequential(nn.Linear(d, mlp), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp, d), nn.Dropout(0.0))
        for name in ("Amemory", "Nmemory"):
            unit = nn.Module()
            unit.memory_block = nn.Parameter(torch.randn(slots, d) / d ** 0.5)
            setattr(self, name, unit)
        self.encoder_mu = nn.Sequential(nn.Linear(d, d))
        self.encoder_var = nn.Sequential(nn.Linear(d, d))
        self.cls_head = nn.Module()
        self.cls_head.mlp = nn.Sequential(nn.Linear(2 * d, 128), nn.ReLU(), nn.Linear(128, 1), nn.Sigmoid())

    def forward(self, x):
        x = self.embedding.conv_1(x.permute(0, 2, 1)).permute(0, 2, 1)
        for attn, ff in self.selfatt.layers:
            x = attn(x) + x
            x = ff.fn.net(ff.norm(x)) + x
        d = x.shape[-1]
        augs = [torch.sigmoid(x @ m.memory_block.t() / d ** 0.5) @ m.memory_block for m in (self.Amemory, self.Nmemory)]
        x = torch.cat([x, self.encoder_mu[0](augs[0]) + self.encoder_mu[0](augs[1])], -1)
        return self.cls_head.mlp(x).squeeze(-1)

    def official_state_dict(self) -> dict[str, torch.Tensor]:
        """As saved from nn.DataParallel (``module.`` prefix), i.e. as ``ucf_trans_2022.pkl``."""
        return {f"module.{k}": v for k, v in self.state_dict().items()}


@torch.no_grad()
def official_test_scores(model: OfficialURDMU, crops: torch.Tensor) -> torch.Tensor:
    """The official UCF test loop for one video: the loader yields one crop file at a time (batch 1),
    and the predictions of the video's consecutive crop entries are averaged. crops [ncrop, T, f] -> [T]."""
    return torch.stack([model(crop[None])[0] for crop in crops]).mean(0)
