"""Per-camera calibration measured: false alarms on normal footage before/after calibration, and detection of
labelled anomaly episodes at the calibrated thresholds, for the model score, scene normality and their fusion.

Footage (each part is scored as its own stream, exactly as vad-runtime scores a file):
- ``vtest.avi`` (REAL surveillance video, all normal, 79 s): two folds, calibrate on one half, test on the other.
  Anomalies are INJECTED by this benchmark into the test half: SYNTHETIC EDITS of the real video (a stretch played
  4x faster, frozen frames, shuffled frames, a flickering bright overlay), one labelled episode per edited copy.
- the demo's SYNTHETIC street camera (rendered, not real): calibrate on 2 min of normal footage of the same
  rendered scene (seed 12345, after the held-out clip's frames), test on the next 2 min (normal + the same four
  edits) and on the held-out clip with its three rendered episodes (Fire, Running, Fighting).

    python benchmarks/calibration.py --model runs/demo/model.onnx --backbone runs/demo/backbone.onnx \\
        --street runs/demo/videos/held_out_street.mp4 --episodes runs/demo/demo_summary.json

Writes benchmarks/results/calibration.{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from vadedge.atomic import atomic_path, atomic_write_text
from vadedge.runtime.backends import make_runner
from vadedge.runtime.calibration import (SaturationError, calibrate, model_hash, score_snippets, simulate_alerts,
                                         smooth_scores, NormalityMemory, motion_descriptor)
from vadedge.runtime.encoder import SnippetAssembler, SnippetEncoder
from vadedge.runtime.scoring import AlertPolicy
from vadedge.runtime.synthetic_scene import render

REPO = Path(__file__).resolve().parents[1]
KINDS = ("fast x4", "frozen", "shuffled", "flicker")
MODES = ("model", "normality", "fused")
DEFAULT = AlertPolicy()  # 0.6 / 0.4 / 2: the runtime's uncalibrated thresholds


# ---------------------------------------------------------------- footage
def read_frames(path: Path, start: int = 0, stop: int | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames, i = [], 0
    while stop is None or i < stop:
        ok, frame = cap.read()
        if not ok:
            break
        if i >= start:
            frames.append(frame)
        i += 1
    cap.release()
    return frames


def edit(frames: list[np.ndarray], kind: str, a: int, b: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A SYNTHETIC edit of frames [a, b) of a real video (the rest untouched)."""
    out = list(frames)
    if kind == "fast x4":  # people "running": the following 4x as many frames played in the same time
        for i in range(a, b):
            out[i] = frames[min(a + 4 * (i - a), len(frames) - 1)]
    elif kind == "frozen":  # a stuck camera / replayed still
        out[a:b] = [frames[a]] * (b - a)
    elif kind == "shuffled":  # frames in random order
        out[a:b] = [frames[a + j] for j in rng.permutation(b - a)]
    elif kind == "flicker":  # a bright light flashing on and off at random (a regular on/off period locked to
        # the backbone's 4-of-16 frame sampling could hide it: a 4-frame period at phase 0 never lands on a sample)
        white = np.full_like(frames[a], 255)
        for i in range(a, b):
            if rng.random() < 0.5:
                out[i] = cv2.addWeighted(frames[i], 0.4, white, 0.6, 0)
    else:
        raise ValueError(kind)
    return out


def snippets_of(frames, encoder):
    asm = SnippetAssembler(encoder)
    for f in frames:
        s = asm.push(f)
        if s is not None:
            yield s


class Scorer:
    def __init__(self, encoder, runner, window):
        self.encoder, self.runner, self.window = encoder, runner, window

    def __call__(self, frames):
        return score_snippets(snippets_of(frames, self.encoder), self.encoder, self.runner, self.window)


# ---------------------------------------------------------------- evaluation
def channel(cal, scored):
    raw, feats, motion = scored
    return raw if cal is None else cal.score(raw, feats, motion)


def count_alerts(scores, policy, smooth, dt):
    alerts = simulate_alerts(scores, policy, smooth, dt)
    return alerts, sum(b - a + 1 for a, b in alerts)


def detect(scores, policy, smooth, dt, ep: tuple[int, int], baseline=None):
    """(detected, delay s from the episode's first snippet to the alert being reported). With ``baseline`` (the
    same stream unedited), an alert that the unedited stream also has there is no detection ("already")."""
    a0, b0 = ep
    late = smooth + policy.min_snippets  # smoothing lag: an alert may start a few snippets after the episode

    def hits(s):
        return [(a, b) for a, b in simulate_alerts(s, policy, smooth, dt) if a <= b0 + late and b >= a0]

    found = hits(scores)
    if baseline is not None and hits(baseline):
        return "already", None
    if not found:
        return False, None
    confirm = found[0][0] + policy.min_snippets - 1
    return True, max(confirm + 1 - a0, 0) * dt


