"""Scoring backends with one interface: ``run(features [B, T, F] float32) -> {"scores": [B, T], "expert"?: [B, T]}``.

TensorRT (engine + sidecar), onnxruntime (CUDA or CPU), OpenVINO (the standard-ops ONNX file; Intel CPU/iGPU
edge boxes) and PyTorch (a checkpoint; training machines only). ``open_onnx_session`` opens any ONNX file
(model or backbone) on onnxruntime or OpenVINO behind one ``run(None, feeds)`` call.
Nothing here imports torch unless the PyTorch backend is chosen.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from vadedge.errors import VadInputError
from vadedge.validate import read_json

BACKENDS = ("auto", "tensorrt", "ort-cuda", "ort-cpu", "openvino", "torch")
META_PREFIX = "vadedge."


class ScorerUnavailable(RuntimeError):
    """A remote scorer (Triton) cannot answer now; the runtime counts and skips the snippet and goes on."""


class Runner:
    backend: str = ""
    model_name: str = ""
    feature_dim: int = 0
    expert_names: list[str] = []
    max_snippets: int | None = None  # None: any T
    max_batch: int | None = None  # most windows one run() takes (a fixed batch axis, an engine profile); None: any
    synthetic: bool = False  # trained on SYNTHETIC data (the demo): the runtime warns and marks every event

    def run(self, features: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def check_input(self, features: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(features, dtype=np.float32)
        if x.ndim != 3 or x.shape[2] != self.feature_dim:
            raise VadInputError(f"features: expected [batch, snippets, {self.feature_dim}], got {list(x.shape)}")
        if self.max_batch is not None and x.shape[0] > self.max_batch:
            raise VadInputError(f"features: batch of {x.shape[0]} exceeds this model's maximum batch {self.max_batch}")
        if self.max_snippets is not None and x.shape[1] > self.max_snippets:
            raise VadInputError(f"features: {x.shape[1]} snippets exceed this engine's profile maximum {self.max_snippets}")
        return x


class OpenVinoSession:
    """An ONNX file compiled by OpenVINO, called like an onnxruntime session: ``run(None, feeds) -> [arrays]``.

    CPU settings, both for correctness (tests/test_openvino.py): inference precision pinned to FP32 (the CPU
    default is BF16 where the CPU has it: backbone features 0.13 off onnxruntime); and the CPU plugin's
    runtime (per-shape primitive) cache off: with it, OpenVINO 2026.4 returned wrong scores whenever T
    changed after a first call (UR-DMU: T = 1 then 17 -> 6.8e-2 off, T = 2 then 200 -> 0.45), a sliding
    window's normal start."""

    def __init__(self, path: Path, device: str = "CPU", threads: int = 0, what: str = "it"):
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except RuntimeError as exc:
            raise VadInputError(f"{path}: OpenVINO cannot read {what} ({str(exc).strip().splitlines()[-1]})") from None
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if device == "CPU":
            config["INFERENCE_PRECISION_HINT"] = "f32"
            config["CPU_RUNTIME_CACHE_CAPACITY"] = 0
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(model, device, config)
        self.request = self.compiled.create_infer_request()
        info = model.get_rt_info()
        framework = info["framework"] if "framework" in info else {}
        self.metadata = {k: framework[k].astype(str) for k in framework.keys()}

    @staticmethod
    def _describe(port) -> SimpleNamespace:
        """name / shape (symbolic dims as "?") / type, as onnxruntime's NodeArg gives them."""
        shape = [d.get_length() if d.is_static else "?" for d in port.get_partial_shape()]
        kind = {"f32": "tensor(float)", "i64": "tensor(int64)", "i32": "tensor(int32)"}.get(port.get_element_type().get_type_name())
        return SimpleNamespace(name=port.get_any_name(), shape=shape, type=kind or str(port.get_element_type()))

    def get_inputs(self) -> list[SimpleNamespace]:
        return [self._describe(p) for p in self.compiled.inputs]

    def get_outputs(self) -> list[SimpleNamespace]:
        return [self._describe(p) for p in self.compiled.outputs]

    def run(self, _names, feeds: dict) -> list[np.ndarray]:
        result = self.request.infer(feeds)
        return [np.array(result[o]) for o in self.compiled.outputs]  # copies: the request reuses its buffers


def batch_limit(session, name: str) -> int | None:
    """Most items along the first axis of input ``name`` one ``session.run`` takes: a session's own ``max_batch``
    (Triton), else the ONNX input's first dimension when it is a fixed number; None: any (a symbolic axis)."""
    limit = getattr(session, "max_batch", None)
    if limit is None and hasattr(session, "get_inputs"):
        dims = {i.name: i.shape for i in session.get_inputs()}.get(name) or [None]
        limit = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
    return limit


