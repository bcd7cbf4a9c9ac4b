"""What this machine can do (mmdeploy ``check_backend`` style): each probe returns a reason string when
something is missing, so tests skip with it and the CLIs fail with it as a one-line error."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOMAIN = "vad"  # ONNX domain of the custom nodes == TensorRT plugin namespace
PLUGIN_VERSION = "1"
PLUGIN_LIBRARY = "libvad_trt_plugins.so"
MIN_COMPUTE_CAPABILITY = (7, 5)  # the plugin library's oldest CUDA architecture (Turing)


def tensorrt_builder():
    """The full TensorRT Python module (builder + ONNX parser), or None."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError:
        return None
    return trt if hasattr(trt, "Builder") and hasattr(trt, "OnnxParser") else None


def tensorrt_runtime():
    """A TensorRT runtime able to deserialize engines: the full module, else the lean one from PyPI."""
    trt = tensorrt_builder()
    if trt is not None:
        return trt
    try:
        return importlib.import_module("tensorrt_lean")
    except ImportError:
        return None


def missing_builder() -> str | None:
    if tensorrt_builder() is None:
        return ("TensorRT builder not installed (the 'tensorrt' module with Builder/OnnxParser): install it from "
                "JetPack, the TensorRT tarball or an NGC container; PyPI's tensorrt-lean can run engines but not build them")
    return None


def missing_runtime() -> str | None:
    if tensorrt_runtime() is None:
        return "no TensorRT runtime: install 'tensorrt' (full) or 'tensorrt-lean-cu13' (pip install vadedge[trt])"
    return None


def cuda_devices() -> list[dict]:
    """Visible CUDA devices via cuda-python (no torch needed): name and compute capability."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6 layout
        except ImportError:
            return []
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0:
        return []
    devices = []
    for i in range(count):
        err, prop = cudart.cudaGetDeviceProperties(i)
        if int(err) == 0:
            name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
            devices.append({"index": i, "name": name, "compute_capability": (prop.major, prop.minor)})
    return devices


def missing_gpu() -> str | None:
    devices = cuda_devices()
    if not devices:
        return "no CUDA GPU visible (cuda-python reports none, or no driver)"
    cc = devices[0]["compute_capability"]
    if tuple(cc) < MIN_COMPUTE_CAPABILITY:
        return (f"unsupported GPU {devices[0]['name']} (compute capability {cc[0]}.{cc[1]}): the plugins are built for "
                f"{MIN_COMPUTE_CAPABILITY[0]}.{MIN_COMPUTE_CAPABILITY[1]} and newer")
    return None


def missing_nvcc() -> str | None:
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists():
        return "nvcc (CUDA toolkit) not found: the plugin library cannot be built here"
    if shutil.which("cmake") is None:
        return "cmake not found: the plugin library cannot be built here"
    return None


def find_plugin_library(explicit: str | os.PathLike | None = None) -> Path | None:
    """``explicit``, $VAD_TRT_PLUGINS, the installed package's _lib/, then the repository's build/."""
    candidates = [explicit, os.environ.get("VAD_TRT_PLUGINS"), Path(__file__).resolve().parent / "_lib" / PLUGIN_LIBRARY,
                  REPO / "build" / PLUGIN_LIBRARY]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None
