"""Scoring a test list with a model and the evaluation report (table, JSON, optional PNG plots)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from vadedge.atomic import atomic_path, atomic_write_text
from vadedge.errors import VadInputError

from .data.features import VideoEntry, load_video
from .metrics import VideoResult, check_lengths, check_scores, frame_report


@torch.inference_mode()
def score_video(model: torch.nn.Module, feats: torch.Tensor) -> np.ndarray:
    """One video's crops [ncrop, T, F] (on the model's device) -> snippet scores [T] averaged over crops.

    The models score crops in groups of bounded size (``models.crops``), so memory stays linear in T.
    """
    return model(feats[None]).squeeze(0).float().cpu().numpy()


@torch.no_grad()
def score_videos(model: torch.nn.Module, videos: list[VideoEntry], device: torch.device | str = "cpu",
                 progress: bool = False) -> list[np.ndarray]:
    """Full-length snippet scores per video, averaged over crops (test protocol)."""
    model.eval()
    feature_dim = model.config.feature_dim
    out = []
    iterator = videos
    if progress:
        from tqdm import tqdm

        iterator = tqdm(videos, desc="scoring", unit="video", leave=False)
    for video in iterator:
        feats = torch.from_numpy(load_video(video, feature_dim)).to(device)  # [ncrop, T, D]
        out.append(score_video(model, feats))
    return out


def build_results(videos: list[VideoEntry], scores: list[np.ndarray], gt: dict[str, np.ndarray],
                  source: str = "the model") -> list[VideoResult]:
    """Pair each video's snippet scores [T] with its frame GT [16 T]; NaN scores or a missing or
    misaligned GT is a one-line error naming the video (``source`` says where the scores came from)."""
    results = []
    for video, s in zip(videos, scores):
        if video.name not in gt:
            raise VadInputError(f"video {video.name}: listed for testing but missing from the ground-truth file")
        result = VideoResult(video.name, video.label.cls, video.label.label, s, np.asarray(gt[video.name]))
        check_scores(result, source)
        check_lengths(result)
        results.append(result)
    return results


def evaluate(model, videos, gt, device="cpu", far_threshold: float = 0.5, progress: bool = False) -> tuple[dict, list[VideoResult]]:
    results = build_results(videos, score_videos(model, videos, device, progress), gt)
    return frame_report(results, far_threshold), results


def write_report(path: str | os.PathLike, report: dict, extra: dict | None = None) -> Path:
    path = Path(path)
    atomic_write_text(path, json.dumps({**report, **(extra or {})}, indent=2, sort_keys=True) + "\n")
    return path


def write_scores(path: str | os.PathLike, results: list[VideoResult]) -> Path:
    """Per-video snippet scores as .npz (key = video name), e.g. to re-evaluate with vad-eval --scores."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{r.name: r.scores for r in results})
    return path


def plot_results(folder: str | os.PathLike, results: list[VideoResult], limit: int = 24) -> list[Path]:
    """One PNG per video (anomalous first): frame scores with ground-truth anomalies shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chosen = sorted(results, key=lambda r: -r.label)[:limit]
    paths = []
    for r in chosen:
        fig, ax = plt.subplots(figsize=(8, 2.4))
        frames = np.arange(len(r.gt))
        ax.fill_between(frames, 0, r.gt, step="post", color="tab:red", alpha=0.25, label="ground truth")
        ax.plot(frames, r.frame_scores, color="tab:blue", lw=1.2, label="score")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, max(1, len(frames)))
        ax.set_title(f"{r.name} ({r.cls})", fontsize=9)
        ax.set_xlabel("frame")
        ax.legend(loc="upper right", fontsize=7)
        fig.tight_layout()
        path = folder / f"{r.name}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths
