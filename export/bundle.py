"""The deployable TensorRT bundle: everything the target (Jetson, NGC container, TensorRT tarball) needs to
build and run the engine with ``trtexec``, written on any machine, with or without the TensorRT builder.

    BUNDLE/model.onnx            custom ``vad`` ops (TensorRT plugins) + ONNX-function fallbacks, FP32 or FP16 with FP32 islands
    BUNDLE/model.std.onnx        standard ops only, FP32 (onnxruntime, OpenVINO, TensorRT without the plugins)
    BUNDLE/libvad_trt_plugins.so when a CUDA toolchain is here (or a built library was given / found)
    BUNDLE/plugin_src/           the plugins' CMake project; BUNDLE/build_plugins.sh builds it on the target
    BUNDLE/build_engine.sh       the trtexec command (plugin loading, shape profile, precision, --saveEngine),
                                 then writes the engine's full sidecar model.json
    BUNDLE/model.pre.json        the sidecar fields known before the build
    BUNDLE/README.md

The shell scripts need bash, trtexec and python3 (standard library only) on the target.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vadedge.atomic import atomic_write_text

from .backend import PLUGIN_LIBRARY, REPO, find_plugin_library, missing_nvcc

ONNX_NAME, STD_ONNX_NAME, ENGINE_NAME, PRE_SIDECAR = "model.onnx", "model.std.onnx", "model.plan", "model.pre.json"
PLUGIN_SOURCES = ("CMakeLists.txt", "export/plugins")
# CMakeLists.txt's default list: Turing .. Hopper, incl. Jetson Orin (87).
DEFAULT_CUDA_ARCHS = "75;80;86;87;89;90"
SIDECAR_FORMAT = "vadedge-trt-engine/1"


@dataclass
class Bundle:
    root: Path
    files: list[str] = field(default_factory=list)  # relative to root
    plugin_library: Path | None = None
    plugin_note: str = ""  # how the library got here, or why it did not

    def listing(self) -> str:
        return f"{self.root}/: " + ", ".join(self.files)


def sidecar_fields(meta: dict, spec, library: Path | None, onnx_path: Path) -> dict:
    """The sidecar's build-independent fields (the runtime reads these; the build adds TensorRT version, GPU, time)."""
    from .plugin_library import sha256

    outputs = json.loads(meta.get("outputs", '["scores"]'))
    feature_dim = int(meta["feature_dim"])
    io = [{"name": "features", "kind": "input", "dtype": "float32", "shape": [-1, -1, feature_dim]}]
    io += [{"name": n, "kind": "output", "dtype": "float32" if n == "scores" else "int64", "shape": [-1, -1]} for n in outputs]
    return {
        "format": SIDECAR_FORMAT,
        "model": meta["model"],
        "model_config": json.loads(meta["model_config"]),
        "feature_dim": feature_dim,
        "window": {"min_t": spec.min_t, "opt_t": spec.opt_t, "max_t": spec.max_t},
        "batch": {"min": spec.min_batch, "opt": spec.opt_batch, "max": spec.max_batch},
        "precision": spec.precision,
        "version_compatible": spec.version_compatible,
        "io": io,
        "expert_names": json.loads(meta.get("expert_names", "[]")),
        "synthetic": meta.get("synthetic", "").lower() == "true",  # the runtime warns and marks events
        "custom_ops": json.loads(meta.get("custom_ops", "{}")),
        "plugin_library": library.name if library else None,
        "plugin_library_sha256": sha256(library) if library else None,
        "onnx": onnx_path.name,
        "onnx_sha256": sha256(onnx_path),
        "spec": asdict(spec),
    }


def shape(batch: int, t: int, feature_dim: int) -> str:
    return f"features:{batch}x{t}x{feature_dim}"


