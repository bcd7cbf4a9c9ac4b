"""Offline scoring speed on a test set with UCF-Crime's REAL video lengths and SYNTHETIC features.

Lengths: the 290 test videos of UCF_Annotation.txt (frame counts -> snippets, public I3D convention),
so the length mix (9 to 6,749 snippets per video, 69,355 in all) is the real one. Features are random vectors of
each model's input size (I3D 1024-d for UR-DMU/GS-MoE, CLIP 512-d for MoME): speed does not depend on their values.

    python benchmarks/offline_eval.py                      # UR-DMU, GS-MoE (13 experts), MoME (24 experts): snippets/s
    python benchmarks/offline_eval.py --crops 10 --device cuda
    python benchmarks/offline_eval.py --against-official   # vs the official UR-DMU test loop: time, ratio, peak RSS
    python benchmarks/offline_eval.py --growth 256,1024,4096,16384   # one video of T snippets: time, peak RSS
    python benchmarks/offline_eval.py --growth 256,4096 --model gsmoe  # GS-MoE / MoME test paths (no official side)
    python benchmarks/offline_eval.py --levers --threads 1   # UR-DMU speed levers A/B in one process (see levers())

``--against-official`` and ``--growth`` run every measurement in its own subprocess (so each peak RSS is that
case's alone), interleave official and project within each round, and report medians and ratios. The official
side is ``tests/official_urdmu.py`` (an independent re-statement of the public code's model and test loop: one
crop per forward, crops averaged), with the same weights converted by ``vad-convert``'s mapping.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads cost a lot on a busy box

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vadedge.atomic import atomic_write_text  # noqa: E402
from vadedge.train.evaluate import score_video  # noqa: E402
from vadedge.train.gt import SNIPPET, UCF_PUBLIC_I3D_SHORT, read_ucf_annotations  # noqa: E402
from vadedge.train.models import GSMoEConfig, create_model, list_models  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ANNOTATION = ROOT.parent / "shared" / "data" / "ucf_crime" / "UCF_Annotation.txt"
IMPLS = ("official", "vadedge")


def video_lengths(annotation: Path) -> list[int]:
    return [a.frames // SNIPPET - (a.name in UCF_PUBLIC_I3D_SHORT) for a in read_ucf_annotations(annotation)]


# The 13 UCF-Crime anomaly classes: GS-MoE's published configuration has one expert each.
UCF_CLASSES = ["Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting", "RoadAccidents", "Robbery",
               "Shooting", "Shoplifting", "Stealing", "Vandalism"]


def build(name: str) -> torch.nn.Module:
    if name == "gsmoe":
        return create_model("gsmoe", GSMoEConfig(experts=UCF_CLASSES))
    return create_model(name)


def counts(minimum: int, many: bool = False):
    """argparse type: an integer (or comma-separated integers) >= minimum, else argparse's one-line error, exit 2."""
    def parse(text: str):
        try:
            values = [int(v) for v in text.split(",")] if many else [int(text)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'comma-separated integers' if many else 'an integer'}, got {text!r}") from None
        if min(values) < minimum:
            raise argparse.ArgumentTypeError(f"expected {'integers' if many else 'an integer'} >= {minimum}, got {text!r}")
        return values if many else values[0]
    return parse


def device_or_exit(name: str) -> torch.device:
    """The requested device, or a one-line error (exit 2) when it is not there."""
    try:
        device = torch.device(name)
    except RuntimeError:
        print(f"error: --device {name}: expected cpu or cuda[:N]", file=sys.stderr)
        raise SystemExit(2) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {name}: CUDA is not available on this machine "
              f"(torch {torch.__version__}, built with CUDA {torch.version.cuda})", file=sys.stderr)
        raise SystemExit(2)
    return device


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def video_features(index: int, crops: int, t: int, dim: int, device: torch.device) -> torch.Tensor:
    """SYNTHETIC features of one video [crops, T, dim], the same for every process (seeded by the video's index)."""
    rng = np.random.default_rng(index)
    return torch.from_numpy(rng.random((crops, t, dim), dtype=np.float32)).to(device)


