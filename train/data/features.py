"""Reading feature files and list files in the community layout (UR-DMU / RTFM / VadCLIP releases).

Layouts accepted:
- one ``.npy`` per video per crop, ``Name__{crop}.npy`` of shape [T, D] (list files name each crop);
- one ``.npy`` per video of shape [T, ncrop, D] or [T, D].
List files may hold absolute paths from another machine (often Windows): they are resolved
against a feature root given by the user, trying the longest matching path suffix first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from vadedge.errors import VadInputError
from vadedge.validate import read_text

from .names import VideoLabel, video_label, video_name


@dataclass
class VideoEntry:
    """One video: its name, label and its crop files (one file for the [T, ncrop, D] layout)."""

    name: str
    label: VideoLabel
    paths: list[Path] = field(default_factory=list)


def _path_parts(line: str) -> list[str]:
    return [p for p in PurePosixPath(line.strip().replace("\\", "/")).parts if p not in ("/", "")]


def resolve_list_path(line: str, root: Path | None, list_file: Path, lineno: int) -> Path:
    """Find the file a list line names: as written, else root/<longest existing suffix of the path>."""
    raw = line.strip()
    direct = Path(raw)
    if direct.is_absolute() and direct.exists():
        return direct
    parts = _path_parts(raw)
    if parts and ":" in parts[0]:  # Windows drive 'D:'
        parts = parts[1:]
    bases = [root] if root is not None else [list_file.parent]
    for base in bases:
        for start in range(len(parts)):
            candidate = base.joinpath(*parts[start:])
            if candidate.is_file():
                return candidate
    where = f"under root {root}" if root is not None else f"next to {list_file}"
    raise VadInputError(f"{list_file}:{lineno}: feature file {raw!r} not found {where} (tried every suffix of the path)")


SYNTHETIC_MARKER = "SYNTHETIC.json"  # written by every synthetic data generator (vad-train --demo, vad-runtime --demo)


def synthetic_marker(list_file: str | os.PathLike, videos: list[VideoEntry], levels: int = 3) -> Path | None:
    """The ``SYNTHETIC.json`` marker that makes this data synthetic, or None: looked for beside the list file and in
    each feature file's folder and its ``levels`` parents. A model trained on such data is marked synthetic too, so
    the runtime warns and its events say ``synthetic_model: true`` however many steps lie between (issue 11)."""
    folders = {Path(list_file).resolve().parent}
    for video in videos:
        for path in video.paths[:1]:
            folders.update(list(Path(path).resolve().parents)[:levels])
    return next((f / SYNTHETIC_MARKER for f in sorted(folders) if (f / SYNTHETIC_MARKER).is_file()), None)


def read_list(list_file: str | os.PathLike, root: str | os.PathLike | None = None, naming: str = "auto",
              labels: dict[str, int] | None = None) -> list[VideoEntry]:
    """Group a list file's lines into videos (crop files of one video name form one video).

    Names are mapped to annotation names whatever the release (``names.video_name``); labels come
    from the names, or from ``labels`` (split lists, required for ShanghaiTech)."""
    list_file = Path(list_file)
    if not list_file.is_file():
        raise VadInputError(f"list file {list_file} not found")
    root_path = Path(root) if root is not None else None
    if root_path is not None and not root_path.is_dir():
        raise VadInputError(f"feature root {root_path} is not a folder")
    videos: list[VideoEntry] = []
    index: dict[str, VideoEntry] = {}
    for lineno, line in enumerate(read_text(list_file, "list file").splitlines(), 1):
        if not line.strip():
            continue
        path = resolve_list_path(line, root_path, list_file, lineno)
        name, _crop = video_name(path.name)
        if name not in index:
            try:
                label = video_label(name, naming, labels)
            except ValueError as exc:
                raise VadInputError(f"{list_file}:{lineno}: {exc}") from None
            index[name] = VideoEntry(name, label)
            videos.append(index[name])
        index[name].paths.append(path)
    if not videos:
        raise VadInputError(f"list file {list_file} names no feature files")
    return videos


MAX_CROPS = 10  # the community's ten-crop (UCF-Crime I3D) is the most crops any release has


def check_layout(path: Path, shape: tuple[int, ...]) -> int:
    """Crops in a feature file of ``shape`` ([T, D] or [T, ncrop, D]); a crop-first [ncrop, T, D] file is refused.

    A crop axis longer than MAX_CROPS cannot be crops: such a file is [ncrop, T, D] (or not features at all).
    """
    if len(shape) == 2:
        return 1
    if len(shape) != 3:
        raise VadInputError(f"feature file {path}: expected shape [T, D] or [T, ncrop, D], got {list(shape)}")
    if shape[1] > MAX_CROPS:
        hint = (f"; it looks crop-first [ncrop, T, D]: save np.transpose(a, (1, 0, 2)) instead"
                if shape[0] <= MAX_CROPS else "")
        raise VadInputError(f"feature file {path}: shape {list(shape)} has {shape[1]} crops on axis 1, at most "
                            f"{MAX_CROPS} expected for [T, ncrop, D]{hint}")
    return shape[1]


def load_features(path: Path, feature_dim: int | None = None) -> np.ndarray:
    """Load one feature file as float32 [T, ncrop, D] (a [T, D] file gives ncrop = 1) and validate it."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise VadInputError(f"feature file {path} not found") from None
    except (ValueError, OSError) as exc:
        raise VadInputError(f"feature file {path}: not a readable .npy array ({exc})") from None
    check_layout(path, arr.shape)
    if arr.ndim == 2:
        arr = arr[:, None, :]
    if arr.shape[0] == 0:
        raise VadInputError(f"feature file {path}: empty video (T = 0 snippets)")
    if feature_dim is not None and arr.shape[-1] != feature_dim:
        raise VadInputError(f"feature file {path}: feature dim {arr.shape[-1]}, the model expects {feature_dim}")
    out = np.asarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise VadInputError(f"feature file {path}: contains NaN or inf")
    return out


def load_video(entry: VideoEntry, feature_dim: int | None = None) -> np.ndarray:
    """All crops of a video as float32 [ncrop, T, D]."""
    crops = [load_features(p, feature_dim) for p in entry.paths]
    lengths = {c.shape[0] for c in crops}
    if len(lengths) != 1:
        raise VadInputError(f"video {entry.name}: crop files differ in length {sorted(lengths)}")
    return np.concatenate(crops, axis=1).transpose(1, 0, 2)


def resample_segments(feat: np.ndarray, length: int) -> np.ndarray:
    """Official UR-DMU/RTFM resampling of [T, D] to [length, D]: mean over bins of linspace(0, T, length+1).

    Bin edges are truncated to integers; an empty bin copies the single snippet at its left edge,
    so short videos are up-sampled by repetition.
    """
    t = feat.shape[0]
    edges = np.linspace(0, t, length + 1).astype(np.int64)
    csum = np.concatenate([np.zeros((1, feat.shape[1])), np.cumsum(feat, axis=0, dtype=np.float64)])
    lo, hi = edges[:-1], edges[1:]
    width = (hi - lo)[:, None]
    means = (csum[hi] - csum[lo]) / np.maximum(width, 1)
    out = np.where(width > 0, means, feat[np.minimum(lo, t - 1)])
    return out.astype(np.float32)
