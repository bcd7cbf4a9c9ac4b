"""``vad-export-triton``: a Triton Inference Server model repository for the backbone and the scoring head.

    vad-export-triton runs/demo/model.onnx --backbone runs/demo/backbone.onnx --out model_repository/
    vad-export-triton model.onnx --backbone backbone.onnx --out repo/ --variant onnxruntime   # NGC Triton, CPU/GPU
    vad-export-triton model.onnx --backbone backbone.onnx --out repo/ --variant tensorrt      # engines built on target

Two models with dynamic batching, called one after the other by ``vad-runtime --triton`` (sources, windows and
alerts stay in the runtime): ``vad_backbone`` (input ``frames``: one row per sampled frame or clip, output
``features``) and ``vad_head`` (input ``features`` [T, D] per window, outputs ``scores`` [T] and, for the mixtures,
``expert`` [T]). Variants (same names, inputs and outputs):

- ``python`` (default): Triton's python backend runs the same ONNX files with onnxruntime; works on every server
  build, CPU-only included (tested here with the ``tritonserver`` binary of the ``nvidia-pytriton`` wheel).
- ``onnxruntime``: Triton's onnxruntime backend (NGC containers); the head must be the standard-ops file
  (``vad-export-onnx --standard-ops``), since the server cannot load our plugin ops' function fallbacks everywhere.
- ``tensorrt``: ``platform: tensorrt_plan``; put the engines built on the target (``build_engine.sh`` of the
  ``to_trt.py`` bundle) at ``vad_*/1/model.plan`` and start the server with the plugin library preloaded
  (``LD_PRELOAD=libvad_trt_plugins.so tritonserver …``) so the ``vad`` plugins are registered before the engine loads.

The backbone's preprocessing config and the head's model metadata travel as ``config.pbtxt`` parameters, so the
runtime needs nothing but the server address.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vadedge.atomic import atomic_write_text
from vadedge.cli import make_parser
from vadedge.errors import VadInputError, run_cli

VARIANTS = ("python", "onnxruntime", "tensorrt")
BACKBONE, HEAD = "vad_backbone", "vad_head"
META_BACKBONE = "vadedge.backbone_config"
META_PREFIX = "vadedge."

_PYTHON_MODEL = '''"""vadedge: runs 1/model.onnx with onnxruntime inside Triton's python backend (written by vad-export-triton).

Requests of one batch that have the same shape are concatenated on the batch axis and run together."""

import json
import os
import sys

# The backend's embedded Python may not see the site-packages that hold numpy and onnxruntime (e.g. the
# nvidia-pytriton wheel's server); VADEDGE_TRITON_PYTHONPATH, set for the server process, adds them.
sys.path[:0] = [p for p in os.environ.get("VADEDGE_TRITON_PYTHONPATH", "").split(os.pathsep) if p]

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        folder = os.path.join(args["model_repository"], args["model_version"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(config.get("parameters", {}).get("intra_op_threads", {}).get("string_value", "0"))
        self.session = ort.InferenceSession(os.path.join(folder, "model.onnx"), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        responses = [None] * len(requests)
        groups = {}
        for i, a in enumerate(arrays):
            groups.setdefault(a.shape[1:], []).append(i)
        for members in groups.values():
            x = np.concatenate([arrays[i] for i in members]) if len(members) > 1 else arrays[members[0]]
            outs = dict(zip([o.name for o in self.session.get_outputs()], self.session.run(None, {self.input: x})))
            start = 0
            for i in members:
                n = arrays[i].shape[0]
                tensors = [pb_utils.Tensor(name, np.ascontiguousarray(outs[name][start:start + n])) for name in self.outputs]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start += n
        return responses
'''


def _dtype(onnx_type: str) -> str:
    return {"tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(int64)": "TYPE_INT64",
            "tensor(int32)": "TYPE_INT32"}[onnx_type]


def _io(session) -> tuple[list[dict], list[dict]]:
    """ONNX inputs/outputs as Triton tensors: the first axis is Triton's batch axis, the rest stay (-1: dynamic)."""
    def rows(items):
        return [{"name": t.name, "data_type": _dtype(t.type),
                 "dims": [d if isinstance(d, int) else -1 for d in t.shape[1:]]} for t in items]

    return rows(session.get_inputs()), rows(session.get_outputs())


def _tensor_block(kind: str, items: list[dict]) -> str:
    rows = ",\n".join(f'  {{ name: "{t["name"]}", data_type: {t["data_type"]}, dims: [ {", ".join(map(str, t["dims"]))} ] }}'
                      for t in items)
    return f"{kind} [\n{rows}\n]\n"