def cpu_seconds() -> float:
    """CPU time this process has used (user + system): unlike wall time, not inflated while other jobs
    share the cores, so its ratio is the steadier one on a busy machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mib() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------- per-model throughput
def throughput(args, lengths: list[int], device: torch.device) -> int:
    feats = {d: [video_features(i, args.crops, t, d, device)[None] for i, t in enumerate(lengths)]
             for d in {build(n).config.feature_dim for n in args.models.split(",")}}
    snippets = sum(lengths) * args.crops
    print(f"# {len(lengths)} videos, {sum(lengths)} snippets ({sum(lengths) * SNIPPET} frames) x {args.crops} crop(s); "
          f"SYNTHETIC features, real UCF-Crime lengths; device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'model':<10} {'params':>10} {'total_s(median)':>16} {'snippets/s':>12} {'passes_s':>24}")
    for name in args.models.split(","):
        model = build(name).to(device).eval()
        xs = feats[model.config.feature_dim]
        with torch.inference_mode():
            model(xs[0])  # warm-up
            passes = []
            for _ in range(args.repeats):
                sync(device)
                t0 = time.perf_counter()
                for x in xs:
                    model(x)
                sync(device)
                passes.append(time.perf_counter() - t0)
        med = statistics.median(passes)
        params = sum(t.numel() for t in model.parameters())
        print(f"{name:<10} {params:>10} {med:>16.2f} {snippets / med:>12.0f} {' '.join(f'{s:.2f}' for s in passes):>24}")
    return 0


# ---------------------------------------------------------------------------------------------- speed levers
def levers(args, lengths: list[int]) -> int:
    """UR-DMU on the given lengths, 1 crop, in one process, variants interleaved (order alternating per round):
    the folded test path vs the layers as written (``folding`` off), and equal-length videos stacked into one
    forward vs one video per forward. Prints medians, ratios and the largest score difference."""
    import collections

    from vadedge.train.layers import folding, temporal
    from vadedge.train.models import urdmu

    _, _, project = official_and_project(torch.device("cpu"))
    feats = [video_features(i, 1, t, project.config.feature_dim, torch.device("cpu")) for i, t in enumerate(lengths)]
    same_length = collections.defaultdict(list)
    for i, t in enumerate(lengths):
        same_length[t].append(i)

    def one_by_one(fold: bool):
        temporal.folding = urdmu.folding = folding.folding if fold else (lambda: False)
        return [score_video(project, f) for f in feats]

    def stacked():
        temporal.folding = urdmu.folding = folding.folding
        out = [None] * len(feats)
        for idx in same_length.values():
            scores = project(torch.stack([feats[i] for i in idx]))  # [n, 1, T, F] -> [n, T]
            for j, i in enumerate(idx):
                out[i] = scores[j].numpy()
        return out

    variants = {"layers as written": lambda: one_by_one(False), "folded": lambda: one_by_one(True),
                "folded + equal lengths stacked": stacked}
    times, cpu, outs = {k: [] for k in variants}, {k: [] for k in variants}, {}
    with torch.inference_mode():
        for name, fn in variants.items():  # untimed warm-up (folds built, kernels initialised); keeps the scores
            outs[name] = fn()
        for r in range(args.rounds):
            for name in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
                t0, c0 = time.perf_counter(), cpu_seconds()
                variants[name]()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(cpu_seconds() - c0)
    temporal.folding = urdmu.folding = folding.folding
    base = next(iter(variants))
    print(f"# UR-DMU levers: {len(lengths)} videos, {sum(lengths)} snippets, 1 crop, threads {torch.get_num_threads()}, "
          f"rounds {args.rounds}, SYNTHETIC features")
    print("| variant | median s | runs s | median CPU s | runs CPU s | speed-up vs layers as written (wall, CPU) "
          "| max abs score diff |\n|---|---|---|---|---|---|---|")
    for name in variants:
        diff = max(float(np.abs(a - b).max()) for a, b in zip(outs[name], outs[base]))
        med, med_cpu = statistics.median(times[name]), statistics.median(cpu[name])
        print(f"| {name} | {med:.2f} | {' '.join(f'{x:.2f}' for x in times[name])} | {med_cpu:.2f} "
              f"| {' '.join(f'{x:.2f}' for x in cpu[name])} | {statistics.median(times[base]) / med:.3f}, "
              f"{statistics.median(cpu[base]) / med_cpu:.3f} | {diff:.1e} |")
    return 0


# ---------------------------------------------------------------------------------------------- one measured case
# --narrow: UR-DMU's structure at toy width (16-d features, 1 head of 8), so T = 162,000 completes on a 2-core CPU;
# it shows how memory grows with T (a dense T x T float32 matrix alone would be 105 GB), not UR-DMU's speed.
NARROW = dict(f=16, d=16, heads=1, dh=8, mlp=16, slots=4)


def official_and_project(device: torch.device, narrow: bool = False):
    """The official re-statement (seed 0 weights) and the project's UR-DMU with those weights converted
    (``vad-convert``'s name mapping and size inference)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from official_urdmu import OfficialURDMU, official_test_scores
    from vadedge.train.convert import map_official_urdmu, urdmu_config_from_official
    from vadedge.train.models import URDMU

    torch.manual_seed(0)
    official = OfficialURDMU(**(NARROW if narrow else {})).eval()
    state = map_official_urdmu(official.official_state_dict())
    project = URDMU(urdmu_config_from_official(state, heads=NARROW["heads"] if narrow else 4)).eval()
    project.load_state_dict(state)
    return official.to(device), official_test_scores, project.to(device)


def worker(args) -> int:
    """Score the given videos with one implementation; print {"seconds", "peak_rss_mib"} as JSON.

    Only the scoring calls are timed (feature synthesis is not); features are made one video at a time,
    so the peak RSS is the scorer's plus one video's features.
    """
    device = device_or_exit(args.device)
    if args.model == "urdmu":
        official, official_loop, project = official_and_project(device, args.narrow)
    else:  # GS-MoE / MoME at published size, seed-0 weights: the project's test path only
        torch.manual_seed(0)
        project = build(args.model).to(device).eval()
    feature_dim = project.config.feature_dim
    lengths = [int(v) for v in args.worker_lengths.split(",")]
    seconds, cpu, scores = 0.0, 0.0, {}
    with torch.inference_mode():
        warm = video_features(2**32 - 1, args.crops, 16, feature_dim, device)  # one-time set-up (kernels, allocator) untimed
        official_loop(official, warm) if args.worker == "official" else score_video(project, warm)
        for i, t in enumerate(lengths):
            feats = video_features(i, args.crops, t, feature_dim, device)
            sync(device)
            t0, c0 = time.perf_counter(), cpu_seconds()
            s = (official_loop(official, feats).cpu().numpy() if args.worker == "official" else score_video(project, feats))
            sync(device)
            seconds += time.perf_counter() - t0
            cpu += cpu_seconds() - c0
            if args.scores_out:
                scores[f"v{i}"] = s
            del feats
    if args.scores_out:
        np.savez(args.scores_out, **scores)
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "threads": torch.get_num_threads(), "peak_rss_mib": peak_rss_mib()}))
    return 0