def open_onnx_session(path: str | os.PathLike, device: str = "cpu", threads: int = 0, what: str = "it"):
    """(session, metadata) for an ONNX file: ``device`` "cpu"/"cuda" (onnxruntime) or "openvino" (OpenVINO CPU).
    Raises VadInputError when the file cannot be loaded ("onnxruntime cannot load WHAT (...)")."""
    path = Path(path)
    if device == "openvino":
        session = OpenVinoSession(path, "CPU", threads, what)
        return session, session.metadata
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise VadInputError("onnxruntime has no CUDA provider here (install onnxruntime-gpu)")
        providers.insert(0, "CUDAExecutionProvider")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: FP16 graphs log constant-folding warnings on every load
    if threads:
        opts.intra_op_num_threads = threads
    # The runtime runs two sessions (backbone, model) back to back: spinning workers of one would
    # steal the cores the other needs (measured: backbone 107 -> 59 ms p50 on 2 cores).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types (truncated file, bad graph)
        raise VadInputError(f"{path}: onnxruntime cannot load {what} ({str(exc).strip().splitlines()[0]})") from None
    return session, session.get_modelmeta().custom_metadata_map


def standard_ops_variant(path: Path) -> Path:
    """The standard-ops file for an export: PATH itself when it is one (``*.std*.onnx``), else the sibling that
    vad-export-onnx --standard-ops / export/to_trt.py write (``X.onnx`` -> ``X.std.onnx``, ``X.fp16.onnx`` ->
    ``X.std.fp16.onnx``). Raises VadInputError naming what to export when there is none."""
    if ".std" in path.suffixes:
        return path
    stem = path.name[: -len(".onnx")]
    base, _, rest = stem.partition(".")
    for name in (f"{base}.std.{rest}.onnx" if rest else None, f"{base}.std.onnx", f"{stem}.std.onnx"):
        if name and (path.parent / name).is_file():
            return path.parent / name
    raise VadInputError(f"{path}: OpenVINO cannot run the vad custom ops and no standard-ops variant "
                        f"({base}.std.onnx) is beside it: export one with vad-export-onnx CKPT --standard-ops")


class OrtRunner(Runner):
    """An ONNX export on onnxruntime (device "cpu"/"cuda") or, with device "openvino", its standard-ops variant
    on OpenVINO (CPU)."""

    def __init__(self, onnx_path: str | os.PathLike, device: str = "cpu", threads: int = 0):
        path = Path(onnx_path)
        if not path.is_file():
            raise VadInputError(f"{path}: ONNX file not found")
        if device == "openvino":
            path = standard_ops_variant(path)
        self.path = path
        self.session, metadata = open_onnx_session(path, device, threads)
        meta = {k[len(META_PREFIX):]: v for k, v in metadata.items() if k.startswith(META_PREFIX)}
        if "model" not in meta:
            raise VadInputError(f"{path}: not a vadedge ONNX export (no vadedge.model metadata)")
        self.backend = "openvino" if device == "openvino" else f"ort-{device}"
        self.model_name, self.feature_dim = meta["model"], _meta_feature_dim(path, meta)
        _check_model_inputs(path, self.session.get_inputs(), self.feature_dim)
        self.expert_names = json.loads(meta.get("expert_names", "[]"))
        self.synthetic = meta.get("synthetic", "").lower() == "true"
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.max_batch = batch_limit(self.session, "features")  # exports before the dynamic batch axis: 1

    def run(self, features: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self.session.run(None, {"features": self.check_input(features)})))


def _meta_feature_dim(path: Path, meta: dict[str, str]) -> int:
    try:
        dim = int(meta["feature_dim"])
    except (KeyError, ValueError):
        dim = 0
    if dim < 1:
        raise VadInputError(f"{path}: metadata vadedge.feature_dim = {meta.get('feature_dim')!r}, expected a positive integer")
    return dim


def _check_model_inputs(path: Path, inputs, feature_dim: int) -> None:
    """At load, not at the first snippet: one input ``features`` [batch, snippets, feature_dim] (dims may be symbolic)."""
    shapes = {i.name: i.shape for i in inputs}
    types = {i.name: i.type for i in inputs}
    shape = shapes.get("features") or []
    last_ok = len(shape) == 3 and (shape[2] == feature_dim or not isinstance(shape[2], int))
    if len(shapes) != 1 or not last_ok or types.get("features") != "tensor(float)":
        raise VadInputError(f"{path}: inputs {shapes} do not match its vadedge metadata; expected one input "
                            f"'features' [batch, snippets, {feature_dim}]")


