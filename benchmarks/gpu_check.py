"""All GPU evidence in one prepared, rerunnable run (called by ``benchmarks/gpu_check.sh``).

Steps, each recorded as ok / skipped (with the reason) / failed (with the error), never stopping the run:
  build     plugin library + kernel harness with nvcc/CMake for the GPU present (its compute capability)
  tests     tests/test_plugin_kernels_gpu.py against that build (each kernel vs PyTorch)
  kernels   fused memory-read and top-1 routing kernels vs the unfused PyTorch/cuBLAS ops on the same inputs:
            CUDA-event timing, medians of several samples, ratio unfused/fused
  offline   benchmarks/offline_eval.py --device cuda for the three models (UCF-sized set) and --against-official
  streaming benchmarks/stream_latency.py (onnxruntime CUDA when installed, PyTorch CUDA for the head)
Results go to <out>/gpu-<device>-<date>.md and .json, and the .md is printed.

``--dry-run`` runs the same code on the CPU with tiny sizes (wall-clock timing instead of CUDA events) and
reports the GPU-only parts (build, kernel tests, fused kernels) as skipped, so the script cannot rot unseen.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

from vadedge.atomic import atomic_write_text
from vadedge.train.layers.memory import memory_read
from vadedge.train.layers.routing import top1_route

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

FULL = {"T": [200, 1000, 10000], "M": [60, 600, 4096], "D": 512, "experts": [12, 24], "samples": 7, "reps": 20,
        "offline": ["--repeats", "3"], "against": ["--rounds", "2", "--crop10-videos", "30"],
        "stream": ["--seconds", "40"], "step_timeout": 240}
DRY = {"T": [20, 50], "M": [60], "D": 32, "experts": [12], "samples": 3, "reps": 2,
       "offline": ["--videos", "2", "--repeats", "1"], "against": ["--videos", "2", "--rounds", "1", "--crop10-videos", "1"],
       "stream": None, "step_timeout": 120}


class Skip(Exception):
    """A step that cannot run here; the message is the reason."""


def run(cmd: list[str], timeout: int, env: dict | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})
    if proc.returncode:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-4:])
        raise RuntimeError(f"{' '.join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))} exited {proc.returncode}: {tail}")
    return proc.stdout


# ------------------------------------------------------------------------------------------------ steps
def step_build(ctx) -> dict:
    if ctx["dry"]:
        raise Skip("GPU-only: the build targets the compute capability of the GPU present")
    from vadedge.export.backend import missing_nvcc
    from vadedge.export.plugin_library import build

    reason = missing_nvcc()
    if reason:
        raise Skip(reason)
    major, minor = torch.cuda.get_device_capability()
    arch = f"{major}{minor}"
    t0 = time.perf_counter()
    out = {"cuda_architectures": arch}
    try:
        out["library"] = str(build(ctx["build_dir"], cuda_architectures=arch, jobs=os.cpu_count() or 2))
    except Exception as exc:  # e.g. no TensorRT headers and no registry to fetch them: the kernels need neither
        out["full_build_failed"] = str(exc)[:300]
        shutil.rmtree(ctx["build_dir"], ignore_errors=True)
        out["library"] = str(build(ctx["build_dir"], cuda_architectures=arch, jobs=os.cpu_count() or 2, kernels_only=True))
    ctx["harness"] = ctx["build_dir"] / "libvad_kernels_harness.so"
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def step_tests(ctx) -> dict:
    if ctx["dry"] or "harness" not in ctx:
        raise Skip("GPU-only: needs the build step's kernel harness" if not ctx["dry"] else "GPU-only: kernel tests need CUDA")
    out = run([PY, "-m", "pytest", "tests/test_plugin_kernels_gpu.py", "-q", "-rs"], ctx["timeout"],
              {"VAD_PLUGIN_BUILD_DIR": str(ctx["build_dir"])})
    summary = [line for line in out.splitlines() if re.search(r"\d+ (passed|failed|skipped)", line)]
    return {"summary": summary[-1] if summary else out.strip().splitlines()[-1]}


def timer(ctx):
    """(start, stop) -> median milliseconds per call: CUDA events on a GPU, perf_counter in a dry run."""
    def measure(fn) -> float:
        fn()  # warm-up (cuBLAS handles, kernel loading)
        samples = []
        for _ in range(ctx["sizes"]["samples"]):
            if ctx["dry"]:
                t0 = time.perf_counter()
                for _ in range(ctx["sizes"]["reps"]):
                    fn()
                samples.append((time.perf_counter() - t0) * 1e3 / ctx["sizes"]["reps"])
            else:
                start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(ctx["sizes"]["reps"]):
                    fn()
                stop.record()
                stop.synchronize()
                samples.append(start.elapsed_time(stop) / ctx["sizes"]["reps"])
        return statistics.median(samples)
    return measure


def load_harness(ctx):
    if ctx["dry"]:
        return None
    if "harness" not in ctx:
        raise Skip("no kernel harness (build step did not succeed)")
    lib = ctypes.CDLL(str(ctx["harness"]))
    lib.vad_memory_read_launch.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64, ctypes.c_int64, ctypes.c_int32,
                                                                   ctypes.c_int64, ctypes.c_int32, ctypes.c_int32]
    lib.vad_top1_route_launch.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64, ctypes.c_int32]
    return lib


def step_kernels(ctx) -> dict:
    """Fused kernels vs the unfused PyTorch ops (matmul on cuBLAS, sigmoid, top-k, mean, matmul; softmax + max)."""
    sizes, dev = ctx["sizes"], ctx["device"]
    lib = load_harness(ctx)
    measure = timer(ctx)
    rows = []
    d = sizes["D"]
    for t in sizes["T"]:
        for m in sizes["M"]:
            q = torch.randn(1, t, d, device=dev)
            mem = torch.randn(1, m, d, device=dev) / d ** 0.25
            k = m // 16 + 1
            row = {"op": "memory_read", "T": t, "M": m, "D": d, "k": k,
                   "unfused_ms": measure(lambda: memory_read(q, mem, k))}
            if lib is not None:
                score, aug = torch.empty(1, t, device=dev), torch.empty(1, t, d, device=dev)
                launch = lambda: lib.vad_memory_read_launch(q.data_ptr(), mem.data_ptr(), score.data_ptr(),  # noqa: E731
                                                           aug.data_ptr(), 1, t, d, 1, m, k)
                if launch() != 0:
                    raise RuntimeError(f"vad_memory_read_launch refused T={t} M={m} D={d}")
                row["fused_ms"] = measure(launch)
                ref_score, ref_aug, _ = memory_read(q, mem, k)
                row["max_abs_diff"] = max((score - ref_score).abs().max().item(), (aug - ref_aug).abs().max().item())
            rows.append(row)
        for e in sizes["experts"]:
            logits = torch.randn(t, e, device=dev)
            row = {"op": "top1_route", "T": t, "E": e, "unfused_ms": measure(lambda: top1_route(logits))}
            if lib is not None:
                index, weight = torch.empty(t, dtype=torch.int32, device=dev), torch.empty(t, device=dev)
                launch = lambda: lib.vad_top1_route_launch(logits.data_ptr(), index.data_ptr(), weight.data_ptr(), t, e)  # noqa: E731
                if launch() != 0:
                    raise RuntimeError(f"vad_top1_route_launch refused T={t} E={e}")
                row["fused_ms"] = measure(launch)
                row["max_abs_diff"] = (weight - torch.softmax(logits, -1).max(-1).values).abs().max().item()
            rows.append(row)
    for row in rows:
        if "fused_ms" in row:
            row["ratio_unfused_over_fused"] = row["unfused_ms"] / row["fused_ms"]
    result = {"timing": "CUDA events" if not ctx["dry"] else "perf_counter (dry run, CPU)", "rows": rows}
    if lib is None:
        result["skipped_parts"] = "fused kernels: GPU-only (dry run times the unfused PyTorch ops on the CPU)"
    return result


def step_offline(ctx) -> dict:
    sizes, device = ctx["sizes"], "cpu" if ctx["dry"] else "cuda"
    bench = str(ROOT / "benchmarks" / "offline_eval.py")
    t = ctx["timeout"]
    out = {"throughput": run([PY, bench, "--device", device, "--models", "urdmu,gsmoe,mome"] + sizes["offline"], t)}
    out["against_official"] = run([PY, bench, "--against-official", "--device", device] + sizes["against"], t)
    return out


def step_streaming(ctx) -> dict:
    if ctx["sizes"]["stream"] is None:
        raise Skip("dry run: the streaming benchmark exports a backbone and renders a clip (minutes on this CPU); "
                   "its CPU rows are exercised by tests/test_runtime.py")
    from vadedge.runtime.backends import _ort_has_cuda

    out = {"onnxruntime_cuda": _ort_has_cuda(),
           "table": run([PY, str(ROOT / "benchmarks" / "stream_latency.py")] + ctx["sizes"]["stream"], ctx["timeout"])}
    out["multi_stream"] = "skipped: no multi-stream benchmark exists in benchmarks/ yet"
    return out


STEPS = [("build", step_build), ("tests", step_tests), ("kernels", step_kernels), ("offline", step_offline),
         ("streaming", step_streaming)]


# ------------------------------------------------------------------------------------------------ report
def environment(dry: bool) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
           "host": platform.node(), "cpus": os.cpu_count(), "dry_run": dry}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, capability=f"{p.major}.{p.minor}", gpu_memory_gib=round(p.total_memory / 2**30, 1))
    env["nvcc"] = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
    try:
        import onnxruntime as ort

        env["onnxruntime"] = f"{ort.__version__} {ort.get_available_providers()}"
    except ImportError:
        env["onnxruntime"] = None
    return env


def to_markdown(report: dict) -> str:
    env = report["environment"]
    lines = [f"# GPU check: {report['device']} ({report['date']})", "",
             "Produced by `bash benchmarks/gpu_check.sh" + (" --dry-run" if env["dry_run"] else "") + "`. "
             + ("DRY RUN on the CPU with tiny sizes: the numbers only show the code paths run." if env["dry_run"] else
                "Timings are medians; ratios are measured side by side in this run."), "",
             "## Environment", ""] + [f"- {k}: {v}" for k, v in env.items()] + ["", "## Steps", "",
             "| step | status | seconds | note |", "|---|---|---|---|"]
    for name, s in report["steps"].items():
        lines.append(f"| {name} | {s['status']} | {s['seconds']:.1f} | {s.get('reason', '')} |")
    kern = report["steps"].get("kernels", {}).get("result")
    if kern:
        lines += ["", f"## Kernels ({kern['timing']}; ms per call, median)", "",
                  "| op | T | M / E | D | unfused PyTorch ms | fused kernel ms | unfused/fused | max abs diff |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in kern["rows"]:
            f = lambda k, spec=".4f": format(r[k], spec) if k in r else "skipped"  # noqa: E731
            lines.append(f"| {r['op']} | {r['T']} | {r.get('M', r.get('E'))} | {r.get('D', '')} | {f('unfused_ms')} "
                         f"| {f('fused_ms')} | {f('ratio_unfused_over_fused', '.2f')} | {f('max_abs_diff', '.1e')} |")
        if "skipped_parts" in kern:
            lines += ["", f"Skipped: {kern['skipped_parts']}."]
    for name, title in (("tests", "Kernel tests"), ("offline", "Offline scoring"), ("streaming", "Streaming latency")):
        res = report["steps"].get(name, {}).get("result")
        if res:
            lines += ["", f"## {title}", ""]
            for key, val in res.items():
                lines += [f"### {key}", "", "```", str(val).strip(), "```", ""] if isinstance(val, str) and "\n" in val \
                    else [f"- {key}: {val}"]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, GPU-only steps reported as skipped")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for the .md and .json")
    p.add_argument("--build-dir", type=Path, default=ROOT / "build-gpu-check")
    p.add_argument("--only", default="", help="comma-separated subset of steps: " + ",".join(n for n, _ in STEPS))
    args = p.parse_args(argv)
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        print(f"error: no CUDA GPU visible to torch {torch.__version__} (CUDA {torch.version.cuda}); "
              "use --dry-run to exercise the script on a CPU", file=sys.stderr)
        return 2
    sizes = DRY if dry else FULL
    device = "dryrun-cpu" if dry else re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name(0)).strip("-").lower()
    ctx = {"dry": dry, "sizes": sizes, "device": torch.device("cpu" if dry else "cuda"), "build_dir": args.build_dir,
           "timeout": sizes["step_timeout"]}
    now = dt.datetime.now(dt.timezone.utc)
    report = {"device": device, "date": now.strftime("%Y-%m-%d %H:%M UTC"), "environment": environment(dry), "steps": {}}
    only = set(filter(None, args.only.split(",")))
    for name, fn in STEPS:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        try:
            entry = {"status": "ok", "result": fn(ctx)}
        except Skip as exc:
            entry = {"status": "skipped", "reason": str(exc)}
        except Exception as exc:  # a failed step is recorded and the run goes on
            entry = {"status": "failed", "reason": f"{type(exc).__name__}: {str(exc)[:300]}", "trace": traceback.format_exc()[-2000:]}
        entry["seconds"] = time.perf_counter() - t0
        report["steps"][name] = entry
        print(f"[gpu_check] {name}: {entry['status']} ({entry['seconds']:.1f} s) {entry.get('reason', '')}", file=sys.stderr, flush=True)
    stem = args.out / f"gpu-{device}-{now.strftime('%Y%m%d-%H%M')}"
    args.out.mkdir(parents=True, exist_ok=True)
    md = to_markdown(report)
    atomic_write_text(stem.with_suffix(".json"), json.dumps(report, indent=2, default=str) + "\n")
    atomic_write_text(stem.with_suffix(".md"), md)
    print(md)
    print(f"[gpu_check] wrote {stem}.md and .json", file=sys.stderr)
    return 1 if any(s["status"] == "failed" for s in report["steps"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
