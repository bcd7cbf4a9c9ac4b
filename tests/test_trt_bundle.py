"""``export/to_trt.py CKPT`` on a machine without the TensorRT builder (every machine here): the deployable bundle.

Checked: exit 0 with the one-line "to be built on the target" message, the bundle's files, both ONNX files
pass parity, the plugin library and its sha256, the trtexec line (plugin loading, shape profile, precision,
--saveEngine), and that build_engine.sh writes a sidecar the runtime accepts. The real trtexec cannot run on
any machine of this project (no TensorRT builder, no GPU), so build_engine.sh is run against a STAND-IN
trtexec that records its arguments and writes a placeholder plan: what is tested is the script, not TensorRT.
"""

import hashlib
import json
import os
import shlex
import subprocess
import sys

import pytest

from export_models import FEATURE_DIM, small_model
from vadedge.errors import VadInputError
from vadedge.export.backend import PLUGIN_LIBRARY, missing_builder, missing_gpu, missing_runtime
from vadedge.export.parity import compare
from vadedge.runtime.backends import make_runner, read_sidecar
from vadedge.train.checkpoint import save_checkpoint

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
PROFILE = ["--precision", "fp16", "--min-t", "1", "--opt-t", "64", "--max-t", "512", "--max-batch", "4"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, plugin_build):
    if missing_builder() is None and missing_gpu() is None:
        pytest.skip("TensorRT can build here: the bundle-only path is not taken")
    tmp = tmp_path_factory.mktemp("bundle")
    ckpt = tmp / "best.safetensors"
    model = small_model("mome")
    save_checkpoint(ckpt, model)
    proc = subprocess.run([sys.executable, str(REPO / "export" / "to_trt.py"), str(ckpt), "--plugins",
                           str(plugin_build / PLUGIN_LIBRARY), *PROFILE], capture_output=True, text=True)
    return model, tmp / "best.trt", proc, plugin_build / PLUGIN_LIBRARY


def test_exits_0_saying_the_engine_is_built_on_the_target(bundle):
    _, out, proc, _ = bundle
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith(f"engine to be built on the target: copy {out}/ there and run build_engine.sh")
    assert lines[-2].startswith(f"{out}/: model.onnx, model.std.onnx, {PLUGIN_LIBRARY}")


def test_bundle_files(bundle):
    _, out, _, library = bundle
    for name in ("model.onnx", "model.std.onnx", PLUGIN_LIBRARY, "model.pre.json", "build_engine.sh", "build_plugins.sh",
                 "README.md", "plugin_src/CMakeLists.txt", "plugin_src/export/plugins/vadPlugins.cpp"):
        assert (out / name).is_file(), name
    assert all((out / n).stat().st_mode & 0o044 == 0o044 for n in ("model.onnx", "model.std.onnx", "README.md", "model.pre.json"))
    for script in ("build_engine.sh", "build_plugins.sh"):
        assert os.access(out / script, os.X_OK)
        assert subprocess.run(["bash", "-n", str(out / script)]).returncode == 0
    pre = json.loads((out / "model.pre.json").read_text())
    assert pre["model"] == "mome" and pre["feature_dim"] == FEATURE_DIM and pre["precision"] == "fp16"
    assert pre["window"] == {"min_t": 1, "opt_t": 64, "max_t": 512} and pre["batch"]["max"] == 4
    assert pre["custom_ops"] == {"VadTop1Route": 2, "VadMemoryRead": 4}
    assert pre["plugin_library_sha256"] == hashlib.sha256(library.read_bytes()).hexdigest()
    assert [io["name"] for io in pre["io"]] == ["features", "scores", "expert"]
    readme = (out / "README.md").read_text()
    assert "./build_engine.sh" in readme and "model.std.onnx" in readme


def test_both_onnx_files_pass_parity(bundle):
    model, out, _, _ = bundle
    for name, precision in (("model.onnx", "fp16"), ("model.std.onnx", "fp32")):
        rows = compare(model, out / name, snippets=(1, 17, 200, 512), precision=precision)
        assert all(r.ok() for r in rows), [str(r) for r in rows]


def _trtexec_args(out) -> list[str]:
    text = (out / "build_engine.sh").read_text()
    body = text[text.index("ARGS=(") + len("ARGS=("):]
    return shlex.split(body[:body.index(")\n")].replace("\\\n", " "))


