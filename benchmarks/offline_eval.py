"""Offline scoring speed on a test set with UCF-Crime's REAL video lengths and SYNTHETIC features.

Lengths: the 290 test videos of UCF_Annotation.txt (frame counts -> snippets, public I3D convention),
so the length mix (9 to 6,749 snippets per video, 69,355 in all) is the real one. Features are random vectors of
each model's input size (I3D 1024-d for UR-DMU/GS-MoE, CLIP 512-d for MoME): speed does not depend on their values.
Prints snippets/s and total seconds.

    python benchmarks/offline_eval.py                      # UR-DMU, GS-MoE (13 experts), MoME (24 experts), 290 videos, 1 crop, CPU
    python benchmarks/offline_eval.py --crops 10 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vadedge.train.gt import SNIPPET, UCF_PUBLIC_I3D_SHORT, read_ucf_annotations
from vadedge.train.models import GSMoEConfig, create_model, list_models

DEFAULT_ANNOTATION = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucf_crime" / "UCF_Annotation.txt"


def video_lengths(annotation: Path) -> list[int]:
    return [a.frames // SNIPPET - (a.name in UCF_PUBLIC_I3D_SHORT) for a in read_ucf_annotations(annotation)]


# The 13 UCF-Crime anomaly classes: GS-MoE's published configuration has one expert each.
UCF_CLASSES = ["Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting", "RoadAccidents", "Robbery",
               "Shooting", "Shoplifting", "Stealing", "Vandalism"]


def build(name: str) -> torch.nn.Module:
    if name == "gsmoe":
        return create_model("gsmoe", GSMoEConfig(experts=UCF_CLASSES))
    return create_model(name)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--annotation", type=Path, default=DEFAULT_ANNOTATION)
    p.add_argument("--models", default="urdmu,gsmoe,mome", help=f"comma-separated, from {list_models()}")
    p.add_argument("--crops", type=int, default=1)
    p.add_argument("--videos", type=int, default=0, help="score only the first N videos (0 = all)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes over the set; the median is reported")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = p.parse_args(argv)
    if not args.annotation.is_file():
        print(f"error: {args.annotation} not found (pass --annotation UCF_Annotation.txt)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    lengths = video_lengths(args.annotation)
    if args.videos:
        lengths = lengths[: args.videos]
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    feats = {d: [torch.from_numpy(rng.random((1, args.crops, t, d), dtype=np.float32)).to(device) for t in lengths]
             for d in {build(n).config.feature_dim for n in args.models.split(",")}}
    snippets = sum(lengths) * args.crops
    print(f"# {len(lengths)} videos, {sum(lengths)} snippets ({sum(lengths) * SNIPPET} frames) x {args.crops} crop(s); "
          f"SYNTHETIC features, real UCF-Crime lengths; device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'model':<10} {'params':>10} {'total_s(median)':>16} {'snippets/s':>12} {'passes_s':>24}")
    for name in args.models.split(","):
        model = build(name).to(device).eval()
        xs = feats[model.config.feature_dim]
        with torch.inference_mode():
            model(xs[0])  # warm-up
            passes = []
            for _ in range(args.repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for x in xs:
                    model(x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                passes.append(time.perf_counter() - t0)
        med = statistics.median(passes)
        params = sum(t.numel() for t in model.parameters())
        print(f"{name:<10} {params:>10} {med:>16.2f} {snippets / med:>12.0f} {' '.join(f'{s:.2f}' for s in passes):>24}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
