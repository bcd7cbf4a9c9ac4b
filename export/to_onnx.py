"""Export a checkpoint to ONNX: ``python export/to_onnx.py CKPT [--out FILE] [--standard-ops] [--precision fp16]``.

The default file has ``vad``-domain nodes for the fused memory read and top-1 routing (TensorRT plugins)
plus ONNX-function fallbacks, so onnxruntime runs the same file; ``--standard-ops`` writes standard ops only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vadedge.cli import make_parser


def build_parser() -> argparse.ArgumentParser:
    p = make_parser("vad-export-onnx", __doc__.splitlines()[0], [
        "vad-export-onnx runs/train/best.safetensors --out model.onnx",
        "vad-export-onnx runs/train/best.safetensors --standard-ops --precision fp16 --check"])
    p.add_argument("ckpt", help="vadedge checkpoint (.safetensors)")
    p.add_argument("--out", help="output .onnx (unset: next to the checkpoint)")
    p.add_argument("--standard-ops", action="store_true", help="standard ONNX ops only (no vad-domain nodes)")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",  # help on the next line
                   help="fp16: FP16 graph with FP32 islands for similarity, top-k, means and routing")
    p.add_argument("--check", action="store_true",
                   help="run the file in onnxruntime (CPU) against PyTorch afterwards; exit 1 when parity fails")
    p.add_argument("--check-max-t", type=int, default=None,
                   help="longest window (snippets) --check runs; default 1000 (use your deployment window)")
    return p


def main(argv=None) -> int:
    from vadedge.errors import VadInputError, run_cli

    return run_cli(lambda a: run(build_parser().parse_args(a)), argv)


def run(args) -> Path:
    from vadedge.export.onnx_export import export_onnx
    from vadedge.train.checkpoint import load_model

    from vadedge.errors import VadInputError

    if args.check_max_t is not None and args.check_max_t < 1:
        raise VadInputError(f"--check-max-t {args.check_max_t}: must be >= 1 snippet")
    model, info = load_model(args.ckpt)
    suffix = ("" if not args.standard_ops else ".std") + ("" if args.precision == "fp32" else f".{args.precision}")
    out = Path(args.out) if args.out else Path(args.ckpt).with_suffix(f"{suffix}.onnx")
    t0 = time.perf_counter()
    result = export_onnx(model, out, standard_ops=args.standard_ops, precision=args.precision,
                         extra_meta={"checkpoint": str(args.ckpt), "train_metrics": info.metrics or {},
                                     **({"synthetic": True} if info.extra.get("synthetic") else {})})
    ops = ", ".join(f"{k} x{v}" for k, v in result.custom_ops.items()) or "none (standard ops)"
    print(f"{out}: {info.model}, {args.precision}, custom ops: {ops} ({time.perf_counter() - t0:.1f} s)")
    if args.check:
        from vadedge.errors import VadCheckFailed
        from vadedge.export.parity import check_parity

        lines, ok = check_parity(model, out, args.precision, args.check_max_t)
        print("\n".join(lines))
        if not ok:
            raise VadCheckFailed(f"{out}: onnxruntime differs from PyTorch beyond the {args.precision} tolerance (table above)")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