def calibrations(cal_scored, dt, args, model_sha, log):
    raw, feats, motion = cal_scored
    out = {}
    for mode in MODES:
        try:
            out[mode] = calibrate(raw, feats, dt, motion=None if args.no_motion else motion, mode=mode, false_alarms_per_hour=args.rate, smooth=args.smooth,
                                  min_snippets=args.min_duration, window=args.window, camera="bench", model_sha256=model_sha,
                                  memory_size=args.memory_size)
        except SaturationError as exc:
            out[mode] = str(exc)
            log(f"  {mode}: refused: {exc}")
    return out


def evaluate_camera(name, cal_parts, test_parts, scorer, dt, args, model_sha, log, episodes_extra=()):
    """cal_parts/test_parts: lists of frame lists, paired by fold. Returns rows and plot traces."""
    rng = np.random.default_rng(0)
    rows = {m: {"normal_s": 0.0, "before": [0, 0], "after": [0, 0], "detect": {}, "cal": []} for m in MODES}
    traces = []
    ep_len = int(round(args.episode_s / dt)) * scorer.encoder.snippet_frames  # frames, whole snippets
    for fold, (cal_frames, test_frames) in enumerate(zip(cal_parts, test_parts)):
        t0 = time.perf_counter()
        cal_scored = scorer(cal_frames)
        test = scorer(test_frames)
        cals = calibrations(cal_scored, dt, args, model_sha, log)
        n = len(test[0])
        mid = (n // 2 - ep_len // scorer.encoder.snippet_frames // 2) * scorer.encoder.snippet_frames
        ep = (mid // scorer.encoder.snippet_frames, (mid + ep_len) // scorer.encoder.snippet_frames - 1)
        edited = {k: scorer(edit(test_frames, k, mid, mid + ep_len, rng)) for k in KINDS}
        for mode, cal in cals.items():
            r = rows[mode]
            r["normal_s"] += n * dt
            if mode == "model":  # before calibration: the runtime's default thresholds on the model's score
                alerts, snips = count_alerts(test[0], DEFAULT, args.smooth, dt)
                r["before"][0] += len(alerts)
                r["before"][1] += snips
            if isinstance(cal, str):
                r["cal"].append({"fold": fold, "refused": cal})
                continue
            r["cal"].append({"fold": fold, "mode": cal.mode, "start": cal.thresholds.start, "stop": cal.thresholds.stop,
                             "expected_per_hour": cal.thresholds.expected_per_hour,
                             "range_per_hour": cal.thresholds.rate_range_per_hour, "method": cal.thresholds.method,
                             "notes": cal.notes})
            s = channel(None if mode == "model" else cal, test)
            # before, for the novelty scores: their standardised score at the default thresholds
            for key, pol in ((("before", DEFAULT),) if mode != "model" else ()) + (("after", cal.policy),):
                alerts, snips = count_alerts(s, pol, args.smooth, dt)
                r[key][0] += len(alerts)
                r[key][1] += snips
            for k, scored in edited.items():
                hit, delay = detect(channel(None if mode == "model" else cal, scored), cal.policy, args.smooth, dt, ep, s)
                r["detect"].setdefault(k, []).append((hit, delay))
            for k, (scored, ep_x) in episodes_extra:
                hit, delay = detect(channel(None if mode == "model" else cal, scored), cal.policy, args.smooth, dt, ep_x)
                r["detect"].setdefault(k, []).append((hit, delay))
            if mode == "fused" and fold == 0:
                panels = [(k, scored, [ep]) for k, scored in edited.items()]
                if episodes_extra:  # one clip holding all the rendered episodes
                    panels.append(("held-out clip", episodes_extra[0][1][0], [e for _, (_, e) in episodes_extra]))
                for k, scored, eps in panels:
                    traces.append({"camera": name, "kind": k, "model": scored[0], "mode": cal.mode, "dt": dt, "eps": eps,
                                   "score": smooth_scores(cal.score(*scored), args.smooth),
                                   "start": cal.policy.start, "stop": cal.policy.stop})
        log(f"  fold {fold}: {len(cal_scored[0])} calibration / {n} test snippets, {time.perf_counter() - t0:.0f} s")
    return rows, traces


# ---------------------------------------------------------------- report
def table(results, args) -> str:
    lines = ["| camera | score | calibrated start/stop, method (per fold) | expected false alarms/h (~95%) | "
             "normal footage: alerts at default 0.6/0.4 | normal footage: alerts calibrated | "
             + " | ".join(f"{k}: detected, delay" for k in results["kinds"]) + " |",
             "|" + "---|" * (6 + len(results["kinds"]))]
    for cam, rows in results["cameras"].items():
        dt = rows["dt"]
        for mode in MODES:
            r = rows["rows"][mode]
            secs = r["normal_s"]
            cells = []
            for c in r["cal"]:
                if "refused" in c:
                    cells.append("refused: saturated")
                else:
                    m = c["mode"] + ("" if c["mode"] == mode else " (model dropped: saturated)")
                    cells.append(f"{c['start']:.4g}/{c['stop']:.4g} {c['method']}" + ("" if c["mode"] == mode else f", {m}"))
            exp = [f"{c['expected_per_hour']:.2g} ({c['range_per_hour'][0]:.2g}-{c['range_per_hour'][1]:.2g})"
                   for c in r["cal"] if "refused" not in c]
            before = f"{r['before'][0]} in {secs:.0f} s ({100 * dt * r['before'][1] / secs:.0f}% of the time)"
            after = (f"{r['after'][0]} in {secs:.0f} s ({100 * dt * r['after'][1] / secs:.0f}% of the time)" if exp
                     else "refused: saturated (one-line message)")
            det = []
            for k in results["kinds"]:
                d = r["detect"].get(k)
                if not d:
                    det.append("—")
                    continue
                hits = [x for x in d if x[0] is True]
                already = sum(x[0] == "already" for x in d)
                delays = [x[1] for x in hits]
                det.append(f"{len(hits)}/{len(d)}" + (f", {np.median(delays):.1f} s" if delays else "")
                           + (f" ({already} already alerting unedited)" if already else ""))
            lines.append(f"| {cam} | {mode} | {'; '.join(cells)} | {'; '.join(exp) or '—'} | {before} | {after} | "
                         + " | ".join(det) + " |")
    return "\n".join(lines)


def plot(traces, path: Path, min_snippets: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cams = list(dict.fromkeys(t["camera"] for t in traces))
    cols = max(sum(t["camera"] == c for t in traces) for c in cams)
    fig, axes = plt.subplots(len(cams), cols, figsize=(3.2 * cols, 2.6 * len(cams)), squeeze=False)
    for i, cam in enumerate(cams):
        for j, t in enumerate([t for t in traces if t["camera"] == cam]):
            ax = axes[i, j]
            x = (np.arange(len(t["score"])) + 0.5) * t["dt"]
            for a, b in t["eps"]:
                ax.axvspan(a * t["dt"], (b + 1) * t["dt"], color="tab:red", alpha=0.15)
            ax.plot(x, t["model"], color="0.6", lw=1, label="model score (raw)")
            ax.plot(x, t["score"], color="tab:blue", lw=2, label=f"calibrated {t['mode']} score (smoothed)")
            ax.axhline(t["start"], color="tab:orange", ls="--", lw=1, label="calibrated start / stop")
            ax.axhline(t["stop"], color="tab:orange", ls=":", lw=1)
            for s, e in simulate_alerts(t["score"], AlertPolicy(t["start"], t["stop"], min_snippets), 1, t["dt"]):
                ax.axvspan(s * t["dt"], (e + 1) * t["dt"], ymin=0.93, ymax=1.0, color="tab:orange")
            ax.set(ylim=(-0.02, 1.05), title=f"{cam}: {t['kind']}", xlabel="s")
            ax.title.set_fontsize(9)
            if i == 0 and j == 0:
                ax.legend(fontsize=6, loc="lower left")
        for j in range(sum(t["camera"] == cam for t in traces), cols):
            axes[i, j].axis("off")
    fig.suptitle("Calibrated scores (fold 0); red: labelled episodes — edits of vtest.avi are SYNTHETIC edits of a REAL "
                 "video; the street camera is SYNTHETIC", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def knn_cost(encoder, dim, size, frames) -> dict:
    """Median seconds of one k-NN query (memory of ``size`` rows) vs one backbone snippet, side by side."""
    rng = np.random.default_rng(0)
    mem = NormalityMemory.build(rng.standard_normal((size, dim)).astype(np.float32), size)
    q = rng.standard_normal((1, dim)).astype(np.float32)
    snippet = next(snippets_of(frames, encoder))
    m = motion_descriptor(snippet)
    mmem = NormalityMemory.build(np.abs(rng.standard_normal((size, m.size))).astype(np.float32), size, normalise=False)
    knn, mot, bb = [], [], []
    for _ in range(15):
        t0 = time.perf_counter()
        mem.distance(q)
        t1 = time.perf_counter()
        mmem.distance(motion_descriptor(snippet))
        t2 = time.perf_counter()
        encoder.encode_sampled(snippet)
        bb.append(time.perf_counter() - t2)
        knn.append(t1 - t0)
        mot.append(t2 - t1)
    return {"memory_rows": size, "memory_mb": (mem.bank.nbytes + mmem.bank.nbytes) / 1e6,
            "knn_ms_median": 1e3 * float(np.median(knn)), "motion_ms_median": 1e3 * float(np.median(mot)),
            "backbone_ms_median": 1e3 * float(np.median(bb)),
            "ratio": float((np.median(knn) + np.median(mot)) / np.median(bb))}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(REPO / "runs/demo/model.onnx"))
    p.add_argument("--backbone", default=str(REPO / "runs/demo/backbone.onnx"))
    p.add_argument("--vtest", default=str(REPO.parent / "shared/data/video/vtest.avi"))
    p.add_argument("--street", default=str(REPO / "runs/demo/videos/held_out_street.mp4"))
    p.add_argument("--episodes", default=None, help="demo_summary.json with the held-out clip's episodes")
    p.add_argument("--street-seconds", type=float, default=120.0, help="street: seconds of calibration and of test footage")
    p.add_argument("--rate", type=float, default=1.0, help="target false alarms per hour")
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--smooth", type=int, default=3)
    p.add_argument("--min-duration", type=int, default=2)
    p.add_argument("--memory-size", type=int, default=1024)
    p.add_argument("--no-motion", action="store_true", help="scene normality from appearance only")
    p.add_argument("--episode-s", type=float, default=4.8, help="length of each injected edit")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=str(REPO / "benchmarks/results"))
    args = p.parse_args(argv)
    log = lambda m: print(m, flush=True)  # noqa: E731
    out = Path(args.out)
    encoder = SnippetEncoder(args.backbone, "center", args.threads)
    runner = make_runner(args.model, "auto", args.threads)
    scorer = Scorer(encoder, runner, args.window)
    sha = model_hash(args.model)
    results = {"kinds": list(KINDS), "cameras": {}, "args": vars(args)}
    traces = []

    log("vtest.avi (REAL, all normal): 2 folds, halves")
    frames = read_frames(Path(args.vtest))
    fps = cv2.VideoCapture(args.vtest).get(cv2.CAP_PROP_FPS)
    dt = encoder.snippet_frames / fps
    half = len(frames) // 2 // encoder.snippet_frames * encoder.snippet_frames
    parts = [frames[:half], frames[half:]]
    rows, tr = evaluate_camera("vtest.avi (real)", parts, parts[::-1], scorer, dt, args, sha, log)
    results["cameras"]["vtest.avi (real)"] = {"rows": rows, "dt": dt}
    traces += tr
    cost_frames = parts[0][:encoder.snippet_frames]
    del frames, parts

    if args.street and Path(args.street).is_file():
        log("street camera (SYNTHETIC): render 2 x normal footage of the held-out clip's scene")
        from vadedge.runtime.synthetic_scene import FPS

        held_frames = 40 * FPS
        n = int(args.street_seconds * FPS) // encoder.snippet_frames * encoder.snippet_frames
        with tempfile.TemporaryDirectory() as tmp:
            normal = Path(tmp) / "street_normal.mp4"
            render(normal, held_frames + 2 * n, [], seed=12345)  # same scene (seed) as held_out_street.mp4
            cal_frames = read_frames(normal, held_frames, held_frames + n)
            test_frames = read_frames(normal, held_frames + n, held_frames + 2 * n)
        extra = []
        if args.episodes:
            held = read_frames(Path(args.street))
            scored = scorer(held)
            for e in json.loads(Path(args.episodes).read_text())["episodes"]:
                ep = (e["start"] // encoder.snippet_frames, (e["end"] - 1) // encoder.snippet_frames)
                extra.append((f"rendered {e['kind']}", (scored, ep)))
            results["kinds"] += [k for k, _ in extra]
        dt = encoder.snippet_frames / FPS
        rows, tr = evaluate_camera("street (synthetic)", [cal_frames], [test_frames], scorer, dt, args, sha, log, extra)
        results["cameras"]["street (synthetic)"] = {"rows": rows, "dt": dt}
        traces += tr

    results["knn_cost"] = [knn_cost(encoder, encoder.feature_dim, s, cost_frames) for s in (256, 1024, 4096)]
    md = table(results, args)
    cost = "\n".join(f"- memories {c['memory_rows']} rows x ({encoder.feature_dim} + 96)-d = {c['memory_mb']:.1f} MB: "
                     f"appearance k-NN {c['knn_ms_median']:.2f} ms + motion descriptor and k-NN {c['motion_ms_median']:.2f} ms "
                     f"vs backbone {c['backbone_ms_median']:.1f} ms per snippet (ratio {c['ratio']:.3f}; medians of 15, "
                     "side by side)" for c in results["knn_cost"])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "calibration.md", md + "\n\n" + cost + "\n")
    atomic_write_text(out / "calibration.json", json.dumps(results, indent=1, default=str) + "\n")
    plot(traces, out / "calibration.png", args.min_duration)
    log(md)
    log(cost)
    log(f"wrote {out / 'calibration.md'}, calibration.json, calibration.png")


if __name__ == "__main__":
    main()
