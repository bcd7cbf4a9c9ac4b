"""The benchmark scripts and small CLIs keep running (tiny settings; the numbers are not checked here)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vadedge.train.cli import synth_main

ROOT = Path(__file__).resolve().parents[1]


def test_offline_eval_benchmark_runs(ucf_dir):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "offline_eval.py"), "--videos", "3", "--repeats", "1",
                          "--annotation", str(ucf_dir / "UCF_Annotation.txt")], capture_output=True, text=True, check=True)
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.startswith(("urdmu", "gsmoe"))}
    assert int(rows["urdmu"][1]) == 6492929 and float(rows["urdmu"][3]) > 0
    assert int(rows["gsmoe"][1]) > int(rows["urdmu"][1]) and float(rows["gsmoe"][3]) > 0


def test_offline_eval_cuda_without_gpu_is_one_line_exit_2():
    import torch

    if torch.cuda.is_available():
        return
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "offline_eval.py"), "--against-official", "--device", "cuda"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "CUDA is not available" in out.stderr


def test_vad_synth_writes_labelled_synthetic_set(tmp_path):
    assert synth_main([str(tmp_path / "s"), "--train-normal", "3", "--train-abnormal", "3", "--test-normal", "2",
                       "--test-abnormal", "2", "--feature-dim", "8"]) == 0
    assert (tmp_path / "s" / "SYNTHETIC.json").is_file()
    gt = np.load(tmp_path / "s" / "test_gt.npz")
    assert len(gt.files) == 4 and all(len(gt[k]) % 16 == 0 for k in gt.files)
    lines = (tmp_path / "s" / "train.list").read_text().split()
    assert len(lines) == 12 and all(line.startswith("features/Syn") or "Normal" in line for line in lines)


def _multistream(assets, tmp_path, *argv):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "multistream.py"), "--models", str(assets["dir"]),
                           "--work", str(tmp_path), "--out", str(tmp_path / "ms.json"), *argv],
                          capture_output=True, text=True, timeout=600)


def test_multistream_cuda_without_gpu_is_one_line_exit_2(assets, tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return
    out = _multistream(assets, tmp_path, "--device", "cuda")
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "no CUDA provider" in out.stderr


@pytest.mark.slow
def test_multistream_benchmark_runs(assets, tmp_path):
    import json

    out = _multistream(assets, tmp_path, "--clip", "synthetic", "--seconds", "3", "--max-streams", "2",
                       "--modes", "unbatched,batched")
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads((tmp_path / "ms.json").read_text())
    for mode in ("unbatched", "batched"):
        r = res["modes"][mode]
        assert 0 <= r["max_streams"] <= 2 and r["trials"][0]["scored"] > 0
        assert set(r["trials"][0]["stages_ms"]) >= {"decode", "preprocess", "backbone", "head", "total", "latency"}
    assert "streams held relative to unbatched" in out.stdout


def test_offline_eval_growth_runs_each_model():
    """--growth: the official side is UR-DMU only; GS-MoE and MoME report their own time, CPU time and peak RSS."""
    for model in ("urdmu", "gsmoe", "mome"):
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "offline_eval.py"), "--growth", "33", "--model", model,
                              "--threads", "1"], capture_output=True, text=True, check=True)
        row = [c.strip() for c in out.stdout.strip().splitlines()[-1].strip("|").split("|")]
        assert row[0] == "33" and float(row[3]) > 0 and float(row[4]) > 0 and float(row[5]) > 0, (model, row)
        assert (row[1] == "no official code") == (model != "urdmu"), (model, row)


def test_offline_eval_levers_keep_scores(ucf_dir):
    """--levers: folded and stacked variants run and score as the layers as written (<= 1e-5)."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "offline_eval.py"), "--levers", "--videos", "3", "--rounds", "1",
                          "--threads", "1", "--annotation", str(ucf_dir / "UCF_Annotation.txt")], capture_output=True, text=True, check=True)
    rows = [line.strip("|").split("|") for line in out.stdout.splitlines() if line.startswith("| ") and "variant" not in line]
    assert [r[0].strip() for r in rows] == ["layers as written", "folded", "folded + equal lengths stacked"]
    assert all(float(r[6]) <= 1e-5 for r in rows)


def _multistream_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("multistream", ROOT / "benchmarks" / "multistream.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_multistream_call_costs_warm_every_shape_and_give_cpu_time(assets):
    """The isolated per-call costs: each batch shape is run once before it is timed (onnxruntime plans memory per
    shape), the sizes are interleaved, and the CPU time of the call is given beside its wall time (on a loaded
    machine wall time was 106 ms at batch 1 for a 38 ms call)."""
    from vadedge.runtime.backends import OrtRunner
    from vadedge.runtime.encoder import SnippetEncoder

    ms = _multistream_module()
    encoder, runner = SnippetEncoder(assets["backbone"]), OrtRunner(assets["onnx"])
    seen: list[int] = []
    run = encoder._run_rows
    encoder._run_rows = lambda x: (seen.append(len(x) // encoder.rows_per_snippet), run(x))[1]
    costs = ms.call_costs((runner, encoder, assets["onnx"]), sizes=(1, 3), repeats=2)
    assert seen == [1, 3, 1, 3, 1, 3]  # warm-up of both shapes, then the repeats interleaved
    for n in (1, 3):
        c = costs[n]
        assert set(c) == {"backbone_ms", "backbone_cpu_ms", "head_ms", "head_cpu_ms"}
        assert 0 < c["backbone_cpu_ms"] and 0 < c["backbone_ms"] and c["head_cpu_ms"] >= 0


@pytest.mark.slow
def test_multistream_side_by_side_alternates_the_modes(assets, tmp_path):
    import json

    out = _multistream(assets, tmp_path, "--clip", "synthetic", "--seconds", "3", "--at", "2", "--repeats", "1",
                       "--modes", "unbatched,batched", "--threads", "1")
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads((tmp_path / "ms.json").read_text())
    sbs = res["side_by_side"]
    assert set(sbs) == {"unbatched", "batched"} and res["threads"] == 1 and "max_streams" not in res["modes"]
    for r in sbs.values():
        assert len(r["trials"]) == 1 and r["trials"][0]["scored"] > 0 and r["median"]["process_cpu_ms_per_snippet"] > 0
    assert "median of 1" in out.stdout


def test_offline_eval_bad_values_are_one_line_exit_2():
    """Bad counts, T lists and devices end with argparse's one error line (exit 2), never a traceback or error rows."""
    for args, field in ((["--growth", "0"], "--growth"), (["--growth", "abc"], "--growth"), (["--growth", "33,-5"], "--growth"),
                        (["--threads", "-1"], "--threads"), (["--videos", "-1"], "--videos"), (["--rounds", "0"], "--rounds"),
                        (["--cases", "3"], "--cases"), (["--device", "tpu"], "--device tpu")):
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "offline_eval.py"), *args], capture_output=True, text=True,
                             timeout=60)
        last = out.stderr.strip().splitlines()[-1]
        assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr, (args, out.stderr)
        assert last.startswith(("error:", "offline_eval.py: error:")) and field in last, (args, last)