def run_case(impl: str, lengths: list[int], crops: int, args, scores_out: Path | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", impl, "--worker-lengths", ",".join(map(str, lengths)),
           "--crops", str(crops), "--device", args.device, "--threads", str(args.threads), "--model", args.model]
    cmd += ["--narrow"] if args.narrow else []
    if scores_out:
        cmd += ["--scores-out", str(scores_out)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["killed"])[-1][:200], "returncode": out.returncode}
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- reports
def against_official(args, lengths: list[int]) -> dict:
    """Interleaved rounds of official vs project for each case; the first round also compares the scores."""
    import tempfile

    longest = sorted(range(len(lengths)), key=lambda i: -lengths[i])[: min(2, args.crop10_videos)]
    others = [i for i in range(len(lengths)) if i not in longest][: max(0, args.crop10_videos - len(longest))]
    cases = [("1 crop", lengths, 1), ("10 crops", [lengths[i] for i in sorted(longest + others)], 10)]
    cases = [c for c in cases if c[2] in args.cases]
    report = {"cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name, case_lengths, crops in cases:
            runs = {impl: [] for impl in IMPLS}
            diff = None
            for r in range(args.rounds):
                order = IMPLS if r % 2 == 0 else IMPLS[::-1]
                for impl in order:
                    out = Path(tmp) / f"{impl}.npz" if r == 0 else None
                    runs[impl].append(run_case(impl, case_lengths, crops, args, out))
                    print(f"  {name}: round {r + 1} {impl}: {runs[impl][-1]}", file=sys.stderr, flush=True)
                if r == 0 and all("error" not in runs[i][0] for i in IMPLS):
                    a, b = np.load(Path(tmp) / "official.npz"), np.load(Path(tmp) / "vadedge.npz")
                    diff = max(float(np.abs(a[k] - b[k]).max()) for k in a.files)
            report["cases"].append(summarise(name, len(case_lengths), sum(case_lengths), crops, runs, diff))
    return report


def summarise(name, videos, snippets, crops, runs, diff) -> dict:
    row = {"case": name, "videos": videos, "snippets": snippets, "crops": crops, "max_abs_score_diff": diff}
    for impl, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        row[impl] = {"seconds": [r["seconds"] for r in ok], "peak_rss_mib": [r["peak_rss_mib"] for r in ok],
                     "errors": [r["error"] for r in rs if "error" in r]}
        row[impl]["median_s"] = statistics.median(row[impl]["seconds"]) if ok else None
        row[impl]["cpu_median_s"] = statistics.median(r["cpu_s"] for r in ok) if ok else None
        row[impl]["peak_rss_mib_max"] = max(row[impl]["peak_rss_mib"]) if ok else None
    if row["official"]["median_s"] and row["vadedge"]["median_s"]:
        paired = [o / v for o, v in zip(row["official"]["seconds"], row["vadedge"]["seconds"])]
        row["ratio_of_medians"] = row["official"]["median_s"] / row["vadedge"]["median_s"]
        row["paired_ratios"] = paired
        row["cpu_ratio_of_medians"] = row["official"]["cpu_median_s"] / row["vadedge"]["cpu_median_s"]
    return row


def growth(args) -> dict:
    rows = []
    for t in args.growth:
        row = {"T": t}
        for impl in IMPLS:
            if impl == "official" and args.model != "urdmu":
                row[impl] = {"skipped": "no official code"}
                continue
            if impl == "official" and t > args.official_max_t:
                row[impl] = {"skipped": f"T > --official-max-t {args.official_max_t}"}
                continue
            row[impl] = run_case(impl, [t], 1, args)
            print(f"  growth T={t} {impl}: {row[impl]}", file=sys.stderr, flush=True)
        rows.append(row)
    return {"growth": rows}


def fmt(v, spec=".2f"):
    return "n/a" if v is None else format(v, spec)


def markdown(report: dict, header: str) -> str:
    lines = [header, ""]
    if "cases" in report:
        lines += ["| case | videos | snippets | official median s | vadedge median s | ratio official/vadedge (paired) "
                  "| CPU-time ratio (medians) | peak RSS official / vadedge (MiB) | max abs score diff |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for c in report["cases"]:
            o, v = c["official"], c["vadedge"]
            paired = " ".join(f"{p:.2f}" for p in c.get("paired_ratios", []))
            lines.append(f"| {c['case']} | {c['videos']} | {c['snippets']} | {fmt(o['median_s'])} | {fmt(v['median_s'])} "
                         f"| {fmt(c.get('ratio_of_medians'))} ({paired}) | {fmt(c.get('cpu_ratio_of_medians'))} "
                         f"({fmt(o['cpu_median_s'])} / {fmt(v['cpu_median_s'])} s) | {fmt(o['peak_rss_mib_max'], '.0f')} / "
                         f"{fmt(v['peak_rss_mib_max'], '.0f')} | {fmt(c['max_abs_score_diff'], '.1e')} |")
            for impl in IMPLS:
                for e in c[impl]["errors"]:
                    lines.append(f"|  | {impl} failed: {e} | | | | | | | |")
    if "growth" in report:
        lines += ["| T | official s | official peak RSS MiB | vadedge s | vadedge CPU s | vadedge peak RSS MiB | ratio (wall) |",
                  "|---|---|---|---|---|---|---|"]
        for r in report["growth"]:
            o, v = r["official"], r["vadedge"]
            cell = lambda d, k, s=".2f": (d.get("skipped") or d.get("error") or "n/a") if k not in d else fmt(d[k], s)  # noqa: E731
            ratio = fmt(o["seconds"] / v["seconds"]) if "seconds" in o and "seconds" in v else "n/a"
            lines.append(f"| {r['T']} | {cell(o, 'seconds')} | {cell(o, 'peak_rss_mib', '.0f')} | {cell(v, 'seconds')} | {cell(v, 'cpu_s')} "
                         f"| {cell(v, 'peak_rss_mib', '.0f')} | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--annotation", type=Path, default=DEFAULT_ANNOTATION)
    p.add_argument("--models", default="urdmu,gsmoe,mome", help=f"comma-separated, from {list_models()}")
    p.add_argument("--crops", type=counts(1), default=1)
    p.add_argument("--videos", type=counts(0), default=0, help="score only the first N videos (0 = all)")
    p.add_argument("--repeats", type=counts(1), default=3, help="timed passes over the set; the median is reported")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (exit 2 with one line when CUDA is absent)")
    p.add_argument("--threads", type=counts(0), default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--against-official", action="store_true", help="official UR-DMU test loop vs the project (subprocesses)")
    p.add_argument("--rounds", type=counts(1), default=4, help="interleaved rounds per case (--against-official, --levers)")
    p.add_argument("--levers", action="store_true", help="UR-DMU speed levers A/B in one process (folding, stacking)")
    p.add_argument("--crop10-videos", type=counts(1), default=30, help="videos in the 10-crop case, the 2 longest included")
    p.add_argument("--cases", type=counts(1, many=True), choices=[[1], [10], [1, 10], [10, 1]], default=[1, 10],
                   help="--against-official cases by crop count: 1, 10 or 1,10")
    p.add_argument("--model", default="urdmu", choices=list_models(), help="--growth: the model (official side: urdmu only)")
    p.add_argument("--growth", type=counts(1, many=True), default=[],
                   help="comma-separated T: one video each, official and project")
    p.add_argument("--official-max-t", type=counts(1), default=16384, help="largest T the official side is run at (memory ~33 B x T^2)")
    p.add_argument("--narrow", action="store_true", help="toy-width UR-DMU (structure only) for --growth up to T = 162,000")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")
    p.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    p.add_argument("--worker-lengths", help=argparse.SUPPRESS)
    p.add_argument("--scores-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = device_or_exit(args.device)
    if args.worker:
        return worker(args)
    if args.growth:
        report = growth(args)
    else:
        if not args.annotation.is_file():
            print(f"error: {args.annotation} not found (pass --annotation UCF_Annotation.txt)", file=sys.stderr)
            return 2
        lengths = video_lengths(args.annotation)
        if args.videos:
            lengths = lengths[: args.videos]
        if args.levers:
            return levers(args, lengths)
        if not args.against_official:
            return throughput(args, lengths, device)
        report = against_official(args, lengths)
    published = {"urdmu": "UR-DMU", "gsmoe": "GS-MoE (13 experts)", "mome": "MoME (48 experts)"}[args.model] + " at published size"
    width = "NARROW toy-width UR-DMU (16-d, 1 head of 8): memory growth only" if args.narrow else published
    header = (f"# offline_eval ({width}): device {device}, torch {torch.__version__}, threads {args.threads or torch.get_num_threads()}, "
              + ("one video of T snippets, 1 crop" if args.growth else f"rounds {args.rounds}, real UCF-Crime lengths")
              + "; SYNTHETIC features; each case in its own subprocess")
    print(markdown(report, header))
    if args.json:
        atomic_write_text(args.json, json.dumps({"header": header, **report}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