def config_pbtxt(name: str, variant: str, inputs: list[dict], outputs: list[dict], parameters: dict[str, str],
                 max_batch: int, delay_us: int, instances: int = 1, kind: str = "KIND_CPU") -> str:
    """The text-format ModelConfig Triton reads (dynamic batching on, parameters carry our metadata)."""
    head = {"python": 'backend: "python"', "onnxruntime": 'platform: "onnxruntime_onnx"',
            "tensorrt": 'platform: "tensorrt_plan"'}[variant]
    if variant == "tensorrt":
        kind = "KIND_GPU"
    params = "".join(f'parameters {{ key: "{k}" value {{ string_value: {json.dumps(v)} }} }}\n' for k, v in parameters.items())
    return (f'name: "{name}"\n{head}\nmax_batch_size: {max_batch}\n' + _tensor_block("input", inputs)
            + _tensor_block("output", outputs)
            + f"dynamic_batching {{ max_queue_delay_microseconds: {delay_us} }}\n"
            + f"instance_group [ {{ kind: {kind}, count: {instances} }} ]\n" + params)


def _model_dir(out: Path, name: str, variant: str, onnx_file: Path, config: str) -> Path:
    version = out / name / "1"
    version.mkdir(parents=True, exist_ok=True)
    if variant == "tensorrt":
        atomic_write_text(version / "PUT_model.plan_HERE.txt",
                          f"Build the engine on the target GPU from {onnx_file.name} (to_trt.py bundle's build_engine.sh) "
                          "and save it here as model.plan.\n")
    else:
        shutil.copyfile(onnx_file, version / "model.onnx")
    if variant == "python":
        atomic_write_text(version / "model.py", _PYTHON_MODEL)
    atomic_write_text(out / name / "config.pbtxt", config)
    return out / name


def write_repository(model_onnx: str | Path, backbone_onnx: str | Path, out: str | Path, variant: str = "python",
                     max_batch: int = 64, delay_us: int = 2000, instances: int = 1) -> list[Path]:
    """Write ``out/vad_backbone`` and ``out/vad_head``; returns their folders. One-line errors for bad files."""
    import onnxruntime as ort

    if variant not in VARIANTS:
        raise VadInputError(f"--variant must be one of {VARIANTS}, got {variant!r}")
    if max_batch < 1 or delay_us < 0 or instances < 1:
        raise VadInputError("--max-batch and --instances must be >= 1, --max-delay-us >= 0")
    sessions = {}
    for flag, path in (("model", model_onnx), ("--backbone", backbone_onnx)):
        if not Path(path).is_file():
            raise VadInputError(f"{flag} {path}: file not found")
        try:
            sessions[flag] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types
            raise VadInputError(f"{flag} {path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None
    head_meta = {k: v for k, v in sessions["model"].get_modelmeta().custom_metadata_map.items() if k.startswith(META_PREFIX)}
    back_meta = sessions["--backbone"].get_modelmeta().custom_metadata_map
    if "vadedge.model" not in head_meta:
        raise VadInputError(f"{model_onnx}: not a vadedge model export (no vadedge.model metadata)")
    if META_BACKBONE not in back_meta:
        raise VadInputError(f"{backbone_onnx}: not a vadedge backbone export (no {META_BACKBONE} metadata)")
    if variant == "onnxruntime" and json.loads(head_meta.get("vadedge.custom_ops", "{}")):
        raise VadInputError(f"{model_onnx}: has vad custom ops; the onnxruntime variant needs the standard-ops file "
                            "(vad-export-onnx --standard-ops)")
    from vadedge.runtime.calibration import model_hash

    # File hashes: a camera's calibration is valid for these exact files (vad-runtime --triton --calibration).
    head_meta = {**head_meta, "vadedge.model_sha256": model_hash(model_onnx), "vadedge.backbone_sha256": model_hash(backbone_onnx)}
    out = Path(out)
    folders = []
    for name, flag, path, params in ((BACKBONE, "--backbone", backbone_onnx, {META_BACKBONE: back_meta[META_BACKBONE]}),
                                     (HEAD, "model", model_onnx, head_meta)):
        inputs, outputs = _io(sessions[flag])
        config = config_pbtxt(name, variant, inputs, outputs, params, max_batch, delay_us, instances)
        folders.append(_model_dir(out, name, variant, Path(path), config))
    return folders


def main(argv=None) -> int:
    def run(argv):
        # the shared parser: --version, every default shown, the docstring's examples last
        p = make_parser("vad-export-triton", __doc__.splitlines()[0], [ln.strip() for ln in __doc__.splitlines()[2:5]])
        p.add_argument("model", help="the head's ONNX file (vad-export-onnx; --standard-ops for the onnxruntime variant)")
        p.add_argument("--backbone", required=True, help="backbone ONNX (vad-extract --export-backbone)")
        p.add_argument("--out", required=True, help="model repository folder to write")
        p.add_argument("--variant", choices=VARIANTS, default="python", help="Triton backend")
        p.add_argument("--max-batch", type=int, default=64, help="max_batch_size (backbone: frames; head: windows)")
        p.add_argument("--max-delay-us", type=int, default=2000, help="dynamic batching queue delay in microseconds")
        p.add_argument("--instances", type=int, default=1, help="model instances per server")
        args = p.parse_args(argv)
        for folder in write_repository(args.model, args.backbone, args.out, args.variant, args.max_batch,
                                       args.max_delay_us, args.instances):
            print(f"{folder}: {sorted(x.name for x in folder.rglob('*') if x.is_file())}")

    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
