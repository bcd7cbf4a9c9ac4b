"""GS-MoE demo ablation (SYNTHETIC data): which TGS / schedule setting moves stage 2 and the gate.

Every variant is the same ``vad-train --model gsmoe --demo`` run with a few settings changed; per seed all
variants start from one shared stage-1 encoder (trained once, then copied), so within a seed the runs differ
only by the variant's settings. Prints one row per run (the exact command) and the mean ± std per variant.

    python benchmarks/gsmoe_ablation.py --out runs/gsmoe-ablation --seeds 0,1,2 --jobs 2
    python benchmarks/gsmoe_ablation.py --variants default,old --seeds 0   # a subset
    python benchmarks/gsmoe_ablation.py --out runs/gsmoe-ablation --report-only

Runs are resumable: a run folder whose comparison.json exists is read back, not rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# The issue-17 changes one at a time, and all of them undone ("old"). "absolute" was the default until the
# ablation showed the scale-free "range" prominence (today's default) trains the best gate.
ABSOLUTE = ["--set", "tgs_prominence_of=absolute"]
VARIANTS = {
    "default": [],
    "absolute": ABSOLUTE,
    "no-tgs-warmup": ["--tgs-warmup", "0", *ABSOLUTE],
    "scores-sigma": ["--set", "tgs_kernel_sigma=temporal-scores", *ABSOLUTE],
    "local-max": ["--set", "tgs_peaks=local-max"],
    "prominence-only": ["--tgs-warmup", "0", "--set", "tgs_kernel_sigma=temporal-scores", *ABSOLUTE],
    "old": ["--tgs-warmup", "0", "--set", "tgs_kernel_sigma=temporal-scores", "--set", "tgs_peaks=local-max"],
}
METRICS = (("urdmu_tgs", "auc"), ("urdmu_tgs", "auc_abnormal"), ("gsmoe", "auc"), ("gsmoe", "auc_abnormal"))


def command(run: Path, seed: int, variant: str, nice: int) -> list[str]:
    exe = Path(sys.executable).with_name("vad-train")
    return ["nice", "-n", str(nice), str(exe), "--model", "gsmoe", "--demo", "--seed", str(seed), "--out", str(run),
            "--no-progress", *VARIANTS[variant]]


def seed_base(run: Path, base: Path) -> None:
    """Copy a finished stage 1 and the synthetic data into ``base`` (atomically, by rename)."""
    tmp = base.with_name(base.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for part in ("synthetic_data", "stage1_encoder"):
        shutil.copytree(run / part, tmp / part)
    tmp.rename(base)


def prepare(run: Path, base: Path) -> None:
    if not (run / "stage1_encoder" / "DONE").exists():
        shutil.rmtree(run, ignore_errors=True)
        for part in ("synthetic_data", "stage1_encoder"):
            shutil.copytree(base / part, run / part)


def results(run: Path) -> dict | None:
    path = run / "comparison.json"
    if not path.exists():
        return None
    rep = json.loads(path.read_text())
    return {f"{stage}.{m}": 100 * rep[stage][m] for stage, m in METRICS}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--jobs", type=int, default=2, help="runs at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (OMP_NUM_THREADS)")
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--report-only", action="store_true", help="print the table of the finished runs; start none")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        p.error(f"--variants: unknown {unknown}; known: {sorted(VARIANTS)}")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    todo = [] if args.report_only else [(s, v) for s in seeds for v in variants]
    running: dict[tuple[int, str], subprocess.Popen] = {}
    while todo or running:
        for key, proc in list(running.items()):
            if proc.poll() is not None:
                del running[key]
                if proc.returncode:
                    print(f"seed {key[0]} {key[1]}: exit {proc.returncode} (see its log.txt)", file=sys.stderr)
        for s in seeds:  # a leader's finished stage 1 becomes its seed's base
            base = args.out / f"seed{s}" / "base"
            for v in VARIANTS:
                run = args.out / f"seed{s}" / v
                if not base.exists() and (run / "stage1_encoder" / "DONE").exists():
                    seed_base(run, base)
        for s, v in list(todo):
            if len(running) >= args.jobs:
                break
            run, base = args.out / f"seed{s}" / v, args.out / f"seed{s}" / "base"
            if results(run) is not None:
                todo.remove((s, v))
                continue
            if base.exists():
                prepare(run, base)
            elif any(k[0] == s for k in running):
                continue  # this seed's first run is still training the shared stage 1
            run.mkdir(parents=True, exist_ok=True)
            cmd = command(run, s, v, args.nice)
            (run / "command.txt").write_text(" ".join(cmd) + "\n")
            running[(s, v)] = subprocess.Popen(cmd, stdout=open(run / "log.txt", "w"), stderr=subprocess.STDOUT, env=env)
            todo.remove((s, v))
        if todo or running:
            time.sleep(5)
    report(args.out, seeds, variants)
    return 0


def report(out: Path, seeds: list[int], variants: list[str]) -> None:
    header = "| variant | seed | stage 2 AUC | stage 2 AUC_A | gate AUC | gate AUC_A | command |"
    rows, summary, table = [header, "|" + "---|" * 7], [], {}
    for v in variants:
        per_seed = {}
        for s in seeds:
            run = out / f"seed{s}" / v
            r = results(run)
            if r is None:
                continue
            per_seed[s] = r
            cmd = (run / "command.txt").read_text().strip() if (run / "command.txt").exists() else ""
            rows.append(f"| {v} | {s} | " + " | ".join(f"{r[f'{a}.{m}']:.2f}" for a, m in METRICS) + f" | `{cmd}` |")
        table[v] = per_seed
        if per_seed:
            cells = []
            for a, m in METRICS:
                vals = [r[f"{a}.{m}"] for r in per_seed.values()]
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{statistics.mean(vals):.2f} ± {sd:.2f}")
            summary.append(f"| {v} | {len(per_seed)} | " + " | ".join(cells) + " |")
    print("\n".join(rows))
    print("\n| variant | seeds | stage 2 AUC | stage 2 AUC_A | gate AUC | gate AUC_A |\n|---|---|---|---|---|---|")
    print("\n".join(summary))
    base = table.get("default", {})
    paired = []
    for v, per_seed in table.items():
        common = sorted(set(per_seed) & set(base)) if v != "default" else []
        if common:
            cells = [" / ".join(f"{per_seed[s][f'{a}.{m}'] - base[s][f'{a}.{m}']:+.2f}" for s in common) for a, m in METRICS]
            paired.append(f"| {v} | {','.join(map(str, common))} | " + " | ".join(cells) + " |")
    if paired:
        print("\nminus default, same seed (per seed):\n| variant | seeds | stage 2 AUC | stage 2 AUC_A | gate AUC | gate AUC_A |"
              "\n|---|---|---|---|---|---|")
        print("\n".join(paired))
    (out / "ablation.json").write_text(json.dumps({"variants": {v: VARIANTS[v] for v in variants}, "runs": table}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
