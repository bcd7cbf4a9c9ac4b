"""Parameters and GFLOPs of UR-DMU, GS-MoE and MoME on the same input, next to the MoME paper's Table 2.

FLOPs are counted by PyTorch's FlopCounterMode (2 per multiply-add, matmuls/convolutions/attention) on one
video of T snippets. MoME is counted on its sparse path (each snippet through its routed expert only),
which is what its GFLOPs mean; the dense export form (every expert on every snippet) is listed too.

    python benchmarks/model_cost.py            # T = 256 (one LGT chunk)
    python benchmarks/model_cost.py --t 1000
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from vadedge.train.models import GSMoEConfig, MoME, create_model

UCF_CLASSES = 13
PAPER = {"urdmu": (3.42, 5.71), "mome": (6.30, 42.29)}  # MoME supplementary Table 2: GFLOPs, parameters (M)


def flops(fn) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops() / 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--t", type=int, default=256, help="snippets in the video")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    models = {
        "urdmu": create_model("urdmu"),
        "gsmoe": create_model("gsmoe", GSMoEConfig(experts=[f"c{i}" for i in range(UCF_CLASSES)])),
        "mome": create_model("mome"),
    }
    print(f"# one video, T = {args.t} snippets, 1 crop; FLOPs = 2 x multiply-adds (torch FlopCounterMode)")
    print(f"{'model':<14} {'params(M)':>10} {'GFLOPs':>8} {'paper GFLOPs':>13} {'paper params(M)':>16}")
    for name, model in models.items():
        model.eval()
        x = torch.randn(1, args.t, model.config.feature_dim)
        params = sum(p.numel() for n, p in model.named_parameters() if "decoder" not in n) / 1e6  # training-only decoders excluded
        rows = [(name, lambda: model(x))]
        if isinstance(model, MoME):
            rows = [("mome(sparse)", lambda: model.run(x, sparse=True)), ("mome(dense)", lambda: model.run(x, sparse=False))]
        for label, fn in rows:
            g_paper, p_paper = PAPER.get(name, (float("nan"), float("nan")))
            print(f"{label:<14} {params:>10.2f} {flops(fn):>8.2f} {g_paper:>13.2f} {p_paper:>16.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
