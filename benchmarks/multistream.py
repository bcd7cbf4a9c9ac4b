"""How many real-time streams one box holds: vad-runtime unbatched, batched (``--max-batch``) and on Triton, side
by side in one run, with per-stage p50/p99 and the per-snippet cost of each stage (where the bottleneck is).

    python benchmarks/multistream.py                                   # models from runs/demo (vad-runtime --demo)
    python benchmarks/multistream.py --seconds 20 --max-streams 32 --modes unbatched,batched,triton
    python benchmarks/multistream.py --device cuda --clip synthetic --fps 30 --max-streams 256   # a GPU box

Streams are video files paced at their own timestamps (``--realtime``: they drop whole snippets like cameras when
the scorer falls behind): the real ``vtest.avi`` (768x576, 10 fps) and the SYNTHETIC rendered street
(runtime/synthetic_scene.py, 320x240, 25 fps), alternating (``--clip mixed``). A mode holds N streams when, over
``--seconds``, no snippet was dropped, no more than one snippet per stream was left unscored, and the p99 latency
from a snippet's last frame to its score stays under one snippet period (16 frames of the fastest clip). N is
searched by doubling from 1, then bisecting, up to ``--max-streams``. Decoding runs in one thread per stream;
"cost/snippet" is a stage's busy seconds over the snippets (a batched call counted once; decode: the capture threads'
CPU seconds, the model calls: wall seconds), so the stage with the largest cost is the bottleneck; "process CPU" is
the CPU seconds of all our threads per snippet. The one-call costs are given in CPU and wall milliseconds: on a
shared machine only the CPU figure is the call's own work. ``--at N`` compares the modes at N streams, trial by
trial alternating (``--repeats``), instead of searching each mode's N one after the other. Triton: the real ``tritonserver`` of the nvidia-pytriton wheel on 127.0.0.1
serving a ``vad-export-triton`` repository (python backend, onnxruntime CPU), fed by the batched scheduler; the
mode is skipped, saying why, where the wheel is missing. Results: benchmarks/results/multistream-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from vadedge.atomic import atomic_write_text
from vadedge.errors import VadInputError, run_cli
from vadedge.runtime.backends import OrtRunner
from vadedge.runtime.encoder import SnippetEncoder
from vadedge.runtime.events import EventLog
from vadedge.runtime.pipeline import Runtime, RuntimeConfig
from vadedge.runtime.sources import SourceSpec
from vadedge.runtime.stats import STAGES, Stats

REPO = Path(__file__).resolve().parents[1]
VTEST = REPO.parent / "shared" / "data" / "video" / "vtest.avi"
MODES = ("unbatched", "batched", "triton")
SNIPPET = 16


def clip_files(kind: str, seconds: float, fps: float, work: Path) -> list[Path]:
    """The stream files: vtest.avi (real) and/or the rendered street (SYNTHETIC) at ``fps``, long enough."""
    from vadedge.runtime.synthetic_scene import FPS, Episode, render

    files = []
    if kind in ("vtest", "mixed"):
        if not VTEST.is_file():
            raise VadInputError(f"{VTEST}: the real clip is missing (../shared); use --clip synthetic")
        if seconds > 75:
            raise VadInputError(f"--seconds {seconds:g}: vtest.avi lasts 79.5 s; use at most 75 per trial")
        files.append(VTEST)
    if kind in ("synthetic", "mixed"):
        path = work / f"street_{fps:g}fps.mp4"
        if not path.is_file():
            frames = int((seconds + 10) * FPS)
            render(work / "street.mp4", frames, [Episode("Fire", frames // 3, frames // 2)], seed=7)
            retime(work / "street.mp4", path, fps)
        files.append(path)
    if not files:
        raise VadInputError(f"--clip {kind}: expected vtest, synthetic or mixed")
    return files


def retime(src: Path, dst: Path, fps: float) -> None:
    """The same frames with container timestamps at ``fps`` (the rendered clip is 25 fps; a 30 fps camera, ...)."""
    import cv2

    cap = cv2.VideoCapture(str(src))
    ok, frame = cap.read()
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
    while ok:
        writer.write(frame)
        ok, frame = cap.read()
    cap.release(), writer.release()


def period_s(path: Path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return SNIPPET / fps


# ---------------------------------------------------------------- one trial
def trial(parts, n: int, files: list[Path], args, batched: bool, limit_s: float) -> dict:
    runner, encoder, model_file = parts
    specs = [SourceSpec(f"s{i:03d}", str(files[i % len(files)]), "file", realtime=True) for i in range(n)]
    stats = Stats(window=200_000)
    cfg = RuntimeConfig(window=args.window, stats_every=0, duration=args.seconds, queue_size=args.queue,
                        max_batch=args.max_batch if batched else 1, max_wait_ms=args.max_wait_ms if batched else 0.0)
    logs: list[str] = []
    rt = Runtime(runner, encoder, specs, cfg, EventLog(None), stats, log=logs.append, model_file=model_file)
    t0, c0 = time.perf_counter(), time.process_time()
    rt.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    load = os.getloadavg()[0]  # other work on the machine during the trial (1-minute load average)
    captured, scored, dropped = (stats.total(k) for k in ("snippets_captured", "snippets_scored", "snippets_dropped"))
    p = {s: stats.percentiles(s) for s in STAGES}
    latency_p99 = p["latency"][1] if p["latency"] else float("inf")
    backlog = captured - scored
    holds = dropped == 0 and backlog <= n and latency_p99 < limit_s and scored > 0
    cost = {s: stats.busy_s.get(s, 0.0) / max(captured if s == "decode" else scored, 1) for s in ("decode", "preprocess", "backbone", "head")}
    return {"streams": n, "holds": bool(holds), "wall_s": round(wall, 1), "loadavg_1m": round(load, 2), "captured": captured, "scored": scored,
            "dropped": dropped, "backlog": backlog, "latency_p99_s": round(latency_p99, 4),
            "stages_ms": {s: [round(1e3 * v, 2) for v in p[s]] for s in STAGES if p[s]},
            "cost_ms_per_snippet": {s: round(1e3 * v, 2) for s, v in cost.items()},
            # all threads of the process (capture, scorer, onnxruntime's): the work per snippet, and how many of
            # the cores it kept busy (well under os.cpu_count(): the limit was latency or other load, not our CPU)
            "process_cpu_ms_per_snippet": round(1e3 * cpu / max(scored, 1), 2), "cores_busy": round(cpu / wall, 2),
            "mean_batch": {s: round(stats.batch_sizes(s)[1], 2) for s in ("backbone", "head")},
            "notes": [m for m in logs if m.startswith("note:")]}


def search(parts, files, args, batched: bool, limit_s: float, say) -> tuple[int, list[dict]]:
    """Largest N that holds: doubling from 1, then bisecting between the last N that held and the first that failed."""
    trials: dict[int, dict] = {}

    def run(n):
        trials[n] = r = trial(parts, n, files, args, batched, limit_s)
        say(f"    N={n:<4} {'holds' if r['holds'] else 'fails'}: latency p99 {r['latency_p99_s'] * 1e3:7.0f} ms, "
            f"dropped {r['dropped']}, backlog {r['backlog']}, scored {r['scored']}, mean batch {r['mean_batch']['backbone']}, "
            f"backbone {r['cost_ms_per_snippet']['backbone']:.1f} ms/snippet, process CPU {r['process_cpu_ms_per_snippet']:.1f} "
            f"ms/snippet on {r['cores_busy']:.2f} cores, "
            f"load {r['loadavg_1m']}")
        return r["holds"]

    good, bad, n = 0, None, 1
    while n <= args.max_streams and run(n):
        good, n = n, n * 2
    if n <= args.max_streams:
        bad = n
    elif good < args.max_streams:  # the doubling stepped over --max-streams: try it
        bad = args.max_streams if not run(args.max_streams) else None
        good = args.max_streams if bad is None else good
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if run(mid) else (good, mid)
    return good, [trials[k] for k in sorted(trials)]


def side_by_side(parts, files, args, modes: list[str], limit_s: float, say) -> dict:
    """``--at N``: the local modes at N streams, alternating trial by trial ``--repeats`` times, so a change of load
    on a shared machine hits every mode alike (the search runs the modes one after another); medians per mode."""
    trials: dict = {m: [] for m in modes}
    for rep in range(args.repeats):
        for mode in modes:
            r = trial(parts, args.at, files, args, mode == "batched", limit_s)
            trials[mode].append(r)
            say(f"    {rep + 1}/{args.repeats} {mode:<10} {'holds' if r['holds'] else 'fails'}: latency p50/p99 "
                f"{'/'.join(f'{v:.0f}' for v in r['stages_ms']['latency'])} ms, backbone {r['cost_ms_per_snippet']['backbone']:.1f} "
                f"ms/snippet, process CPU {r['process_cpu_ms_per_snippet']:.1f} ms/snippet on {r['cores_busy']:.2f} cores, "
                f"mean batch {r['mean_batch']['backbone']}, load {r['loadavg_1m']}")
    out = {}
    for mode, rs in trials.items():
        med = lambda f: round(float(np.median([f(r) for r in rs])), 2)  # noqa: E731
        out[mode] = {"held": sum(r["holds"] for r in rs), "trials": rs,
                     "median": {"latency_p50_ms": med(lambda r: r["stages_ms"]["latency"][0]),
                                "latency_p99_ms": med(lambda r: r["stages_ms"]["latency"][1]),
                                "backbone_ms_per_snippet": med(lambda r: r["cost_ms_per_snippet"]["backbone"]),
                                "process_cpu_ms_per_snippet": med(lambda r: r["process_cpu_ms_per_snippet"]),
                                "mean_batch": med(lambda r: r["mean_batch"]["backbone"])}}
        m = out[mode]["median"]
        say(f"{mode:<10} at {args.at} streams, median of {len(rs)}: held {out[mode]['held']}/{len(rs)}, latency p50/p99 "
            f"{m['latency_p50_ms']:.0f}/{m['latency_p99_ms']:.0f} ms, backbone {m['backbone_ms_per_snippet']:.1f} ms/snippet, "
            f"process CPU {m['process_cpu_ms_per_snippet']:.1f} ms/snippet, mean batch {m['mean_batch']}")
    return out


# ---------------------------------------------------------------- models and modes
def models(args, work: Path) -> tuple[Path, Path, str]:
    if args.published_width:
        import torch

        from vadedge.export.backbone_export import export_backbone
        from vadedge.export.onnx_export import export_onnx
        from vadedge.train.models import URDMUConfig, create_model

        torch.manual_seed(0)
        model = export_onnx(create_model("urdmu", URDMUConfig(feature_dim=1280)).eval(), work / "urdmu.onnx").path
        backbone = work / "backbone.onnx"
        if not backbone.is_file():
            export_backbone("efficientnet_lite0", backbone)
        return model, backbone, "UR-DMU at published widths (random weights, SYNTHETIC) + EfficientNet-Lite0 (ImageNet)"
    model, backbone = Path(args.models) / "model.onnx", Path(args.models) / "backbone.onnx"
    for p in (model, backbone):
        if not p.is_file():
            raise VadInputError(f"--models {args.models}: {p.name} not found (build it: vad-runtime --demo --out {args.models})")
    return model, backbone, f"the demo models in {args.models} (UR-DMU trained on SYNTHETIC scenes + EfficientNet-Lite0)"


def local_parts(model: Path, backbone: Path, device: str, threads: int = 0):
    if device == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise VadInputError("--device cuda: onnxruntime has no CUDA provider here (install onnxruntime-gpu on a GPU box)")
    return OrtRunner(model, device=device, threads=threads), SnippetEncoder(backbone, device=device, threads=threads), model


def trt_head(model: Path, work: Path, max_batch: int, say):
    """The head as a TensorRT engine where a builder exists (profile batch up to ``max_batch``), else None."""
    from vadedge.export.backend import missing_builder

    reason = missing_builder()
    if reason:
        say(f"TensorRT head: skipped ({reason}); the head runs on onnxruntime CUDA")
        return None
    from vadedge.export.to_trt import EngineSpec, build_engine
    from vadedge.runtime.backends import TrtRunner

    engine = work / "model.plan"
    build_engine(model, engine, EngineSpec(max_batch=max_batch, opt_batch=max_batch))
    return TrtRunner(engine)


def warm(parts) -> None:
    """One call per shape class before timing (sessions allocate on their first run)."""
    runner, encoder, _ = parts
    frame = np.zeros((480, 640, 3), np.uint8)
    feats = encoder.encode_batch([[encoder.prepare_frame(frame)] * len(encoder.sampled)] * 2)
    runner.run(np.stack([f.mean(0) for f in feats])[None].repeat(2, 0))  # [2 windows, 2 snippets, D]


def call_costs(parts, sizes=(1, 2, 4, 8, 16), repeats: int = 5) -> dict:
    """Per snippet, one backbone call and one head call (window 32) at each batch size, no streams running: whether
    batching itself saves work on this device. ``*_cpu_ms`` is the process's CPU time over the call (no other thread
    of ours runs then: it is the call's own work, whatever else loads the machine); ``*_ms`` its wall time (which
    on a shared box also holds the time other processes had the cores: the author's 106 ms at batch 1 under load
    average 8 was 38 ms of CPU). Every shape is run once before timing, and the sizes are interleaved within each
    repeat so a change of load hits all of them alike; medians of ``repeats``."""
    runner, encoder, _ = parts
    rng = np.random.default_rng(0)
    frame = encoder.prepare_frame(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
    windows = rng.standard_normal((max(sizes), 32, encoder.feature_dim)).astype(np.float32)
    snippets = {n: [[frame] * len(encoder.sampled)] * n for n in sizes}
    for n in sizes:  # onnxruntime plans its memory per input shape on the first call of that shape
        encoder.encode_batch(snippets[n], prepared=True), runner.run(windows[:n])
    samples: dict = {n: {k: [] for k in ("backbone_ms", "backbone_cpu_ms", "head_ms", "head_cpu_ms")} for n in sizes}
    for _ in range(repeats):
        for n in sizes:
            timings: dict = {}
            c0 = time.process_time()
            encoder.encode_batch(snippets[n], timings, prepared=True)
            c1 = time.process_time()
            t0 = time.perf_counter()
            runner.run(windows[:n])
            t1, c2 = time.perf_counter(), time.process_time()
            # the encoder's CPU includes its preprocess (a few ms a snippet): the backbone call dominates it
            for key, value in (("backbone_ms", timings["backbone"]), ("backbone_cpu_ms", c1 - c0),
                               ("head_ms", t1 - t0), ("head_cpu_ms", c2 - c1)):
                samples[n][key].append(value / n)
    return {n: {k: round(1e3 * float(np.median(v)), 3) for k, v in d.items()} for n, d in samples.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=str(REPO / "runs" / "demo"), help="folder with model.onnx and backbone.onnx")
    p.add_argument("--published-width", action="store_true", help="UR-DMU at published widths (random weights) instead")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {MODES}")
    p.add_argument("--clip", default="mixed", choices=["vtest", "synthetic", "mixed"])
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of the synthetic clip's streams")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each trial")
    p.add_argument("--max-streams", type=int, default=32, help="largest N tried")
    p.add_argument("--max-batch", type=int, default=16, help="batched and Triton modes: vad-runtime --max-batch")
    p.add_argument("--max-wait-ms", type=float, default=0.0, help="batched and Triton modes: vad-runtime --max-wait-ms")
    p.add_argument("--at", type=int, default=0, help="no search: the local modes at this many streams, alternating")
    p.add_argument("--repeats", type=int, default=3, help="--at: trials per mode")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (vad-runtime --threads; 0: default)")
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--queue", type=int, default=8, help="snippets buffered per stream (vad-runtime --queue)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--work", help="folder for clips and exports (default: a temporary one)")
    p.add_argument("--out", help="JSON results (default: benchmarks/results/multistream-<device>.json)")
    args = p.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - set(MODES):
        raise VadInputError(f"--modes {args.modes}: expected a comma-separated list of {MODES}")
    if args.seconds <= 0 or args.max_streams < 1 or args.max_batch < 1 or args.at < 0 or args.repeats < 1 or args.threads < 0:
        raise VadInputError("--seconds must be > 0, --max-streams, --max-batch and --repeats >= 1, --at and --threads >= 0")
    work = Path(args.work or tempfile.mkdtemp(prefix="vad-multistream-"))
    work.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def say(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    model, backbone, what = models(args, work)
    local = local_parts(model, backbone, args.device, args.threads)  # before any output: no CUDA here is one line
    files = clip_files(args.clip, args.seconds, args.fps, work)
    limit = min(period_s(f) for f in files)
    say(f"models: {what}")
    say(f"streams: {', '.join(f'{f.name} ({SNIPPET / period_s(f):g} fps)' for f in files)} alternating, paced in real time; "
        f"{args.seconds:g} s per trial; holds = no drop, backlog <= 1 snippet/stream, latency p99 < {limit * 1e3:.0f} ms")
    say(f"machine: {os.cpu_count()} CPUs, device {args.device}, --threads {args.threads}; "
        f"batched: --max-batch {args.max_batch} --max-wait-ms {args.max_wait_ms:g}")
    if args.device == "cuda":
        head = trt_head(model, work, args.max_batch, say)
        if head is not None:
            local = (head, local[1], model)
    warm(local)
    results: dict = {"models": what, "device": args.device, "cpus": os.cpu_count(), "seconds": args.seconds,
                     "clips": [f.name for f in files], "latency_limit_s": limit, "max_batch": args.max_batch,
                     "max_wait_ms": args.max_wait_ms, "threads": args.threads, "modes": {}}
    costs = results["call_costs"] = call_costs(local)
    say("one call, ms per snippet by batch size (no streams), CPU (wall): " + ", ".join(
        f"{n}: backbone {c['backbone_cpu_ms']:.1f} ({c['backbone_ms']:.1f}) head {c['head_cpu_ms']:.2f} ({c['head_ms']:.2f})"
        for n, c in costs.items()))
    if args.at:
        say(f"side by side at {args.at} streams:")
        results["side_by_side"] = side_by_side(local, files, args, [m for m in modes if m != "triton"], limit, say)
        modes = []  # no search
    for mode in modes:
        say(f"{mode}:")
        if mode == "triton":
            found = triton_mode(model, backbone, work, args, files, limit, say)
            if isinstance(found, str):
                say(f"    skipped: {found}")
                results["modes"][mode] = {"skipped": found}
                continue
            best, trials = found
        else:
            best, trials = search(local, files, args, mode == "batched", limit, say)
        results["modes"][mode] = {"max_streams": best, "trials": trials}
    report(results, say)
    out = Path(args.out or REPO / "benchmarks" / "results" / f"multistream-{args.device}.json")
    results["printed"] = lines
    atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    print(f"saved {out}")


def triton_mode(model: Path, backbone: Path, work: Path, args, files, limit: float, say):
    from vadedge.export.triton_repo import write_repository
    from vadedge.runtime.triton import LocalTritonServer, pytriton_server, triton_parts

    found = pytriton_server()
    if isinstance(found, str):
        return found
    if args.device == "cuda":
        return "the wheel's tritonserver runs the python backend on CPU here; use a GPU Triton server (README)"
    if not os.environ.get("VADEDGE_TRITON_STUB_PATH"):
        return "VADEDGE_TRITON_STUB_PATH unset (a folder with numpy<2 for the wheel's python-backend stub; see .ci/run)"
    try:
        import tritonclient.grpc  # noqa: F401
    except ImportError:
        return "tritonclient not installed (pip install 'vadedge[triton]')"
    repo = work / "triton_repo"
    write_repository(model, backbone, repo, "python", max_batch=max(64, 4 * args.max_batch), delay_us=2000)
    with LocalTritonServer(repo, log_path=work / "tritonserver.log") as server:
        runner, encoder = triton_parts(server.url)
        parts = (runner, encoder, None)
        warm(parts)
        return search(parts, files, args, True, limit, say)


def report(results: dict, say) -> None:
    rows = {m: r for m, r in results["modes"].items() if "max_streams" in r}
    if not rows:
        return
    say("")
    say(f"{'mode':<10}{'streams':>8}  " + "".join(f"{s + ' p50/p99 ms':>22}" for s in ("decode", "preprocess", "backbone", "head", "total", "latency"))
        + f"{'  cost ms/snippet: decode/pre/backbone/head':>44}{'CPU ms/snippet':>16}{'mean batch':>12}")
    for mode, r in rows.items():
        held = [t for t in r["trials"] if t["holds"] and t["streams"] == r["max_streams"]]
        t = held[0] if held else r["trials"][0]
        st = t["stages_ms"]
        cells = "".join(f"{'/'.join(f'{v:.0f}' for v in st.get(s, [0, 0])):>22}" for s in ("decode", "preprocess", "backbone", "head", "total", "latency"))
        c = t["cost_ms_per_snippet"]
        cost = "/".join(f"{c[s]:.1f}" for s in ("decode", "preprocess", "backbone", "head"))
        say(f"{mode:<10}{r['max_streams']:>8}  {cells}{cost:>44}{t['process_cpu_ms_per_snippet']:>16.1f}{t['mean_batch']['backbone']:>12}")
        r["at_max"] = t
    if results["device"] == "cuda":
        best = max(r["max_streams"] for r in rows.values())
        say(f"one GPU holds {best} streams of {', '.join(results['clips'])} in real time (best mode above)")
    base = rows.get("unbatched", {}).get("max_streams")
    if base:
        say("streams held relative to unbatched: " + ", ".join(f"{m} {r['max_streams'] / base:.2f}x" for m, r in rows.items()))
    for mode, r in rows.items():
        c = r["at_max"]["cost_ms_per_snippet"]
        top = max(c, key=c.get)
        say(f"bottleneck ({mode}, at {r['max_streams']} streams): {top} {c[top]:.1f} ms of CPU/GPU time per snippet "
            f"(decode {c['decode']:.1f}, preprocess {c['preprocess']:.1f}, backbone {c['backbone']:.1f}, head {c['head']:.1f})")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