def test_trtexec_line_names_plugins_profile_and_precision(bundle):
    _, out, _, _ = bundle
    args = _trtexec_args(out)
    d = FEATURE_DIM
    for want in ("--onnx=model.onnx", "--saveEngine=model.plan", f"--minShapes=features:1x1x{d}",
                 f"--optShapes=features:1x64x{d}", f"--maxShapes=features:4x512x{d}", f"--dynamicPlugins={PLUGIN_LIBRARY}",
                 f"--setPluginsToSerialize={PLUGIN_LIBRARY}", "--versionCompatible", "--excludeLeanRuntime",
                 "--memPoolSize=workspace:1024M", "--timingCacheFile=timing.cache"):
        assert want in args, want
    assert "--fp16" not in args  # strongly typed: the FP16 graph with its FP32 casts is the precision
    assert "ARGS+=(--stronglyTyped)" in (out / "build_engine.sh").read_text()


STAND_IN = """#!/usr/bin/env bash
# STAND-IN for trtexec (tests only): the real builder is not installable on this project's machines.
if [ "$1" = "--help" ]; then echo "  --stronglyTyped   Create a strongly typed network"; exit 0; fi
printf '%s\\n' "$@" > trtexec_args.txt
echo "&&&& RUNNING TensorRT.trtexec [TensorRT v110400] [b106] # trtexec $*"
for a in "$@"; do case "$a" in --saveEngine=*) echo "placeholder plan" > "${a#--saveEngine=}";; esac; done
"""


def test_build_engine_sh_writes_the_sidecar_the_runtime_reads(bundle, tmp_path):
    _, out, _, library = bundle
    fake = tmp_path / "trtexec"
    fake.write_text(STAND_IN)
    fake.chmod(0o755)
    proc = subprocess.run(["bash", str(out / "build_engine.sh")], capture_output=True, text=True,
                          env={**os.environ, "TRTEXEC": str(fake), "PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr
    assert "model.plan: TensorRT 11.4.0, sidecar model.json written" in proc.stdout
    received = (out / "trtexec_args.txt").read_text().split()
    assert received == _trtexec_args(out) + ["--stronglyTyped"]
    sidecar = read_sidecar(out / "model.plan")
    assert sidecar["tensorrt_version"] == "11.4.0" and sidecar["built_by"] == "build_engine.sh"
    assert sidecar["plugin_library_sha256"] == hashlib.sha256(library.read_bytes()).hexdigest()
    assert sidecar["window"]["max_t"] == 512 and "gpu" in sidecar
    # The runner gets past the sidecar to what this machine lacks (no TensorRT runtime or no GPU).
    with pytest.raises(VadInputError) as info:
        make_runner(out / "model.plan")
    assert str(info.value) == (missing_runtime() or missing_gpu())


def test_build_engine_sh_stops_without_the_plugin_library(bundle, tmp_path):
    _, out, _, _ = bundle
    copy = tmp_path / "b"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    (copy / PLUGIN_LIBRARY).unlink()
    proc = subprocess.run(["bash", str(copy / "build_engine.sh")], capture_output=True, text=True,
                          env={**os.environ, "TRTEXEC": "/bin/true"})
    assert proc.returncode == 2 and "run ./build_plugins.sh first" in proc.stderr


def test_without_cuda_toolchain_the_readme_gives_the_cmake_command(tmp_path, monkeypatch):
    """No library given or found and no nvcc: the bundle says how to build it on the target."""
    import vadedge.export.bundle as bundle_mod
    from vadedge.export.to_trt import EngineSpec

    monkeypatch.setattr(bundle_mod, "find_plugin_library", lambda explicit=None: None)
    monkeypatch.setattr(bundle_mod, "missing_nvcc", lambda: "nvcc (CUDA toolkit) not found: the plugin library cannot be built here")
    b = bundle_mod.write_bundle(small_model("urdmu"), tmp_path / "b", EngineSpec(precision="fp32"), log=lambda *_: None)
    assert b.plugin_library is None and not (tmp_path / "b" / PLUGIN_LIBRARY).exists()
    readme = (tmp_path / "b" / "README.md").read_text()
    assert "cmake -S plugin_src -B plugin_build" in readme and "-DCMAKE_CUDA_ARCHITECTURES='75;80;86;87;89;90'" in readme
    assert "nvcc (CUDA toolkit) not found" in readme