def trtexec_command(spec, feature_dim: int, plugin: str | None, onnx: str = ONNX_NAME, engine: str = ENGINE_NAME,
                    timing_cache: str = "timing.cache") -> list[str]:
    """trtexec arguments for the engine ``export/to_trt.py`` builds through the Python API (TensorRT >= 10:
    IPluginV3 plugins). Precision: the network is strongly typed, so the FP16 weights and the FP32 casts in the
    ONNX graph are what runs (FP32 islands); ``--fp16`` would conflict with strong typing and is not passed."""
    cmd = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}",
           f"--minShapes={shape(spec.min_batch, spec.min_t, feature_dim)}",
           f"--optShapes={shape(spec.opt_batch, spec.opt_t, feature_dim)}",
           f"--maxShapes={shape(spec.max_batch, spec.max_t, feature_dim)}",
           f"--memPoolSize=workspace:{spec.workspace_mb}M", f"--builderOptimizationLevel={spec.optimization_level}",
           f"--timingCacheFile={timing_cache}", "--skipInference"]
    if plugin:
        cmd.append(f"--dynamicPlugins={plugin}")
    if spec.version_compatible:
        cmd += ["--versionCompatible", "--excludeLeanRuntime"]  # the edge box brings its own lean runtime
        if plugin:
            cmd.append(f"--setPluginsToSerialize={plugin}")  # the engine carries the plugin library
    return cmd


def cmake_command(archs_arg: str, source: str = "plugin_src", build: str = "plugin_build") -> str:
    """``archs_arg``: the CUDA architectures, already shell-quoted (``'75;87'`` or ``"$ARCHS"``)."""
    return (f"cmake -S {source} -B {build} -DCMAKE_BUILD_TYPE=Release -DVAD_BUILD_TESTS=OFF "
            f"-DCMAKE_CUDA_ARCHITECTURES={archs_arg} && cmake --build {build} -j && cp {build}/{PLUGIN_LIBRARY} .")


_ENGINE_SCRIPT = """#!/usr/bin/env bash
# Build the TensorRT engine for THIS machine's GPU and TensorRT ({model}, {precision}, T in [{min_t}, {max_t}],
# batch in [{min_b}, {max_b}]), then write the engine's sidecar {sidecar} that vad-runtime reads.
# Needs trtexec (JetPack: /usr/src/tensorrt/bin; NGC TensorRT containers; the TensorRT tarball's bin/) and python3.
set -euo pipefail
cd "$(dirname "$0")"
TRTEXEC="${{TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}}"
[ -x "$TRTEXEC" ] || {{ echo "error: trtexec not found (set TRTEXEC=/path/to/trtexec)" >&2; exit 2; }}
{plugin_check}
ARGS=({args})
# TensorRT 10 needs --stronglyTyped for the ONNX graph's precision (FP16 with FP32 islands) to be what runs;
# TensorRT 11 networks are always strongly typed and may no longer list the flag.
HELP="$("$TRTEXEC" --help 2>&1 || true)"  # whole text first: grep -q on a pipe can SIGPIPE trtexec under pipefail
if grep -q -- "--stronglyTyped" <<<"$HELP"; then ARGS+=(--stronglyTyped); fi
echo "+ $TRTEXEC ${{ARGS[*]}}"
START=$(date +%s)
"$TRTEXEC" "${{ARGS[@]}}" 2>&1 | tee build_engine.log
[ -s {engine} ] || {{ echo "error: trtexec wrote no {engine} (see build_engine.log)" >&2; exit 1; }}
# The TensorRT that built the engine: trtexec's banner "[TensorRT v110400]" -> 11.4.0.
TRT_VERSION=$(grep -o -m1 "TensorRT v[0-9]*" build_engine.log | sed -E 's/TensorRT v//; s/^([0-9]+)([0-9]{{2}})([0-9]{{2}})$/\\1.\\2.\\3/; s/\\.0([0-9])/.\\1/g' || true)
[ -n "$TRT_VERSION" ] || TRT_VERSION=$(python3 -c "import tensorrt; print(tensorrt.__version__)" 2>/dev/null || echo unknown)
GPU=$(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader 2>/dev/null | head -n1 || true)
python3 - "$TRT_VERSION" "$GPU" "$(( $(date +%s) - START ))" <<'PY'
import hashlib, json, os, sys
version, gpu, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
side = json.load(open("{pre}"))
name, _, cc = gpu.rpartition(",")
side.update(tensorrt_version=version, build_seconds=seconds, built_by="build_engine.sh",
            gpu={{"name": name.strip() or "unknown", "compute_capability": [int(v) for v in cc.strip().split(".")] if cc.strip() else None}})
lib = side.get("plugin_library")
if lib and os.path.isfile(lib):
    side["plugin_library_sha256"] = hashlib.sha256(open(lib, "rb").read()).hexdigest()
tmp = "{sidecar}.tmp"
with open(tmp, "w") as fh:
    json.dump(side, fh, indent=2)
    fh.write("\\n")
os.replace(tmp, "{sidecar}")
print(f"{engine}: TensorRT {{version}}, sidecar {sidecar} written")
PY
"""

