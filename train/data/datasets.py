"""Training samples (every crop a sample, resampled to N snippets) and balanced normal+abnormal batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from vadedge.errors import VadInputError

from .features import VideoEntry, load_features, resample_segments


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
        for vi, video in enumerate(videos):
            for pi, path in enumerate(video.paths):
                ncrop = _crops_in_file(path) if probe else 1
                self.refs.extend(CropRef(vi, pi, c) for c in range(ncrop))
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
    header = np.load(path, mmap_mode="r", allow_pickle=False)
    return header.shape[1] if header.ndim == 3 else 1


class BalancedBatches:
    """Endless batches of ``n_normal`` normal then ``n_abnormal`` anomalous sample indices.

    Each side is an independent shuffled stream, reshuffled when exhausted and sampled without
    replacement within a pass (the official code's two drop_last loaders).
    """

    def __init__(self, labels: np.ndarray, n_normal: int, n_abnormal: int, seed: int):
        self.normal = np.flatnonzero(labels == 0)
        self.abnormal = np.flatnonzero(labels == 1)
        for side, pool, n in (("normal", self.normal, n_normal), ("abnormal", self.abnormal, n_abnormal)):
            if len(pool) < n:
                raise VadInputError(f"batch asks for {n} {side} samples but the training list has only {len(pool)}")
        self.n_normal, self.n_abnormal = n_normal, n_abnormal
        self.rng = np.random.default_rng(seed)
        self._streams = {"normal": self._stream(self.normal, n_normal), "abnormal": self._stream(self.abnormal, n_abnormal)}

    def _stream(self, pool: np.ndarray, n: int) -> Iterator[np.ndarray]:
        while True:
            order = self.rng.permutation(pool)
            for start in range(0, len(order) - n + 1, n):
                yield order[start : start + n]

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            yield np.concatenate([next(self._streams["normal"]), next(self._streams["abnormal"])])
