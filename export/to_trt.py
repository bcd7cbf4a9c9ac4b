"""TensorRT bundle (and engine where the builder is): ``python export/to_trt.py CKPT [--precision fp16] [--max-t 1024]``.

Always writes the deployable bundle (``export/bundle.py``: model.onnx, model.std.onnx, the plugin library or
its CMake command, build_engine.sh with the trtexec command, the sidecar's known fields, a README). Where the
full TensorRT builder and a GPU are present it also builds the engine through the Python API: load the
plugin library, parse into a strongly-typed network, one optimization profile over the snippet count T (and
batch), timing cache, workspace limit, then ``model.plan`` and ``model.json`` (the sidecar the runtime
reads). Elsewhere it exits 0 saying the engine is to be built on the target (``--require-engine``: exit 2).

By default the engine is version-compatible with the plugin library serialized into it, so TensorRT's lean
runtime (``pip install tensorrt-lean-cu13``) runs it on the edge box without the builder.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

from vadedge.cli import make_parser


@dataclass
class EngineSpec:
    precision: str = "fp16"
    min_t: int = 1
    opt_t: int = 64
    max_t: int = 1024
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 4
    workspace_mb: int = 1024
    version_compatible: bool = True
    optimization_level: int = 3

    def validate(self) -> None:
        from vadedge.errors import VadInputError

        if not (1 <= self.min_t <= self.opt_t <= self.max_t):
            raise VadInputError(f"profile over T needs 1 <= min_t <= opt_t <= max_t, got {self.min_t}, {self.opt_t}, {self.max_t}")
        if not (1 <= self.min_batch <= self.opt_batch <= self.max_batch):
            raise VadInputError(f"profile over batch needs 1 <= min <= opt <= max, got {self.min_batch}, {self.opt_batch}, {self.max_batch}")
        if self.precision not in ("fp32", "fp16"):
            raise VadInputError(f"precision must be fp32 or fp16, got {self.precision!r}")


def sidecar_path(engine: str | Path) -> Path:
    return Path(engine).with_suffix(".json")


def _parse_errors(parser) -> str:
    msgs = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
    text = "; ".join(msgs) or "unknown parser error"
    if "plugin" in text.lower():
        text += " (is the plugin library loaded and built for this TensorRT major version?)"
    return text


def build_engine(onnx_path: str | Path, engine_path: str | Path, spec: EngineSpec, plugin_library: str | Path | None,
                 timing_cache: str | Path | None = None, log=print) -> dict:
    """Build and write the engine and its sidecar; returns the sidecar dict. Needs the full TensorRT."""
    from vadedge.atomic import atomic_write_bytes, atomic_write_text
    from vadedge.errors import VadInputError

    from vadedge.export.backend import cuda_devices, find_plugin_library, missing_builder, missing_gpu, tensorrt_builder
    from vadedge.export.onnx_export import read_metadata
    from vadedge.export.plugin_library import load_into_registry

    spec.validate()
    for reason in (missing_builder(), missing_gpu()):
        if reason:
            raise VadInputError(reason)
    trt = tensorrt_builder()
    meta = read_metadata(onnx_path)
    if not meta.get("model"):
        raise VadInputError(f"{onnx_path}: not a vadedge ONNX export (no vadedge.model metadata)")
    custom_ops = json.loads(meta.get("custom_ops", "{}"))
    library = find_plugin_library(plugin_library)
    if custom_ops and library is None:
        raise VadInputError(f"{onnx_path} uses plugins {sorted(custom_ops)}, but the plugin library was not found: build it "
                            "with 'cmake -S . -B build && cmake --build build' or pass --plugins / set VAD_TRT_PLUGINS")
    logger = trt.Logger(trt.Logger.WARNING)
    if library is not None:
        load_into_registry(trt, library)

    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # TensorRT 10; 11 is strongly typed only
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise VadInputError(f"{onnx_path}: TensorRT could not parse it: {_parse_errors(parser)}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_mb << 20)
    config.builder_optimization_level = spec.optimization_level
    if spec.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)  # the edge box brings its own lean runtime
        if library is not None:
            config.plugins_to_serialize = [str(library)]  # the engine carries the plugin library itself
    feature_dim = int(meta["feature_dim"])
    profile = builder.create_optimization_profile()
    profile.set_shape("features", (spec.min_batch, spec.min_t, feature_dim), (spec.opt_batch, spec.opt_t, feature_dim),
                      (spec.max_batch, spec.max_t, feature_dim))
    config.add_optimization_profile(profile)
    cache_bytes = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)

    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise VadInputError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    atomic_write_bytes(engine_path, bytes(plan))
    if timing_cache:
        atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    from vadedge.export.bundle import sidecar_fields

    device = cuda_devices()[0]
    sidecar = sidecar_fields(meta, spec, Path(library) if library else None, Path(onnx_path))
    io = [{"name": network.get_input(i).name, "kind": "input", "dtype": str(network.get_input(i).dtype),
           "shape": list(network.get_input(i).shape)} for i in range(network.num_inputs)]
    io += [{"name": network.get_output(i).name, "kind": "output", "dtype": str(network.get_output(i).dtype),
            "shape": list(network.get_output(i).shape)} for i in range(network.num_outputs)]
    sidecar.update(io=io, tensorrt_version=trt.__version__, built_by="export/to_trt.py",
                   gpu={"name": device["name"], "compute_capability": list(device["compute_capability"])},
                   build_seconds=round(time.perf_counter() - t0, 1))
    atomic_write_text(sidecar_path(engine_path), json.dumps(sidecar, indent=2) + "\n")
    log(f"{engine_path}: {meta['model']} {spec.precision}, T in [{spec.min_t}, {spec.max_t}], TensorRT {trt.__version__} "
        f"({sidecar['build_seconds']} s)")
    return sidecar


def build_parser() -> argparse.ArgumentParser:
    p = make_parser("vad-export-trt", __doc__.splitlines()[0], [
        "vad-export-trt runs/train/best.safetensors                 # bundle (+ engine where the builder exists)",
        "vad-export-trt runs/train/best.safetensors --require-engine --precision fp32 --max-t 256"])
    p.add_argument("ckpt", help="vadedge checkpoint (.safetensors); an exported .onnx builds an engine only (needs the builder)")
    p.add_argument("--out", help="bundle folder (unset: CKPT without suffix + '.trt', e.g. best.trt/)")
    p.add_argument("--plugins", help="libvad_trt_plugins.so to ship (unset: $VAD_TRT_PLUGINS, the package, build/, else "
                                     "built here when nvcc is present)")
    p.add_argument("--cuda-archs", default=None, help="CUDA architectures for a plugin library built here (unset: 75..90 incl. Jetson Orin 87)")
    p.add_argument("--timing-cache", help="timing cache file, read if present and written after the build")
    p.add_argument("--require-engine", action="store_true", help="fail (exit 2) when the engine cannot be built here")
    p.add_argument("--no-version-compatible", action="store_true",
                   help="engine for this exact TensorRT version only (needs the full runtime and the plugin library at run time)")
    defaults = EngineSpec()
    for name in ("precision", "min_t", "opt_t", "max_t", "min_batch", "opt_batch", "max_batch", "workspace_mb", "optimization_level"):
        value = getattr(defaults, name)
        p.add_argument("--" + name.replace("_", "-"), type=type(value), default=value, help=f"EngineSpec.{name}",
                       **({"choices": ["fp32", "fp16"]} if name == "precision" else {}))
    return p


def run(argv=None) -> None:
    from vadedge.errors import VadInputError
    from vadedge.export.backend import missing_builder, missing_gpu
    from vadedge.export.bundle import DEFAULT_CUDA_ARCHS, ENGINE_NAME, ONNX_NAME, write_bundle

    args = build_parser().parse_args(argv)
    spec = EngineSpec(args.precision, args.min_t, args.opt_t, args.max_t, args.min_batch, args.opt_batch, args.max_batch,
                      args.workspace_mb, not args.no_version_compatible, args.optimization_level)
    spec.validate()
    src = Path(args.ckpt)
    if not src.is_file():
        raise VadInputError(f"{src}: file not found")
    # The input is checked first (fast), then the builder, both before the (slow) ONNX export.
    if src.suffix == ".onnx":
        from vadedge.validate import require_finite_onnx

        require_finite_onnx(src)
    else:
        from vadedge.train.checkpoint import load_model

        model, info = load_model(src)
    no_engine = missing_builder() or missing_gpu()
    if no_engine and (args.require_engine or src.suffix == ".onnx"):
        raise VadInputError(no_engine if args.require_engine else
                            f"{src}: a bundle is written from a checkpoint (.safetensors); an .onnx file only builds "
                            f"an engine where TensorRT can ({no_engine})")
    if src.suffix == ".onnx":
        build_engine(src, Path(args.out) if args.out else src.with_suffix(".plan"), spec, args.plugins, args.timing_cache)
        return
    out = Path(args.out) if args.out else src.with_suffix(".trt")
    bundle = write_bundle(model, out, spec, plugin_library=args.plugins, cuda_archs=args.cuda_archs or DEFAULT_CUDA_ARCHS,
                          extra_meta={"checkpoint": str(src), **({"synthetic": True} if info.extra.get("synthetic") else {})})
    print(bundle.listing())
    if no_engine:
        why = no_engine.split(":")[0].split(" (")[0]  # "TensorRT builder not installed" / "no CUDA GPU visible"
        print(f"engine to be built on the target: copy {out}/ there and run build_engine.sh ({why} here)")
        return
    build_engine(out / ONNX_NAME, out / ENGINE_NAME, spec, bundle.plugin_library, args.timing_cache)


def main(argv=None) -> int:
    from vadedge.errors import run_cli

    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
