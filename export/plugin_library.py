"""Building the plugin library with CMake and checking it against a TensorRT plugin registry."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vadedge.errors import VadInputError

from .backend import DOMAIN, PLUGIN_LIBRARY, PLUGIN_VERSION, REPO

# Every plugin the library must provide, with the ONNX attributes it takes as fields (name -> type).
EXPECTED_CREATORS = {"VadMemoryRead": {"k": "INT32"}, "VadTop1Route": {}}


def build(build_dir: str | os.PathLike = REPO / "build", cuda_architectures: str | None = None, jobs: int = 2,
          tensorrt_include: str | None = None, kernels_only: bool = False) -> Path:
    """Configure and build with CMake; returns the library path (``kernels_only``: the kernel harness library,
    which needs no TensorRT headers). Raises VadInputError with CMake's last lines."""
    build_dir = Path(build_dir)
    configure = ["cmake", "-S", str(REPO), "-B", str(build_dir), f"-DVAD_KERNELS_ONLY={'ON' if kernels_only else 'OFF'}"]
    if cuda_architectures:
        configure.append(f"-DCMAKE_CUDA_ARCHITECTURES={cuda_architectures}")
    if tensorrt_include:
        configure.append(f"-DTENSORRT_INCLUDE_DIR={tensorrt_include}")
    for cmd in (configure, ["cmake", "--build", str(build_dir), "-j", str(jobs)]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
            raise VadInputError(f"{' '.join(cmd[:2])} failed: {tail}")
    lib = build_dir / ("libvad_kernels_harness.so" if kernels_only else PLUGIN_LIBRARY)
    if not lib.is_file():
        raise VadInputError(f"build finished but {lib} is missing")
    return lib


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class CreatorCheck:
    name: str
    found: bool
    version: str = ""
    namespace: str = ""
    fields: dict | None = None
    build_ok: bool = False
    runtime_ok: bool = False

    @property
    def ok(self) -> bool:
        want = EXPECTED_CREATORS[self.name]
        return (self.found and self.version == PLUGIN_VERSION and self.namespace == DOMAIN and self.fields == want
                and self.build_ok and self.runtime_ok)


def _fields(trt, values: dict):
    return trt.PluginFieldCollection([trt.PluginField(k, np.array([v], np.int32), trt.PluginFieldType.INT32)
                                      for k, v in values.items()])


def load_into_registry(trt, library: str | os.PathLike) -> None:
    """Load the library into ``trt``'s plugin registry once per process (a second load returns None)."""
    registry = trt.get_plugin_registry()
    if all(registry.get_creator(n, PLUGIN_VERSION, DOMAIN) is not None for n in EXPECTED_CREATORS):
        return
    if registry.load_library(str(library)) is None:
        raise VadInputError(f"{library}: TensorRT could not load the plugin library (wrong TensorRT major version, "
                            "missing getCreators, or another library already registered these plugins)")


def check_creators(trt, library: str | os.PathLike, sample_fields: dict | None = None) -> list[CreatorCheck]:
    """For each expected plugin: registered under name/version/namespace, declared fields, and plugin creation
    in the BUILD phase (from ONNX attribute values) and the RUNTIME phase (from the same fields, as at deserialize)."""
    load_into_registry(trt, library)
    registry = trt.get_plugin_registry()
    sample_fields = sample_fields or {"VadMemoryRead": {"k": 4}}
    checks = []
    for name in EXPECTED_CREATORS:
        creator = registry.get_creator(name, PLUGIN_VERSION, DOMAIN)
        if creator is None:
            checks.append(CreatorCheck(name, False))
            continue
        declared = {f.name: f.type.name for f in (creator.field_names or [])}
        fc = _fields(trt, sample_fields.get(name, {}))
        built = creator.create_plugin(name, fc, trt.TensorRTPhase.BUILD)
        runtime = creator.create_plugin(name, fc, trt.TensorRTPhase.RUNTIME)
        core = built.get_capability_interface(trt.PluginCapabilityType.CORE) if built is not None else None
        checks.append(CreatorCheck(name, True, creator.plugin_version, creator.plugin_namespace, declared,
                                   built is not None and core.plugin_name == name and core.plugin_namespace == DOMAIN,
                                   runtime is not None))
    return checks
