"""Scoring on Triton Inference Server: ``vad-runtime --triton grpc://HOST:8001`` sends each snippet's frames to
``vad_backbone`` and each window to ``vad_head`` (a repository from ``vad-export-triton``); sources, windows, alerts
and events stay in the runtime. Many cameras share the server's GPUs; the server batches their requests.

Also ``LocalTritonServer``: the real ``tritonserver`` binary shipped in the ``nvidia-pytriton`` wheel, started on
127.0.0.1 with free ports (tests, CPU-only trials of a repository). A server that goes away is retried with backoff
(counted as ``triton_retries``); nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vadedge.errors import VadInputError

from .backends import META_PREFIX, Runner, ScorerUnavailable

BACKBONE, HEAD = "vad_backbone", "vad_head"


def _address(url: str) -> str:
    """``grpc://host:8001`` or ``host:8001`` -> ``host:8001``."""
    url = str(url)
    if "://" in url:
        scheme, url = url.split("://", 1)
        if scheme != "grpc":
            raise VadInputError(f"--triton {scheme}://…: only grpc:// is supported (Triton's gRPC port, usually 8001)")
    if ":" not in url:
        raise VadInputError(f"--triton {url}: expected grpc://HOST:PORT")
    return url.rstrip("/")


class TritonConnection:
    """One gRPC client with retry: a lost server is retried with exponential backoff up to ``retry_s`` seconds."""

    def __init__(self, url: str, timeout_s: float = 10.0, retry_s: float = 30.0, stats=None):
        try:
            import tritonclient.grpc as grpcclient
        except ImportError:
            raise VadInputError("--triton needs tritonclient: pip install 'vadedge[triton]'") from None
        self.grpc, self.address = grpcclient, _address(url)
        self.timeout_s, self.retry_s, self.stats = timeout_s, retry_s, stats
        self.client = grpcclient.InferenceServerClient(self.address)
        self._wait_ready([BACKBONE, HEAD], first=True)

    def _wait_ready(self, models: list[str], first: bool = False) -> None:
        """Until every model is ready; after ``timeout_s`` (first connect: VadInputError) or ``retry_s``
        (later: ScorerUnavailable)."""
        deadline, delay = time.monotonic() + (self.timeout_s if first else self.retry_s), 0.2
        while True:
            try:
                if all(self.client.is_model_ready(m) for m in models):
                    return
                reason = f"models {models} not ready"
            except Exception as exc:  # tritonclient raises InferenceServerException / grpc errors
                reason = str(exc).splitlines()[0]
            if time.monotonic() >= deadline:
                if first:
                    raise VadInputError(f"--triton {self.address}: {reason}")
                raise ScorerUnavailable(f"Triton at {self.address}: {reason}")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def parameters(self, model: str) -> dict[str, str]:
        config = self.client.get_model_config(model, as_json=True)["config"]
        return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}

    def max_batch(self, model: str) -> int:
        """The model's ``max_batch_size`` (the most items of its first axis one request may carry; 0: no batching)."""
        config = self.client.get_model_config(model, as_json=True)["config"]
        return max(int(config.get("max_batch_size", 0)), 1)

    def infer(self, model: str, name: str, x: np.ndarray, outputs: list[str]) -> dict[str, np.ndarray]:
        for attempt in range(2):
            try:
                inp = self.grpc.InferInput(name, list(x.shape), "FP32")
                inp.set_data_from_numpy(np.ascontiguousarray(x, np.float32))
                res = self.client.infer(model, [inp], outputs=[self.grpc.InferRequestedOutput(o) for o in outputs],
                                        client_timeout=self.timeout_s)
                return {o: res.as_numpy(o) for o in outputs}
            except (VadInputError, ScorerUnavailable):
                raise
            except Exception as exc:
                if attempt:
                    raise ScorerUnavailable(f"Triton at {self.address}: {str(exc).splitlines()[0]}") from None
                if self.stats is not None:
                    self.stats.count("triton_retries")
                self._wait_ready([model])  # server restarting: wait (bounded by retry_s), then try once more
        raise AssertionError("unreachable")


class TritonBackboneSession:
    """Stands in for the backbone's onnxruntime session inside ``SnippetEncoder``: ``run(None, {"frames": x})``."""

    def __init__(self, conn: TritonConnection):
        self.conn = conn
        self.config_json = conn.parameters(BACKBONE).get("vadedge.backbone_config")
        if not self.config_json:
            raise VadInputError(f"--triton {conn.address}: {BACKBONE} has no vadedge.backbone_config (re-export it with vad-export-triton)")
        self.max_batch = conn.max_batch(BACKBONE)  # frames per request (SnippetEncoder splits larger batches)

    def run(self, _outputs, feeds: dict) -> list[np.ndarray]:
        return [self.conn.infer(BACKBONE, "frames", feeds["frames"], ["features"])["features"]]