_PLUGIN_CHECK = """[ -f {lib} ] || {{ echo "error: {lib} missing: run ./build_plugins.sh first (needs nvcc and cmake)" >&2; exit 2; }}"""

_PLUGINS_SCRIPT = """#!/usr/bin/env bash
# Build {lib} for this machine from plugin_src/ (needs nvcc, cmake >= 3.18; the TensorRT headers are found
# through -DTENSORRT_INCLUDE_DIR, $TENSORRT_DIR, the system (JetPack, libnvinfer-dev), else downloaded).
# Usage: ./build_plugins.sh [CUDA architectures, default "{archs}"; Jetson Orin: 87, Xavier: 72 is unsupported]
set -euo pipefail
cd "$(dirname "$0")"
ARCHS="${{1:-{archs}}}"
{cmd}
echo "built $(pwd)/{lib}"
"""


def _write_script(path: Path, text: str) -> None:
    atomic_write_text(path, text)
    path.chmod(0o755)


def _plugin_library(out: Path, explicit, cuda_archs: str, log) -> tuple[Path | None, str]:
    """Copy a given/found library, else build one when nvcc and cmake are here, else None and the reason."""
    from .plugin_library import build

    found = find_plugin_library(explicit)
    if found is not None:
        shutil.copy2(found, out / PLUGIN_LIBRARY)
        return out / PLUGIN_LIBRARY, f"copied from {found}"
    reason = missing_nvcc()
    if reason:
        return None, reason
    log(f"building {PLUGIN_LIBRARY} for CUDA architectures {cuda_archs} (nvcc) …")
    with tempfile.TemporaryDirectory(prefix="vad_plugins_") as tmp:
        lib = build(tmp, cuda_architectures=cuda_archs)
        shutil.copy2(lib, out / PLUGIN_LIBRARY)
    return out / PLUGIN_LIBRARY, f"built here for CUDA architectures {cuda_archs}"


def write_bundle(model, out: str | Path, spec, *, plugin_library=None, cuda_archs: str = DEFAULT_CUDA_ARCHS,
                 extra_meta: dict | None = None, log=print) -> Bundle:
    """Write the bundle for ``model`` (a vadedge model in eval mode) into ``out``; returns what was written."""
    from .onnx_export import export_onnx, read_metadata

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec.validate()
    export_onnx(model, out / ONNX_NAME, precision=spec.precision, extra_meta=extra_meta)
    export_onnx(model, out / STD_ONNX_NAME, standard_ops=True, extra_meta=extra_meta)
    meta = read_metadata(out / ONNX_NAME)
    bundle = Bundle(out, [ONNX_NAME, STD_ONNX_NAME])
    needs_plugins = bool(json.loads(meta.get("custom_ops", "{}")))
    library, bundle.plugin_note = (_plugin_library(out, plugin_library, cuda_archs, log) if needs_plugins
                                   else (None, "not needed: no custom ops"))
    bundle.plugin_library = library
    if library is not None:
        bundle.files.append(PLUGIN_LIBRARY)
    if needs_plugins and (REPO / PLUGIN_SOURCES[0]).is_file():
        src = out / "plugin_src"
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir()
        shutil.copy2(REPO / PLUGIN_SOURCES[0], src / PLUGIN_SOURCES[0])
        shutil.copytree(REPO / PLUGIN_SOURCES[1], src / PLUGIN_SOURCES[1])
        _write_script(out / "build_plugins.sh", _PLUGINS_SCRIPT.format(lib=PLUGIN_LIBRARY, archs=cuda_archs,
                                                                        cmd=cmake_command('"$ARCHS"')))
        bundle.files += ["plugin_src/", "build_plugins.sh"]
    atomic_write_text(out / PRE_SIDECAR, json.dumps(sidecar_fields(meta, spec, library, out / ONNX_NAME), indent=2) + "\n")
    plugin = PLUGIN_LIBRARY if needs_plugins else None
    args = " \\\n  ".join(shlex.quote(a) for a in trtexec_command(spec, int(meta["feature_dim"]), plugin)[1:])
    _write_script(out / "build_engine.sh", _ENGINE_SCRIPT.format(
        model=meta["model"], precision=spec.precision, min_t=spec.min_t, max_t=spec.max_t, min_b=spec.min_batch,
        max_b=spec.max_batch, sidecar=Path(ENGINE_NAME).with_suffix(".json").name, engine=ENGINE_NAME, pre=PRE_SIDECAR,
        plugin_check=_PLUGIN_CHECK.format(lib=PLUGIN_LIBRARY) if plugin else "", args=args))
    bundle.files += [PRE_SIDECAR, "build_engine.sh", "README.md"]
    atomic_write_text(out / "README.md", _readme(meta, spec, bundle, cuda_archs))
    for path in out.iterdir():  # atomic writes leave 0600 temp-file modes; the bundle is copied to other machines
        if path.is_file() and not path.name.endswith(".sh"):
            path.chmod(0o644)
    return bundle


