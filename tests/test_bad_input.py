"""Bad input everywhere (issue 11): every CLI answers a bad file with one ``error: …`` line naming the file and
the field or tensor, exit code 2, no traceback. Each case runs the real entry point on a real (small) file."""

import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from export_models import ENCODER, FEATURE_DIM, small_model
from vadedge.train.checkpoint import _vadedge_metadata, save_checkpoint
from vadedge.train.cli import convert_main, eval_main, gt_main, synth_main, train_main

SHARED = Path(__file__).resolve().parents[2] / "shared"
VIDEO = SHARED / "data" / "video" / "vtest.avi"


def one_line_error(capsys, rc: int, *needles: str) -> str:
    """Exit code 2 and exactly one stderr line, ``error: …``, containing every needle."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---------------------------------------------------------------- shared small files
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "urdmu.safetensors"
    save_checkpoint(path, small_model("urdmu"))
    return path


def rewrite_checkpoint(src: Path, dst: Path, header=None, tensors=None) -> Path:
    """A copy of ``src`` with its header and/or tensors changed (written as safetensors, as a user's edit would)."""
    header = header if header is not None else _vadedge_metadata(src)
    save_file(tensors if tensors is not None else load_file(str(src)), str(dst), metadata={"vadedge": json.dumps(header)})
    return dst


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """A small SYNTHETIC feature set written by vad-synth (feature_dim matches the small test models)."""
    root = tmp_path_factory.mktemp("synth")
    assert synth_main([str(root), "--feature-dim", str(FEATURE_DIM), "--crops", "1", "--train-normal", "4",
                       "--train-abnormal", "4", "--test-normal", "2", "--test-abnormal", "2",
                       "--min-len", "8", "--max-len", "16"]) == 0
    return root


# ---------------------------------------------------------------- checkpoint config values
def _header_with(ckpt: Path, **model_config):
    header = _vadedge_metadata(ckpt)
    header["model_config"] = {**header["model_config"], **model_config}
    return header


CONFIG_CASES = {
    "negative": ({"feature_dim": -5}, "model_config[urdmu].feature_dim: expected an integer >= 0"),
    "list for int": ({"dim": [32]}, "model_config[urdmu].dim: expected int"),
    "zero heads": ({"heads": 0}, "temporal.blocks.0.attn.qkvt.weight"),
    "dropout out of range": ({"dropout": 1.5}, "dropout probability"),
    "non-finite": ({"w_kl": float("nan")}, "model_config[urdmu].w_kl: expected a finite number"),
    "shape disagrees with weights": ({"feature_dim": FEATURE_DIM + 8}, "tensor 'embed.conv.weight' has shape"),
    "unknown string option": ({"local_norm": "diagonal"}, "local_norm"),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_checkpoint_config_value(case, ckpt, tmp_path, capsys):
    from vadedge.export.to_onnx import main as export_main

    change, needle = CONFIG_CASES[case]
    bad = rewrite_checkpoint(ckpt, tmp_path / "bad.safetensors", _header_with(ckpt, **change))
    rc = export_main([str(bad), "--out", str(tmp_path / "x.onnx")])
    one_line_error(capsys, rc, str(bad), needle)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("field,value", [("step", -3), ("step", "7"), ("model_config", None)])
def test_checkpoint_header_field(field, value, ckpt, tmp_path, capsys):
    from vadedge.export.to_onnx import main as export_main

    header = _vadedge_metadata(ckpt)
    if value is None:
        del header[field]
    else:
        header[field] = value
    bad = rewrite_checkpoint(ckpt, tmp_path / "bad.safetensors", header)
    one_line_error(capsys, export_main([str(bad)]), str(bad), field)


# ---------------------------------------------------------------- NaN / inf weights
def _poisoned(ckpt: Path, dst: Path, value: float) -> Path:
    tensors = load_file(str(ckpt))
    tensors["head.fc2.weight"][0, 0] = value
    return rewrite_checkpoint(ckpt, dst, tensors=tensors)


def _run_eval(bad, tmp, synth):
    return eval_main(["--ckpt", str(bad), "--test-list", str(synth / "test.list"), "--root", str(synth),
                      "--gt", str(synth / "test_gt.npz")])


def _run_export(bad, tmp, synth):
    from vadedge.export.to_onnx import main

    return main([str(bad), "--out", str(tmp / "x.onnx")])


def _run_trt(bad, tmp, synth):
    from vadedge.export.to_trt import main

    return main([str(bad), "--out", str(tmp / "x.plan")])


def _run_runtime(bad, tmp, synth):
    from vadedge.runtime.app import main

    if not VIDEO.is_file():
        pytest.skip(f"{VIDEO} not found")
    return main(["--model", str(bad), "--backbone", str(tmp / "none.onnx"), "--video", str(VIDEO),
                 "--events", str(tmp / "events.jsonl")])


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("cli", [_run_eval, _run_export, _run_trt, _run_runtime], ids=["vad-eval", "vad-export-onnx", "to_trt", "vad-runtime"])
def test_non_finite_checkpoint_weights(cli, value, ckpt, synth, tmp_path, capsys):
    bad = _poisoned(ckpt, tmp_path / "nan.safetensors", value)
    one_line_error(capsys, cli(bad, tmp_path, synth), str(bad), "tensor 'head.fc2.weight'", "NaN or inf")
    assert not list(tmp_path.glob("x.*"))


def test_non_finite_onnx_weights_to_trt(ckpt, tmp_path, capsys):
    """to_trt also takes an exported ONNX: its initializers are checked before any builder work."""
    import onnx
    from onnx import numpy_helper

    from vadedge.export.to_onnx import main as export_main
    from vadedge.export.to_trt import main as trt_main

    assert export_main([str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 0
    proto = onnx.load(str(tmp_path / "m.onnx"))
    init = next(t for t in proto.graph.initializer if numpy_helper.to_array(t).dtype == np.float32 and numpy_helper.to_array(t).size > 1)
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] = np.nan
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(proto, str(tmp_path / "nan.onnx"))
    capsys.readouterr()
    one_line_error(capsys, trt_main([str(tmp_path / "nan.onnx")]), "nan.onnx", repr(init.name), "NaN or inf")


def test_nan_scores_file(synth, tmp_path, capsys):
    """vad-eval printed AUC 22.76 on all-NaN scores: non-finite scores are refused, naming the video."""
    gt = np.load(synth / "test_gt.npz")
    scores = {k: np.full(len(gt[k]) // 16, np.nan, np.float32) for k in gt.files}
    np.savez(tmp_path / "scores.npz", **scores)
    rc = eval_main(["--scores", str(tmp_path / "scores.npz"), "--gt", str(synth / "test_gt.npz")])
    one_line_error(capsys, rc, "scores.npz", "snippet scores", "NaN or inf")


# ---------------------------------------------------------------- ground truth files
def _gt_labels(path: Path, synth: Path):
    gt = dict(np.load(synth / "test_gt.npz"))
    first = next(k for k in sorted(gt) if gt[k].any())
    gt[first] = gt[first].astype(np.int64) * 2  # labels 0/2
    np.savez(path, **gt)


def _gt_float_nan(path: Path, synth: Path):
    gt = {k: v.astype(np.float32) for k, v in np.load(synth / "test_gt.npz").items()}
    gt[sorted(gt)[0]][0] = np.nan
    np.savez(path, **gt)


def _gt_2d(path: Path, synth: Path):
    gt = dict(np.load(synth / "test_gt.npz"))
    gt[sorted(gt)[0]] = gt[sorted(gt)[0]][None]
    np.savez(path, **gt)


def _gt_object(path: Path, synth: Path):
    gt = dict(np.load(synth / "test_gt.npz"))
    gt[sorted(gt)[0]] = np.array([[0, 1], [1]], dtype=object)
    np.savez(path, **gt)


def _gt_corrupt(path: Path, synth: Path):
    path.write_bytes((synth / "test_gt.npz").read_bytes()[:200])


def _gt_not_zip(path: Path, synth: Path):
    path.write_bytes(b"label,frame\n0,1\n")


def _gt_single_array(path: Path, synth: Path):
    with open(path, "wb") as fh:
        np.save(fh, np.zeros(16, np.uint8))


GT_CASES = {"labels 0/2": (_gt_labels, "frame labels must be 0 or 1, found [2]"),
            "NaN label": (_gt_float_nan, "frame labels must be 0 or 1"),
            "2-D labels": (_gt_2d, "expected 1-D frame labels"),
            "object array": (_gt_object, "object (pickled) arrays"),
            "truncated": (_gt_corrupt, "not a readable .npz"),
            "not a zip": (_gt_not_zip, "not a readable .npz"),
            "single .npy saved as .npz": (_gt_single_array, "a single .npy array")}


@pytest.mark.parametrize("case", GT_CASES)
def test_ground_truth_file(case, synth, tmp_path, capsys):
    make, needle = GT_CASES[case]
    make(tmp_path / "gt.npz", synth)
    gt = np.load(synth / "test_gt.npz")
    np.savez(tmp_path / "scores.npz", **{k: np.zeros(len(gt[k]) // 16, np.float32) for k in gt.files})
    rc = eval_main(["--scores", str(tmp_path / "scores.npz"), "--gt", str(tmp_path / "gt.npz")])
    one_line_error(capsys, rc, "gt.npz", needle)


def test_corrupt_scores_file(synth, tmp_path, capsys):
    (tmp_path / "scores.npz").write_bytes(b"PK\x03\x04 truncated")
    rc = eval_main(["--scores", str(tmp_path / "scores.npz"), "--gt", str(synth / "test_gt.npz")])
    one_line_error(capsys, rc, "scores file", "scores.npz", "not a readable .npz")


# ---------------------------------------------------------------- official .pkl (vad-convert)
def _official_state() -> dict:
    from official_urdmu import OfficialURDMU as _Official

    torch.manual_seed(0)
    return {f"module.{k}": v for k, v in _Official(f=64, d=32, heads=4, dh=8, mlp=32, slots=20).state_dict().items()}


def _drop(name):
    return lambda s: {k: v for k, v in s.items() if k != name}


def _reshape(name, shape):
    return lambda s: {**s, name: torch.zeros(shape)}


def _poison(name):
    def change(s):
        t = s[name].clone()
        t.view(-1)[0] = float("nan")
        return {**s, name: t}
    return change


PKL_CASES = {
    "empty dict": (lambda s: {}, "state dict is empty"),
    "missing conv": (_drop("module.embedding.conv_1.0.weight"), "'embedding.conv_1.0.weight' missing"),
    "missing head": (_drop("module.cls_head.mlp.0.weight"), "'cls_head.mlp.0.weight' missing"),
    "1-D memory": (_reshape("module.Amemory.memory_block", (20,)), "'Amemory.memory_block' has shape [20]"),
    "wrong-shape output layer": (_reshape("module.cls_head.mlp.2.weight", (1, 7)), "'module.cls_head.mlp.2.weight' has shape [1, 7]"),
    "wrong-shape norm": (_reshape("module.selfatt.layers.1.0.norm.weight", (5,)), "'module.selfatt.layers.1.0.norm.weight' has shape [5]"),
    "NaN weight": (_poison("module.selfatt.layers.0.1.fn.net.3.weight"), "tensor 'module.selfatt.layers.0.1.fn.net.3.weight' has 1 of"),
}


@pytest.mark.parametrize("case", PKL_CASES)
def test_official_pkl(case, tmp_path, capsys):
    change, needle = PKL_CASES[case]
    torch.save(change(_official_state()), tmp_path / "ucf_trans_2022.pkl")
    rc = convert_main([str(tmp_path / "ucf_trans_2022.pkl"), str(tmp_path / "out.safetensors")])
    one_line_error(capsys, rc, "official checkpoint", "ucf_trans_2022.pkl", needle)
    assert not (tmp_path / "out.safetensors").exists()


def test_official_pkl_control(tmp_path):
    """The unchanged state dict converts (so the cases above fail for their one fault)."""
    torch.save(_official_state(), tmp_path / "ok.pkl")
    assert convert_main([str(tmp_path / "ok.pkl"), str(tmp_path / "ok.safetensors")]) == 0


# ---------------------------------------------------------------- text files: UTF-8, annotations
LATIN1 = "Vid\xe9o_caf\xe9".encode("latin-1")

UCF_GOOD = "Abuse/Abuse028_x264.mp4 1412 Abuse 165 240 -1 -1\n"
ANNOTATION_CASES = {
    "ucf not UTF-8": ("ucf", UCF_GOOD.encode() + b"Abuse/" + LATIN1 + b".mp4 800 Abuse 10 20 -1 -1\n", "not UTF-8 text (byte 0xe9 on line 2)"),
    "ucf negative frames": ("ucf", b"Abuse/Abuse028_x264.mp4 -1412 Abuse 165 240 -1 -1\n", ":1: frame count -1412 is negative"),
    "ucf reversed": ("ucf", UCF_GOOD.encode() + b"Abuse/Abuse029_x264.mp4 1000 Abuse 240 165 -1 -1\n", ":2: interval 240 165 is reversed"),
    "ucf half-open": ("ucf", b"Abuse/Abuse028_x264.mp4 1412 Abuse 165 -1 -1 -1\n", "interval 165 -1 has a negative frame"),
    "ucf start past end": ("ucf", b"Abuse/Abuse028_x264.mp4 100 Abuse 165 240 -1 -1\n", "starts past the video's 100 frames"),
    "temporal reversed": ("ucf", b"Abuse028_x264.mp4  Abuse  240  165  -1  -1\n", "interval 240 165 is reversed"),
    "xd reversed": ("xd", b"v=abc__#1_label_B1-0-0 50 20\n", "interval 50 20 is reversed"),
    "xd negative": ("xd", b"v=abc__#1_label_B1-0-0 -5 20\n", "interval -5 20 has a negative frame"),
    "xd not UTF-8": ("xd", LATIN1 + b" 5 20\n", "not UTF-8 text"),
}


@pytest.mark.parametrize("case", ANNOTATION_CASES)
def test_annotation_file(case, tmp_path, capsys):
    dataset, data, needle = ANNOTATION_CASES[case]
    (tmp_path / "ann.txt").write_bytes(data)
    rc = gt_main(["--dataset", dataset, "--annotation", str(tmp_path / "ann.txt"), "--out", str(tmp_path / "gt.npz")])
    one_line_error(capsys, rc, "ann.txt", needle)
    assert not (tmp_path / "gt.npz").exists()


def test_reversed_interval_control(tmp_path, capsys):
    """The same line with its interval the right way round gives 75 anomalous frames (it gave 0 reversed)."""
    (tmp_path / "ann.txt").write_text(UCF_GOOD)
    assert gt_main(["--dataset", "ucf", "--annotation", str(tmp_path / "ann.txt"), "--out", str(tmp_path / "gt.npz")]) == 0
    assert int(np.load(tmp_path / "gt.npz")["Abuse028_x264"].sum()) == 75


def test_order_file_not_utf8(tmp_path, capsys):
    (tmp_path / "ann.txt").write_text(UCF_GOOD)
    (tmp_path / "order.txt").write_bytes(b"Abuse028_x264\n" + LATIN1 + b"\n")
    rc = gt_main(["--dataset", "ucf", "--annotation", str(tmp_path / "ann.txt"), "--order", str(tmp_path / "order.txt"),
                  "--out", str(tmp_path / "gt.npz")])
    one_line_error(capsys, rc, "order file", "order.txt", "not UTF-8 text (byte 0xe9 on line 2)")


@pytest.mark.parametrize("cli", ["vad-train", "vad-eval", "vad-gt"])
def test_list_file_not_utf8(cli, synth, ckpt, tmp_path, capsys):
    lines = (synth / "test.list").read_bytes().splitlines()
    (tmp_path / "bad.list").write_bytes(b"\n".join(lines[:3] + [b"features/" + LATIN1 + b"__0.npy"]) + b"\n")
    bad = str(tmp_path / "bad.list")
    if cli == "vad-train":
        rc = train_main(["--train-list", bad, "--root", str(synth), "--out", str(tmp_path / "run"), "--no-progress"])
    elif cli == "vad-eval":
        rc = eval_main(["--ckpt", str(ckpt), "--test-list", bad, "--root", str(synth), "--gt", str(synth / "test_gt.npz")])
    else:
        (tmp_path / "ann.txt").write_text(UCF_GOOD)
        rc = gt_main(["--dataset", "ucf", "--annotation", str(tmp_path / "ann.txt"), "--test-list", bad, "--root", str(synth),
                      "--out", str(tmp_path / "gt.npz")])
    one_line_error(capsys, rc, "list file", "bad.list", "not UTF-8 text (byte 0xe9 on line 4)")


# ---------------------------------------------------------------- vad-synth arguments
SYNTH_CASES = [("--min-len", "0", "min_len"), ("--min-len", "1", "min_len"), ("--max-len", "5", "max_len"),
               ("--feature-dim", "2", "feature_dim"), ("--crops", "0", "crops"), ("--train-normal", "0", "train_normal"),
               ("--test-abnormal", "-1", "test_abnormal"), ("--noise", "-1", "noise"), ("--noise", "nan", "noise"),
               ("--crop-noise", "-0.5", "crop_noise"), ("--seed", "-3", "seed")]


@pytest.mark.parametrize("flag,value,field", SYNTH_CASES)
def test_synth_arguments(flag, value, field, tmp_path, capsys):
    rc = synth_main([str(tmp_path / "out"), flag, value, "--min-len", "8" if flag != "--min-len" else value,
                     *(["--max-len", "16"] if flag != "--max-len" else [])])
    one_line_error(capsys, rc, f"{field} ({flag})")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- training inputs
SMALL = ["--set", f"feature_dim={FEATURE_DIM}", "--set", "dim=16", "--set", "heads=2", "--set", "head_dim=8",
         "--set", "mlp_dim=16", "--set", "head_hidden=8", "--set", "normal_slots=4", "--set", "abnormal_slots=4",
         "--seq-len", "8", "--no-progress"]


def _train(synth, out, iterations, *extra, batch="2"):
    return train_main(["--train-list", str(synth / "train.list"), "--root", str(synth), "--out", str(out),
                       "--iterations", str(iterations), "--batch-normal", batch, "--batch-abnormal", batch,
                       "--eval-every", "2", *SMALL, *extra])


def test_nan_features_with_workers(synth, tmp_path, capsys):
    """A NaN feature file read in a DataLoader worker: one line naming the file, not the worker's traceback."""
    data = tmp_path / "data"
    shutil.copytree(synth, data)
    for path in (data / "features").rglob("*.npy"):
        arr = np.load(path)
        arr[0, 0] = np.nan
        np.save(path, arr)
    rc = _train(data, tmp_path / "run", 2, "--num-workers", "2")
    one_line_error(capsys, rc, "feature file", ".npy: contains NaN or inf")


def _feature_set(root: Path, shapes: dict[str, tuple]) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    for name, shape in shapes.items():
        np.save(root / f"{name}.npy", rng.normal(size=shape).astype(np.float32))
    (root / "train.list").write_text("".join(f"{name}.npy\n" for name in shapes))
    return root


CROP_CASES = {
    # [ncrop, T, D] files: ten crops first, 40 snippets.
    "crop axis first": ({"Normal_Videos_001_x264": (10, 40, FEATURE_DIM), "Abuse001_x264": (10, 40, FEATURE_DIM)},
                        "looks crop-first [ncrop, T, D]"),
    # One short video saved crop-first among [T, 10, D] files: its 'crop' count is its length.
    "one short file crop-first": ({"Normal_Videos_001_x264": (40, 10, FEATURE_DIM), "Abuse001_x264": (10, 6, FEATURE_DIM)},
                                  "Abuse001_x264.npy: 6 crops on axis 1, other files have 10"),
}


@pytest.mark.parametrize("case", CROP_CASES)
def test_crop_axis_first(case, tmp_path, capsys):
    shapes, needle = CROP_CASES[case]
    root = _feature_set(tmp_path / "feats", shapes)
    rc = _train(root, tmp_path / "run", 1, batch="1")
    one_line_error(capsys, rc, "feature file", ".npy", needle)


def test_crop_axis_control(tmp_path):
    """The same data as [T, ncrop, D] trains."""
    root = _feature_set(tmp_path / "feats", {"Normal_Videos_001_x264": (40, 10, FEATURE_DIM), "Abuse001_x264": (40, 10, FEATURE_DIM)})
    assert _train(root, tmp_path / "run", 1, batch="1") == 0


def test_resume_from_mismatched_steps(synth, tmp_path, capsys):
    """last.safetensors and last.state.safetensors from different steps: refused, and the run folder is untouched."""
    assert _train(synth, tmp_path / "a", 2) == 0
    assert _train(synth, tmp_path / "b", 4) == 0
    shutil.copy(tmp_path / "a" / "last.state.safetensors", tmp_path / "b" / "last.state.safetensors")
    before = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir() if p.is_file()}
    capsys.readouterr()
    rc = _train(synth, tmp_path / "b", 6, "--resume")
    one_line_error(capsys, rc, "last.safetensors", "is from step 4", "last.state.safetensors", "from step 2")
    assert {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir() if p.is_file()} == before
    # Matching files resume.
    assert _train(synth, tmp_path / "a", 4, "--resume") == 0


# ---------------------------------------------------------------- runtime model files
def _onnx_model(path: Path, *, meta: dict | None, inputs=None, feature_dim: int = 16):
    """A tiny real ONNX scorer: features [B, T, F] -> sigmoid(mean over F) [B, T], with vadedge metadata."""
    import onnx
    from onnx import TensorProto, helper

    inputs = inputs or [("features", ["B", "T", feature_dim])]
    name = inputs[0][0]
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", [name], ["m"], axes=[-1], keepdims=0), helper.make_node("Sigmoid", ["m"], ["scores"])],
        "scorer", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["B", "T"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (meta or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def _backbone(path: Path, meta: str | None):
    """A tiny real ONNX 'backbone': frames [N, 3, 224, 224] -> [N, 8] (channel means), with backbone metadata."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["frames"], ["m"], axes=[2, 3], keepdims=0),
         helper.make_node("Tile", ["m", "reps"], ["features"])], "backbone",
        [helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor("reps", TensorProto.INT64, [2], [1, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if meta is not None:
        model.metadata_props.add(key="vadedge.backbone_config", value=meta)
    onnx.save(model, str(path))
    return path


GOOD_META = {"vadedge.model": "urdmu", "vadedge.feature_dim": "16"}


def _runtime(model: Path, backbone: Path, tmp_path: Path) -> int:
    from vadedge.runtime.app import main

    if not VIDEO.is_file():
        pytest.skip(f"{VIDEO} not found")
    return main(["--model", str(model), "--backbone", str(backbone), "--video", str(VIDEO), "--events", str(tmp_path / "e.jsonl")])


SIDECAR_CASES = {"not JSON": (b"engine built by trtexec\n", "not valid JSON"),
                 "not an object": (b"[1, 2]", "expected a JSON object"),
                 "missing fields": (b'{"model": "urdmu"}', "missing field(s) ['tensorrt_version'"),
                 "not UTF-8": (b'{"model": "' + LATIN1 + b'"}', "not UTF-8")}


@pytest.mark.parametrize("case", SIDECAR_CASES)
def test_engine_sidecar(case, tmp_path, capsys):
    data, needle = SIDECAR_CASES[case]
    (tmp_path / "m.plan").write_bytes(b"\x00" * 64)
    (tmp_path / "m.json").write_bytes(data)
    one_line_error(capsys, _runtime(tmp_path / "m.plan", tmp_path / "b.onnx", tmp_path), "engine sidecar", "m.json", needle)


ORT_CASES = {
    "input named x": (dict(inputs=[("x", ["B", "T", 16])]), "inputs {'x'"),
    "rank 2": (dict(inputs=[("features", ["T", 16])]), "expected one input 'features' [batch, snippets, 16]"),
    "last dim differs": (dict(inputs=[("features", ["B", "T", 32])]), "expected one input 'features' [batch, snippets, 16]"),
    "two inputs": (dict(inputs=[("features", ["B", "T", 16]), ("mask", ["B", "T", 16])]), "'mask'"),
    "bad feature_dim metadata": (dict(meta={**GOOD_META, "vadedge.feature_dim": "1280d"}), "vadedge.feature_dim = '1280d'"),
    "no metadata": (dict(meta={}), "not a vadedge ONNX export"),
}


@pytest.mark.parametrize("case", ORT_CASES)
def test_model_onnx_inputs_checked_at_load(case, tmp_path, capsys):
    kwargs, needle = ORT_CASES[case]
    model = _onnx_model(tmp_path / "m.onnx", **{"meta": GOOD_META, **kwargs})
    one_line_error(capsys, _runtime(model, tmp_path / "b.onnx", tmp_path), "m.onnx", needle)


def _cfg(**change):
    from vadedge.runtime.preprocess import BackboneConfig

    return json.dumps({**asdict(BackboneConfig(feature_dim=6)), **change})


BACKBONE_CASES = {
    "truncated": ("truncate", "onnxruntime cannot load this backbone"),
    "no metadata": (None, "no vadedge.backbone_config metadata"),
    "metadata not JSON": ("{feature_dim: 6", "metadata vadedge.backbone_config: not valid JSON"),
    "negative feature_dim": (_cfg(feature_dim=-6), "feature_dim = -6, expected a positive integer"),
    "unknown field": (_cfg(fps=25), "unknown field(s) ['fps']"),
    "not an object": ("[1280]", "expected a JSON object with fields"),
    "std zero": (_cfg(std=[0, 1, 1]), "std > 0"),
}


@pytest.mark.parametrize("cli", ["vad-runtime", "vad-extract"])
@pytest.mark.parametrize("case", BACKBONE_CASES)
def test_backbone_onnx(case, cli, tmp_path, capsys):
    meta, needle = BACKBONE_CASES[case]
    good = _cfg()
    bb = _backbone(tmp_path / "bb.onnx", good if meta == "truncate" else meta)
    if meta == "truncate":
        bb.write_bytes(bb.read_bytes()[:90])
    if cli == "vad-runtime":
        rc = _runtime(_onnx_model(tmp_path / "m.onnx", meta=GOOD_META), bb, tmp_path)
    else:
        from vadedge.runtime.extract import main

        if not VIDEO.is_file():
            pytest.skip(f"{VIDEO} not found")
        rc = main(["--backbone", str(bb), "--out", str(tmp_path / "feats"), str(VIDEO)])
    one_line_error(capsys, rc, "bb.onnx", needle)


def test_runtime_model_files_control(tmp_path):
    """The good tiny scorer and backbone load (the cases above fail for their one fault)."""
    from vadedge.runtime.backends import make_runner
    from vadedge.runtime.encoder import SnippetEncoder

    runner = make_runner(_onnx_model(tmp_path / "m.onnx", meta=GOOD_META), "ort-cpu")
    assert runner.run(np.zeros((1, 3, 16), np.float32))["scores"].shape == (1, 3)
    encoder = SnippetEncoder(_backbone(tmp_path / "bb.onnx", _cfg()))
    assert encoder.encode([np.zeros((240, 320, 3), np.uint8)] * 16).shape == (1, 6)