class TorchRunner(Runner):
    """A training checkpoint scored with PyTorch (not for the edge box: needs torch)."""

    def __init__(self, ckpt: str | os.PathLike, device: str = "cpu"):
        import torch

        from vadedge.export.onnx_export import InferenceGraph, expert_names, output_names
        from vadedge.train.checkpoint import load_model

        self.torch = torch
        model, info = load_model(ckpt, device)
        self.device = device
        self.graph = InferenceGraph(model.eval(), "fp32").to(device)
        self.backend, self.model_name, self.feature_dim = "torch", info.model, model.config.feature_dim
        self.expert_names = expert_names(model)
        self.synthetic = bool(info.extra.get("synthetic", False))
        self.outputs = output_names(info.model)

    def run(self, features: np.ndarray) -> dict[str, np.ndarray]:
        x = self.torch.from_numpy(self.check_input(features)).to(self.device)
        with self.torch.inference_mode():
            out = self.graph(x)
        out = out if isinstance(out, tuple) else (out,)
        return {name: t.cpu().numpy() for name, t in zip(self.outputs, out)}


SIDECAR_FIELDS = ("tensorrt_version", "model", "feature_dim", "window", "io", "version_compatible", "custom_ops")


def read_sidecar(engine_path: str | os.PathLike) -> dict:
    """The engine's JSON sidecar (ENGINE with .json: written by export/to_trt.py or the bundle's build_engine.sh),
    checked for the fields the runner needs. Raises VadInputError naming the file and the missing fields."""
    path = Path(engine_path)
    side = path.with_suffix(".json")
    if not path.is_file() or not side.is_file():
        raise VadInputError(f"{path}: engine or its sidecar {side.name} not found")
    sidecar = read_json(side, "engine sidecar", SIDECAR_FIELDS)
    if not isinstance(sidecar["window"], dict) or "max_t" not in sidecar["window"]:
        raise VadInputError(f"engine sidecar {side}: missing field(s) ['window.max_t'] (an unfinished build_engine.sh run?)")
    return sidecar


