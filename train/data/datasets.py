"""Training samples (every crop a sample, resampled to N snippets) and balanced normal+abnormal batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from vadedge.errors import VadInputError

from .features import VideoEntry, check_layout, load_features, resample_segments


@dataclass(frozen=True)
class CropRef:
    video: int  # index into the list's videos
    path: int  # which file of the video
    crop: int  # which crop inside that file ([T, ncrop, D] layout), else 0


class TrainCrops:
    """Every crop of every training video is an independent sample, as in the official code."""

    def __init__(self, videos: list[VideoEntry], seq_len: int, feature_dim: int, probe: bool = True):
        self.videos, self.seq_len, self.feature_dim = videos, seq_len, feature_dim
        self.refs: list[CropRef] = []
        crops_seen: dict[int, list] = {}  # crop count -> files with it
        for vi, video in enumerate(videos):
            for pi, path in enumerate(video.paths):
                ncrop = _crops_in_file(path) if probe else 1
                crops_seen.setdefault(ncrop, []).append(path)
                self.refs.extend(CropRef(vi, pi, c) for c in range(ncrop))
        if len(crops_seen) > 1:  # e.g. one short video saved crop-first, [ncrop, T, D]
            usual = max(crops_seen, key=lambda n: len(crops_seen[n]))
            odd = next(n for n in crops_seen if n != usual)
            raise VadInputError(f"feature file {crops_seen[odd][0]}: {odd} crops on axis 1, other files have {usual}; "
                                "every file must be [T, ncrop, D] with the same ncrop (is this one saved crop-first?)")
        self.labels = np.array([videos[r.video].label.label for r in self.refs], dtype=np.int64)
        if not (self.labels == 0).any() or not (self.labels == 1).any():
            raise VadInputError("training list must hold both normal and anomalous videos (found only one kind)")

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        ref = self.refs[i]
        video = self.videos[ref.video]
        feat = load_features(video.paths[ref.path], self.feature_dim)[:, ref.crop, :]
        return resample_segments(feat, self.seq_len), int(video.label.label)


def _crops_in_file(path) -> int:
    try:
        header = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise VadInputError(f"feature file {path}: not a readable .npy array ({exc})") from None
    return check_layout(path, header.shape)


class BalancedBatches:
    """Batches of ``n_normal`` normal then ``n_abnormal`` anomalous sample indices.

    Each side walks its own shuffled pass without replacement, a fresh permutation per pass and the
    incomplete tail dropped (the official code's two drop_last loaders). The batch of step ``s`` is a
    pure function of (seed, s), so a resumed run draws exactly the batches an uninterrupted one would.
    """

    def __init__(self, labels: np.ndarray, n_normal: int, n_abnormal: int, seed: int):
        self.pools = {"normal": np.flatnonzero(labels == 0), "abnormal": np.flatnonzero(labels == 1)}
        self.sizes = {"normal": n_normal, "abnormal": n_abnormal}
        for side, pool in self.pools.items():
            if self.sizes[side] < 1 or len(pool) < self.sizes[side]:
                raise VadInputError(f"batch asks for {self.sizes[side]} {side} samples but the training list has {len(pool)}")
        self.seed = seed

    def _side(self, side: str, step: int) -> np.ndarray:
        pool, n = self.pools[side], self.sizes[side]
        per_pass = len(pool) // n
        epoch, pos = divmod(step, per_pass)
        order = np.random.default_rng([self.seed, 0 if side == "normal" else 1, epoch]).permutation(pool)
        return order[pos * n : (pos + 1) * n]

    def batch(self, step: int) -> np.ndarray:
        return np.concatenate([self._side("normal", step), self._side("abnormal", step)])

    def steps(self, start: int, stop: int) -> Iterator[list[int]]:
        for step in range(start, stop):
            yield self.batch(step).tolist()
