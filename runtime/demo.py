"""``vad-runtime --demo``: the whole product on SYNTHETIC data, needing nothing outside the package.

1. render surveillance-like scene videos with OpenCV (walkers; Running / Falling / Fighting / Fire episodes),
2. export the EfficientNet-Lite0 backbone (ImageNet weights) to ONNX and extract snippet features with it,
3. train a small UR-DMU on the weakly-labelled clips (video-level labels only),
4. export it to ONNX (custom ops + fallbacks),
5. stream a held-out clip through the runtime exactly as a camera would be, print alerts, and plot the
   scores with the ground truth shaded.

Training and export need PyTorch (the training machine); the streaming step is the edge runtime.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from vadedge.atomic import atomic_write_text

from .synthetic_scene import ANOMALIES, FPS, clip_name, random_episodes, render

SNIPPET = 16
DEMO_MODEL = dict(feature_dim=1280, dim=64, heads=2, head_dim=32, mlp_dim=64, head_hidden=32, normal_slots=30,
                  abnormal_slots=30, dropout=0.3)
DEMO_TRAIN = dict(iterations=200, lr=5e-4, batch_normal=8, batch_abnormal=8, seq_len=24, eval_every=25, seed=0)


def _render_set(out: Path, rng: np.random.Generator, normal: int, abnormal: int, start_index: int) -> dict[str, np.ndarray]:
    gts = {}
    for i in range(normal + abnormal):
        frames = int(rng.integers(8 * FPS, 12 * FPS))
        kind = None if i < normal else ANOMALIES[i % len(ANOMALIES)]
        episodes = [] if kind is None else random_episodes(rng, frames, [kind])
        name = clip_name(kind, start_index + i)
        gts[name] = render(out / f"{name}.mp4", frames, episodes, seed=int(rng.integers(1 << 30)))
    return gts


def _snippet_gt(frame_gt: np.ndarray, snippets: int) -> np.ndarray:
    return frame_gt[: snippets * SNIPPET]


def run_demo(out: Path, log=print) -> dict:
    from vadedge.export.backbone_export import export_backbone
    from vadedge.export.onnx_export import export_onnx
    from vadedge.train.checkpoint import load_model
    from vadedge.train.config import TrainConfig
    from vadedge.train.data.features import read_list
    from vadedge.train.gt import save_gt
    from vadedge.train.models import URDMUConfig
    from vadedge.train.trainer import train

    from .app import build_parser, run_from_args
    from .encoder import SnippetEncoder
    from .extract import extract_video, write_features

    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "SYNTHETIC.json", json.dumps({"SYNTHETIC": True, "what": "vad-runtime --demo: rendered scenes, "
                                                          "not real surveillance video"}, indent=2) + "\n")
    rng = np.random.default_rng(0)
    videos = out / "videos"
    log("[1/5] rendering SYNTHETIC scene videos …")
    for split in ("train", "test"):
        (videos / split).mkdir(parents=True, exist_ok=True)
    train_gt = _render_set(videos / "train", rng, normal=12, abnormal=12, start_index=0)
    test_gt = _render_set(videos / "test", rng, normal=4, abnormal=4, start_index=100)
    held_frames = 40 * FPS
    held_episodes = random_episodes(rng, held_frames, ["Fire", "Running", "Fighting"])
    held = videos / "held_out_street.mp4"
    held_gt = render(held, held_frames, held_episodes, seed=12345)

    log("[2/5] exporting the EfficientNet-Lite0 backbone and extracting features …")
    backbone = out / "backbone.onnx"
    if not backbone.is_file():
        export_backbone("efficientnet_lite0", backbone)
    encoder = SnippetEncoder(backbone)
    feats_dir = out / "features"
    lists, frame_gt = {"train": [], "test": []}, {}
    for split, gts in (("train", train_gt), ("test", test_gt)):
        for name, gt in gts.items():
            feats = extract_video(videos / split / f"{name}.mp4", encoder)
            for p in write_features(feats_dir / split, name, feats):
                lists[split].append(str(p.relative_to(out)))
            if split == "test":
                frame_gt[name] = _snippet_gt(gt, len(feats))
    for split, lines in lists.items():
        atomic_write_text(out / f"{split}.list", "\n".join(lines) + "\n")
    save_gt(out / "test_gt.npz", frame_gt)

    log("[3/5] training UR-DMU on the weakly-labelled clips (video labels only) …")
    result = train("urdmu", URDMUConfig(**DEMO_MODEL), read_list(out / "train.list", out), out / "train",
                   cfg=TrainConfig(**DEMO_TRAIN), test_videos=read_list(out / "test.list", out),
                   test_gt={k: v for k, v in frame_gt.items()}, progress=False, extra_meta={"synthetic": True})
    log(f"      best test AUC {100 * result.best_metrics.get('auc', float('nan')):.1f} at step {result.best_step}")

    log("[4/5] exporting the model to ONNX …")
    model, _ = load_model(out / "train" / "best.safetensors")
    export_onnx(model, out / "model.onnx", extra_meta={"synthetic": True})

    log("[5/5] streaming the held-out clip through vad-runtime …")
    events = out / "events.jsonl"
    events.unlink(missing_ok=True)
    args = build_parser().parse_args(["--video", str(held), "--model", str(out / "model.onnx"), "--backbone", str(backbone),
                                      "--window", "32", "--smooth", "3", "--start", "0.6", "--stop", "0.4", "--min-duration", "2",
                                      "--events", str(events), "--clips", str(out / "clips"), "--scores-out",
                                      str(out / "held_out_scores.npz"), "--stats-every", "0", "--queue", "64"])
    runtime = run_from_args(args, log=log)
    trace = runtime.traces()[held.stem]
    snippet_gt = held_gt[: len(trace) * SNIPPET].reshape(-1, SNIPPET).max(1)
    summary = {"alerts": [a.to_record("end") for a in runtime.alerts], "episodes": [e.__dict__ for e in held_episodes],
               "stream_auc": _auc(trace[:, 3], snippet_gt), "seconds": round(time.perf_counter() - t_start, 1),
               "train_best_auc": result.best_metrics.get("auc")}
    plot = _plot(out / "held_out_scores.png", trace, held_gt, runtime.alerts, args.start, args.stop)
    atomic_write_text(out / "demo_summary.json", json.dumps(summary, indent=2) + "\n")
    log("episodes (ground truth): " + ", ".join(f"{e.kind} {e.start / FPS:.1f}-{e.end / FPS:.1f} s" for e in held_episodes))
    log(f"alerts: {len(runtime.alerts)}; streaming snippet AUC on the held-out clip {100 * summary['stream_auc']:.1f}")
    log(f"score plot: {plot}   events: {events}   (all SYNTHETIC; {summary['seconds']} s)")
    return summary


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from vadedge.train.metrics import roc_auc

    return float(roc_auc(labels.astype(np.int64), scores)) if 0 < labels.sum() < len(labels) else float("nan")


def _plot(path: Path, trace: np.ndarray, frame_gt: np.ndarray, alerts, start: float, stop: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3))
    t = np.arange(len(frame_gt)) / FPS
    ax.fill_between(t, 0, frame_gt.astype(float), color="tab:red", alpha=0.15, step="post", label="ground truth")
    mid = (trace[:, 0] + trace[:, 1]) / 2
    ax.plot(mid, trace[:, 2], color="0.6", lw=1, label="raw score")
    ax.plot(mid, trace[:, 3], color="tab:blue", lw=2, label="smoothed")
    ax.axhline(start, color="tab:orange", ls="--", lw=1, label="alert start/stop")
    ax.axhline(stop, color="tab:orange", ls=":", lw=1)
    for a in alerts:
        ax.axvspan(a.start, a.end, ymin=0.95, ymax=1.0, color="tab:orange")
    ax.set(xlabel="seconds", ylabel="anomaly score", ylim=(0, 1.02), title="vad-runtime on a held-out SYNTHETIC clip")
    ax.legend(loc="upper left", fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
