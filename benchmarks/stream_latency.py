"""Streaming latency of vad-runtime: per-stage p50/p99 (decode, preprocess, backbone, head, total) and sustained
snippets/s, for several model backends side by side on the same SYNTHETIC clip (rendered with OpenCV).

The backbone is the EfficientNet-Lite0 ONNX file on onnxruntime in every row (what the edge box runs), except
the OpenVINO row, which runs backbone and model (its standard-ops file) on OpenVINO CPU, as an Intel edge box
would; the other rows differ in the backend that scores the sliding window: onnxruntime CPU, PyTorch CPU, and
on a GPU machine PyTorch CUDA (and onnxruntime CUDA / TensorRT where installed).

    python benchmarks/stream_latency.py                       # UR-DMU (official size, 1280-d input), window 32
    python benchmarks/stream_latency.py --model mome --seconds 60 --window 64
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch

from vadedge.export.backbone_export import export_backbone
from vadedge.export.onnx_export import export_onnx
from vadedge.runtime.app import Runtime, RuntimeConfig
from vadedge.runtime.backends import OrtRunner, TorchRunner, _ort_has_cuda
from vadedge.runtime.encoder import SnippetEncoder
from vadedge.runtime.events import EventLog
from vadedge.runtime.sources import SourceSpec
from vadedge.runtime.stats import STAGES, Stats
from vadedge.runtime.synthetic_scene import FPS, Episode, render
from vadedge.train.checkpoint import save_checkpoint
from vadedge.train.models import MoMEConfig, URDMUConfig, create_model


def build_model(name: str):
    torch.manual_seed(0)
    if name == "mome":  # paper-size MoME would expect 512-d CLIP features: project the backbone's 1280-d in
        return create_model("mome", MoMEConfig(feature_dim=1280, embed_dim=512))
    return create_model(name, URDMUConfig(feature_dim=1280)) if name == "urdmu" else create_model(name)


def run_once(runner, model_file: Path, backbone: Path, video: Path, window: int, threads: int) -> tuple[Stats, float, int]:
    encoder = SnippetEncoder(backbone, threads=threads, device="openvino" if runner.backend == "openvino" else "cpu")
    stats = Stats(window=100_000)
    rt = Runtime(runner, encoder, [SourceSpec("bench", str(video), "file")], RuntimeConfig(window=window, stats_every=0,
                 queue_size=100_000), EventLog(None), stats, log=lambda m: None, model_file=model_file)
    t0 = time.perf_counter()
    rt.run()
    return stats, time.perf_counter() - t0, stats.total("snippets_scored")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="urdmu", choices=["urdmu", "mome"])
    p.add_argument("--seconds", type=float, default=40.0, help="length of the rendered clip")
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--threads", type=int, default=0, help="onnxruntime / torch CPU threads (0 = default)")
    p.add_argument("--work", help="folder for the clip, backbone and model (default: a temporary one)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="vad-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    video = work / "bench_street.mp4"
    frames = int(args.seconds * FPS)
    render(video, frames, [Episode("Fire", frames // 3, frames // 2)], seed=7)
    backbone = work / "backbone.onnx"
    if not backbone.is_file():
        export_backbone("efficientnet_lite0", backbone)
    model = build_model(args.model).eval()
    ckpt = work / f"{args.model}.safetensors"
    save_checkpoint(ckpt, model)
    onnx_path = export_onnx(model, work / f"{args.model}.onnx").path
    rows = [("ort-cpu", lambda: OrtRunner(onnx_path, threads=args.threads), onnx_path),
            ("torch-cpu", lambda: TorchRunner(ckpt, "cpu"), ckpt)]
    if importlib.util.find_spec("openvino") is not None:
        export_onnx(model, work / f"{args.model}.std.onnx", standard_ops=True)  # OpenVINO runs standard ops only
        rows.append(("openvino", lambda: OrtRunner(onnx_path, device="openvino", threads=args.threads), onnx_path))
    if _ort_has_cuda():
        rows.append(("ort-cuda", lambda: OrtRunner(onnx_path, device="cuda"), onnx_path))
    if torch.cuda.is_available():
        rows.append(("torch-cuda", lambda: TorchRunner(ckpt, "cuda"), ckpt))
    print(f"# SYNTHETIC clip {args.seconds:.0f} s ({frames} frames, {frames // 16} snippets), model {args.model}, window "
          f"{args.window}; backbone efficientnet_lite0 on onnxruntime CPU (OpenVINO CPU in the openvino row); "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    header = f"{'backend':<11}" + "".join(f"{s + ' p50/p99 ms':>24}" for s in STAGES) + f"{'snippets/s':>12}{'x realtime':>11}"
    print(header)
    run_once(rows[0][1](), onnx_path, backbone, video, args.window, args.threads)  # warm-up pass (caches, CPU clocks), discarded
    for name, make, model_file in rows:
        stats, wall, n = run_once(make(), model_file, backbone, video, args.window, args.threads)
        cells = []
        for stage in STAGES:
            if stats.percentiles(stage) is None:
                cells.append(f"{'-':>11} / {'-':<10}")
                continue
            p50, p99 = stats.percentiles(stage)
            cells.append(f"{1e3 * p50:>11.1f} / {1e3 * p99:<10.1f}")
        rate = n / wall
        print(f"{name:<11}" + "".join(f"{c:>24}" for c in cells) + f"{rate:>12.2f}{rate * 16 / FPS:>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