class TritonRunner(Runner):
    """The scoring head on Triton, with the Runner interface: ``run(features [B, T, F]) -> {"scores", "expert"?}``."""

    def __init__(self, conn: TritonConnection):
        meta = {k[len(META_PREFIX):]: v for k, v in conn.parameters(HEAD).items() if k.startswith(META_PREFIX)}
        if "model" not in meta:
            raise VadInputError(f"--triton {conn.address}: {HEAD} has no vadedge metadata (re-export it with vad-export-triton)")
        self.conn = conn
        self.backend, self.model_name = f"triton@{conn.address}", meta["model"]
        self.feature_dim = int(meta["feature_dim"])
        self.expert_names = json.loads(meta.get("expert_names", "[]"))
        self.synthetic = meta.get("synthetic", "").lower() == "true"
        self.outputs = json.loads(meta.get("outputs", '["scores"]'))
        self.model_sha256, self.backbone_sha256 = meta.get("model_sha256", ""), meta.get("backbone_sha256")
        self.max_batch = conn.max_batch(HEAD)

    def run(self, features: np.ndarray) -> dict[str, np.ndarray]:
        return self.conn.infer(HEAD, "features", self.check_input(features), self.outputs)


def triton_parts(url: str, crop_mode: str = "center", stats=None):
    """(runner, encoder) served by the Triton server at ``url``."""
    from .encoder import SnippetEncoder

    conn = TritonConnection(url, stats=stats)
    return TritonRunner(conn), SnippetEncoder.from_session(TritonBackboneSession(conn), crop_mode, source=f"--triton {url}")


# ---------------------------------------------------------------- a real server on this machine
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytriton_server() -> tuple[Path, Path, Path] | str:
    """(tritonserver binary, its libraries, python backend folder) from the nvidia-pytriton wheel, or why not."""
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return "the nvidia-pytriton wheel is not installed (pip install nvidia-pytriton --no-deps)"
    root = Path(list(spec.submodule_search_locations)[0])
    binary, libs = root / "tritonserver/bin/tritonserver", root.parent / "nvidia_pytriton.libs"
    stub = root / f"tritonserver/python_backend_stubs/{sys.version_info.major}.{sys.version_info.minor}/triton_python_backend_stub"
    for p in (binary, libs, stub):
        if not p.exists():
            return f"nvidia-pytriton has no {p}"
    return binary, libs, root / "tritonserver/backends/python"


class LocalTritonServer:
    """``tritonserver`` on 127.0.0.1 with free ports, serving ``repository`` on CPU; a context manager."""

    def __init__(self, repository: str | Path, log_path: str | Path | None = None, python_path: list[str] | None = None):
        found = pytriton_server()
        if isinstance(found, str):
            raise VadInputError(found)
        self.binary, self.libs, python_backend = found
        self.work = Path(tempfile.mkdtemp(prefix="vad-triton-"))
        backends = self.work / "backends" / "python"
        shutil.copytree(python_backend, backends, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(python_backend.parents[1] / f"python_backend_stubs/{sys.version_info.major}.{sys.version_info.minor}/"
                    "triton_python_backend_stub", backends)
        self.repository = Path(repository)
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.log_path = Path(log_path) if log_path else self.work / "server.log"
        # The wheel's python-backend stub is built for NumPy 1.x (nvidia-pytriton pins numpy<2): a folder holding
        # `pip install --target DIR "numpy<2"` goes first on its path (VADEDGE_TRITON_STUB_PATH).
        env_path = os.environ.get("VADEDGE_TRITON_STUB_PATH", "")
        self.python_path = list(python_path or []) + [p for p in env_path.split(os.pathsep) if p]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 60.0) -> "LocalTritonServer":
        import site

        env = dict(os.environ, LD_LIBRARY_PATH=str(self.libs))
        # The python backend embeds the system's libpython: point it at this interpreter's packages.
        env["VADEDGE_TRITON_PYTHONPATH"] = os.pathsep.join(self.python_path + site.getsitepackages() + [str(Path(__file__).resolve().parents[1])])
        cmd = [str(self.binary), f"--model-repository={self.repository}", f"--backend-directory={self.work / 'backends'}",
               f"--grpc-port={self.grpc_port}", f"--http-port={self.http_port}", f"--metrics-port={self.metrics_port}",
               "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
               "--allow-gpu-metrics=false", "--strict-readiness=true"]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise VadInputError(f"tritonserver exited ({self.proc.returncode}); see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=0.5):
                    pass
                import urllib.request

                if urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/v2/health/ready", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise VadInputError(f"tritonserver not ready within {timeout_s:g} s; see {self.log_path}")

    def metrics(self) -> str:
        import urllib.request

        return urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.work, ignore_errors=True)