def _readme(meta: dict, spec, bundle: Bundle, cuda_archs: str) -> str:
    lib = ("`libvad_trt_plugins.so` is included (" + bundle.plugin_note + "); rebuild it on the target with "
           "`./build_plugins.sh ARCH` if TensorRT there refuses it." if bundle.plugin_library else
           f"The plugin library is not included ({bundle.plugin_note}). Build it on the target first:\n\n"
           f"    ./build_plugins.sh 87        # Jetson Orin; default architectures: {cuda_archs}\n\n"
           f"which runs\n\n    {cmake_command(shlex.quote(cuda_archs))}\n")
    if not json.loads(meta.get("custom_ops", "{}")):
        lib = "This model has no custom ops: no plugin library is needed."
    return f"""# vadedge TensorRT bundle: {meta['model']}, {spec.precision}

Built from `{meta.get('checkpoint', '?')}` by vadedge {meta.get('package_version', '?')}.
Input `features` [batch, T, {meta['feature_dim']}] float32; outputs {', '.join(json.loads(meta.get('outputs', '[]')))}.
Engine profile: T in [{spec.min_t}, {spec.max_t}] (optimised for {spec.opt_t}), batch in [{spec.min_batch}, {spec.max_batch}].

| file | what |
|---|---|
| `model.onnx` | custom `vad` ops (TensorRT plugins) + ONNX-function fallbacks; {spec.precision}{' with FP32 islands' if spec.precision == 'fp16' else ''} |
| `model.std.onnx` | standard ops only, FP32: onnxruntime, OpenVINO (`vad-runtime --backend openvino`), TensorRT without plugins |
| `build_engine.sh` | runs `trtexec` (plugin loading, min/opt/max shapes, strongly typed precision, `--saveEngine=model.plan`), then writes `model.json` |
| `model.pre.json` | the engine sidecar's fields known before the build |
| `plugin_src/`, `build_plugins.sh` | the plugins' CMake project, to build `libvad_trt_plugins.so` on the target |

## On the target (Jetson / NGC container / TensorRT tarball; TensorRT >= 10)

{lib}

Then

    ./build_engine.sh                 # model.plan + model.json (TRTEXEC=/path/to/trtexec if not on PATH)
    vad-runtime --model model.plan --backbone backbone.onnx --camera 0

The engine is tied to the GPU it was built on{' and is version-compatible within the TensorRT major version (the plugin library is serialized into it)' if spec.version_compatible else ' and to the exact TensorRT version'}.
Without TensorRT, `vad-runtime --model model.std.onnx` runs the same model on onnxruntime or OpenVINO.
"""