class TrtRunner(Runner):
    """A TensorRT engine (``.plan`` + ``.json`` sidecar from export/to_trt.py); device memory via cuda-python."""

    def __init__(self, engine_path: str | os.PathLike, plugin_library: str | os.PathLike | None = None):
        from vadedge.export.backend import PLUGIN_LIBRARY, find_plugin_library, missing_gpu, missing_runtime, tensorrt_runtime
        from vadedge.export.plugin_library import load_into_registry, sha256

        path = Path(engine_path)
        self.sidecar = read_sidecar(path)
        for reason in (missing_runtime(), missing_gpu()):
            if reason:
                raise VadInputError(reason)
        trt = tensorrt_runtime()
        built = self.sidecar["tensorrt_version"]
        same_major = built.split(".")[0] == trt.__version__.split(".")[0]
        same = built == trt.__version__ or trt.__version__.startswith(built + ".")  # trtexec's banner has no build number
        if not (same or (self.sidecar.get("version_compatible") and same_major)):
            raise VadInputError(f"{path}: engine built by TensorRT {built}, this runtime is {trt.__version__}: rebuild it "
                                "with export/to_trt.py on this machine (or build it version-compatible)")
        # A bundle (export/to_trt.py) keeps the library beside the engine.
        beside = path.parent / PLUGIN_LIBRARY
        library = find_plugin_library(plugin_library or (beside if beside.is_file() else None))
        if self.sidecar.get("custom_ops") and not self.sidecar.get("version_compatible"):
            if library is None:
                raise VadInputError(f"{path} needs the plugin library libvad_trt_plugins.so (pass it or set VAD_TRT_PLUGINS)")
            if self.sidecar.get("plugin_library_sha256") not in (None, sha256(library)):
                raise VadInputError(f"{library}: not the plugin library {path.name} was built with (sha256 differs)")
        if library is not None:
            load_into_registry(trt, library)
        from cuda.bindings import runtime as cudart

        self.trt, self.cudart = trt, cudart
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.runtime.engine_host_code_allowed = True  # version-compatible engines carry the plugin library
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise VadInputError(f"{path}: TensorRT could not deserialize the engine (see its log)")
        self.context = self.engine.create_execution_context()
        self.stream = self._check(cudart.cudaStreamCreate())
        self.backend, self.model_name = "tensorrt", self.sidecar["model"]
        self.feature_dim = int(self.sidecar["feature_dim"])
        self.expert_names = self.sidecar.get("expert_names", [])
        self.synthetic = bool(self.sidecar.get("synthetic", False))
        self.max_snippets = int(self.sidecar["window"]["max_t"])
        self.max_batch = int(self.sidecar.get("batch", {}).get("max", 1))  # the engine's optimisation profile
        self.outputs = [io["name"] for io in self.sidecar["io"] if io["kind"] == "output"]
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)

    def _check(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")
        return rest[0] if len(rest) == 1 else (rest or None)

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self.buffers.get(name, (0, 0))
        if size < nbytes:  # grow only: a sliding window reuses the same buffers every snippet
            if ptr:
                self._check(self.cudart.cudaFree(ptr))
            ptr = self._check(self.cudart.cudaMalloc(max(nbytes, 1)))
            self.buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, features: np.ndarray) -> dict[str, np.ndarray]:
        cudart, trt = self.cudart, self.trt
        x = self.check_input(features)
        self.context.set_input_shape("features", x.shape)
        src = self._buffer("features", x.nbytes)
        self._check(cudart.cudaMemcpyAsync(src, x.ctypes.data, x.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
        self.context.set_tensor_address("features", src)
        host = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            host[name] = np.empty(shape, dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
            self.context.set_tensor_address(name, self._buffer(name, host[name].nbytes))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execution failed")
        for name, arr in host.items():
            self._check(cudart.cudaMemcpyAsync(arr.ctypes.data, self.buffers[name][0], arr.nbytes,
                                               cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        self._check(cudart.cudaStreamSynchronize(self.stream))
        return host

    def __del__(self):
        for ptr, _ in getattr(self, "buffers", {}).values():
            self.cudart.cudaFree(ptr)


def _ort_has_cuda() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def openvino_misfit() -> str | None:
    """Why ``auto`` does not pick OpenVINO here (None: it fits): it must be installed and see Intel hardware
    (an Intel CPU or an Intel GPU device); elsewhere onnxruntime is the better-tuned CPU runtime."""
    try:
        import openvino as ov
    except ImportError:
        return "openvino not installed (pip install vadedge[openvino])"
    core = ov.Core()
    if any(d.startswith("GPU") for d in core.available_devices):
        return None
    cpu = str(core.get_property("CPU", "FULL_DEVICE_NAME"))
    return None if "intel" in cpu.lower() else f"CPU is {cpu}, not Intel"


def make_runner(model: str | os.PathLike, backend: str = "auto", threads: int = 0) -> Runner:
    """``model``: an engine (.plan/.engine), an ONNX file, or a checkpoint (.safetensors).

    ``auto`` picks the fastest available: TensorRT for engines; for ONNX onnxruntime CUDA, then OpenVINO on
    Intel hardware (with the standard-ops variant beside the file), then onnxruntime CPU; PyTorch for checkpoints.
    """
    path = Path(model)
    if backend not in BACKENDS:
        raise VadInputError(f"--backend must be one of {BACKENDS}, got {backend!r}")
    if not path.is_file():
        raise VadInputError(f"{path}: model file not found (expected .plan, .onnx or .safetensors)")
    kind = {".plan": "engine", ".engine": "engine", ".onnx": "onnx", ".safetensors": "ckpt"}.get(path.suffix)
    if kind is None:
        raise VadInputError(f"{path}: unknown model type {path.suffix!r} (expected .plan, .onnx or .safetensors)")
    if backend == "auto":
        backend = {"engine": "tensorrt", "onnx": _auto_onnx_backend(path), "ckpt": "torch"}[kind]
    allowed = {"engine": ("tensorrt",), "onnx": ("ort-cuda", "ort-cpu", "openvino"), "ckpt": ("torch",)}[kind]
    if backend not in allowed:
        raise VadInputError(f"{path}: a {kind} file runs on {allowed}, not {backend!r} (export it first: vad-export-onnx / to_trt.py)")
    if backend == "tensorrt":
        return TrtRunner(path)
    if backend.startswith("ort"):
        return OrtRunner(path, device=backend[4:], threads=threads)
    if backend == "openvino":
        return OrtRunner(path, device="openvino", threads=threads)
    return TorchRunner(path)


def _auto_onnx_backend(path: Path) -> str:
    if _ort_has_cuda():
        return "ort-cuda"
    if openvino_misfit() is None:
        try:
            standard_ops_variant(path)
            return "openvino"
        except VadInputError:
            pass
    return "ort-cpu"
