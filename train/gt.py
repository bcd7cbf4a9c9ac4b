"""Frame-level ground truth from the official annotation files (``vad-gt``).

Public convention: a video of F frames has T snippets of 16 frames and its GT keeps exactly
16*T frames (trailing frames dropped), so ``np.repeat(scores, 16)`` lines up with it.
T is best taken from the features themselves (``lengths``); from frame counts alone it is
``F // 16`` (``trailing="drop"``) or ``ceil(F / 16)`` for extractors that pad the last chunk.
Intervals are end-exclusive ``[s, e)`` unless ``end_inclusive``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vadedge.atomic import atomic_path
from vadedge.errors import VadInputError
from vadedge.validate import binary_labels, load_npz, read_text

from .data.names import video_label, video_name

SNIPPET = 16
TRAILING = ("drop", "pad")

# The public UCF-Crime I3D release (UR-DMU, RTFM lists) has one snippet fewer than F // 16 for these
# nine test videos, all with F divisible by 16: its decoder returned one frame fewer. The public
# gt-ucf.npy follows the features, so convention "ucf-public-i3d" applies this when only frame
# counts are known. With the features at hand, pass their lengths instead.
UCF_PUBLIC_I3D_SHORT = frozenset({
    "Normal_Videos_881_x264", "RoadAccidents010_x264", "Burglary037_x264", "Assault006_x264", "Shoplifting015_x264",
    "Shoplifting010_x264", "RoadAccidents016_x264", "Normal_Videos_914_x264", "Shooting046_x264",
})
CONVENTIONS = {"plain": frozenset(), "ucf-public-i3d": UCF_PUBLIC_I3D_SHORT}


@dataclass
class Annotation:
    name: str
    cls: str
    frames: int | None  # None when the file has no frame counts
    intervals: list[tuple[int, int]] = field(default_factory=list)


def _video_name(token: str) -> str:
    return video_name(token)[0]


def _annotation_lines(path: str | os.PathLike):
    """(path, line number, line, whitespace-split fields) of each non-empty line."""
    path = Path(path)
    for lineno, line in enumerate(read_text(path, "annotation file").splitlines(), 1):
        if line.split():
            yield path, lineno, line, line.split()


def read_ucf_annotations(path: str | os.PathLike) -> list[Annotation]:
    """UCF-Crime: ``UCF_Annotation.txt`` (``Class/Name.mp4 F Class s1 e1 s2 e2``) or the official
    ``Temporal_Anomaly_Annotation.txt`` (``Name Class s1 e1 s2 e2``); -1 marks no interval."""
    out = []
    for path, lineno, line, parts in _annotation_lines(path):
        try:
            if len(parts) == 7:
                frames, cls, nums = int(parts[1]), parts[2], parts[3:]
            elif len(parts) == 6:
                frames, cls, nums = None, parts[1], parts[2:]
            else:
                raise ValueError
            bounds = [int(x) for x in nums]
        except ValueError:
            raise VadInputError(f"{path}:{lineno}: expected 'Name [frames] Class s1 e1 s2 e2', got {line.strip()!r}") from None
        if frames is not None and frames < 0:
            raise VadInputError(f"{path}:{lineno}: frame count {frames} is negative")
        pairs = [(s, e) for s, e in zip(bounds[0::2], bounds[1::2]) if (s, e) != (-1, -1)]  # -1 -1: no interval
        out.append(Annotation(_video_name(parts[0]), cls, frames, _intervals(pairs, frames, path, lineno)))
    return out


def read_xd_annotations(path: str | os.PathLike) -> list[Annotation]:
    """XD-Violence ``annotations.txt``: ``Name s1 e1 [s2 e2 ...]`` for the anomalous test videos."""
    out = []
    for path, lineno, line, parts in _annotation_lines(path):
        try:
            bounds = [int(x) for x in parts[1:]]
            if len(bounds) % 2:
                raise ValueError
        except ValueError:
            raise VadInputError(f"{path}:{lineno}: expected 'Name s1 e1 [s2 e2 ...]', got {line.strip()!r}") from None
        out.append(Annotation(_video_name(parts[0]), "", None, _intervals(list(zip(bounds[0::2], bounds[1::2])), None, path, lineno)))
    return out


def _intervals(pairs: list[tuple[int, int]], frames: int | None, path: Path, lineno: int) -> list[tuple[int, int]]:
    """Anomalous intervals as written, refused when negative, reversed or past the video's frame count."""
    for s, e in pairs:
        if s < 0 or e < 0:
            raise VadInputError(f"{path}:{lineno}: interval {s} {e} has a negative frame (only '-1 -1' marks no interval)")
        if e < s:
            raise VadInputError(f"{path}:{lineno}: interval {s} {e} is reversed (end before start)")
        if frames is not None and s >= frames:
            raise VadInputError(f"{path}:{lineno}: interval {s} {e} starts past the video's {frames} frames")
    return pairs


def frame_gt(ann: Annotation, n_frames: int, end_inclusive: bool = False) -> np.ndarray:
    gt = np.zeros(n_frames, dtype=np.uint8)
    for s, e in ann.intervals:
        gt[s : e + 1 if end_inclusive else e] = 1
    return gt


def snippet_frames(ann: Annotation, *, lengths: dict[str, int] | None, trailing: str, convention: str) -> int:
    """Frames the GT keeps for one video: 16 * number of snippets."""
    if lengths is not None and ann.name in lengths:
        return SNIPPET * lengths[ann.name]
    if ann.frames is None:
        raise VadInputError(f"video {ann.name}: the annotation has no frame count; give its snippet count (features)")
    if trailing not in TRAILING:
        raise VadInputError(f"trailing must be one of {TRAILING}, got {trailing!r}")
    snippets = ann.frames // SNIPPET if trailing == "drop" else -(-ann.frames // SNIPPET)
    if ann.name in CONVENTIONS[convention]:
        snippets -= 1
    return SNIPPET * snippets


def build_gt(annotations: list[Annotation], *, lengths: dict[str, int] | None = None, order: list[str] | None = None,
             trailing: str = "drop", convention: str = "plain", end_inclusive: bool = False) -> dict[str, np.ndarray]:
    """Per-video frame labels, in ``order`` when given (videos missing from the annotations, e.g.
    XD-Violence normal videos, are all-normal and need a length)."""
    if convention not in CONVENTIONS:
        raise VadInputError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
    by_name = {a.name: a for a in annotations}
    names = order if order is not None else [a.name for a in annotations]
    out = {}
    for name in names:
        ann = by_name.get(name)
        if ann is None:
            _require_normal_name(name)
            if lengths is None or name not in lengths:
                raise VadInputError(f"video {name}: not in the annotation file and no length from its features")
            ann = Annotation(name, "Normal", None, [])
        out[name] = frame_gt(ann, snippet_frames(ann, lengths=lengths, trailing=trailing, convention=convention), end_inclusive)
    return out


def read_frame_masks(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """ShanghaiTech test frame masks: one ``NAME.npy`` per video, a 0/1 label per frame."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VadInputError(f"frame-mask folder {folder} not found")
    masks = {}
    for path in sorted(folder.glob("*.npy")):
        try:
            mask = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise VadInputError(f"frame mask {path}: not a readable .npy array ({exc})") from None
        if mask.ndim != 1 or not np.isin(mask, (0, 1)).all():
            raise VadInputError(f"frame mask {path}: expected a 1-D array of 0/1 frame labels, got shape {list(mask.shape)}")
        masks[video_name(path.name)[0]] = mask.astype(np.uint8)
    if not masks:
        raise VadInputError(f"frame-mask folder {folder}: no .npy masks")
    return masks


def build_mask_gt(masks: dict[str, np.ndarray], order: list[str], *, lengths: dict[str, int] | None = None,
                  labels: dict[str, int] | None = None, trailing: str = "drop") -> dict[str, np.ndarray]:
    """Per-video frame GT from frame masks (ShanghaiTech), aligned to 16-frame snippets.

    A video without a mask is all normal (its length from ``lengths``); with ``labels`` (split list)
    an anomalous video without a mask, or a normal one whose mask marks anomalies, is an error.
    Lengths: 16 * T frames with T from the features when known (a shorter mask is padded with its
    last frame's label, as extractors repeat the last frame), else ``F // 16`` (``trailing="drop"``)
    or ``ceil(F / 16)`` (``"pad"``) snippets."""
    if trailing not in TRAILING:
        raise VadInputError(f"trailing must be one of {TRAILING}, got {trailing!r}")
    out = {}
    for name in order:
        mask = masks.get(name)
        label = None if labels is None else labels.get(name)
        if labels is not None and label is None:
            raise VadInputError(f"video {name}: not in the split list of labels")
        if mask is None:
            if label == 1:
                raise VadInputError(f"video {name}: anomalous in the split list but it has no frame mask")
            if lengths is None or name not in lengths:
                raise VadInputError(f"video {name}: no frame mask and no length from its features (give --test-list)")
            out[name] = np.zeros(SNIPPET * lengths[name], np.uint8)
            continue
        if label == 0 and mask.any():
            raise VadInputError(f"video {name}: normal in the split list but its frame mask marks {int(mask.sum())} anomalous frames")
        if lengths is not None and name in lengths:
            frames = SNIPPET * lengths[name]
        else:
            frames = SNIPPET * (len(mask) // SNIPPET if trailing == "drop" else -(-len(mask) // SNIPPET))
        out[name] = mask[:frames] if len(mask) >= frames else np.pad(mask, (0, frames - len(mask)), mode="edge")
    return out


def _require_normal_name(name: str) -> None:
    """A video missing from the annotations is all-normal only when its name says normal."""
    try:
        label = video_label(name)
    except ValueError as exc:
        raise VadInputError(f"video {name}: not in the annotation file and its label cannot be read from its name ({exc})") from None
    if label.label:
        raise VadInputError(f"video {name}: its name says anomalous ({label.cls}) but the annotation file has no entry "
                            "for it; its ground truth would be all normal (wrong annotation file or video name?)")


def lengths_from_features(videos) -> dict[str, int]:
    """Snippet counts T of each listed video, read from the .npy headers (no data loaded)."""
    out = {}
    for video in videos:
        try:
            arr = np.load(video.paths[0], mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise VadInputError(f"feature file {video.paths[0]}: not a readable .npy array ({exc})") from None
        out[video.name] = int(arr.shape[0])
    return out


def read_order(path: str | os.PathLike) -> list[str]:
    names = [_video_name(line.split()[0]) for line in read_text(path, "order file").splitlines() if line.strip()]
    return list(dict.fromkeys(names))  # a per-crop list names each video once per crop


def save_gt(path: str | os.PathLike, gt: dict[str, np.ndarray]) -> Path:
    """``.npz``: one array per video (key = name); ``.npy``: all videos concatenated in order."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            if path.suffix == ".npz":
                np.savez_compressed(fh, **gt)
            elif path.suffix == ".npy":
                np.save(fh, np.concatenate(list(gt.values())))
            else:
                raise VadInputError(f"output {path}: expected a .npz (per video) or .npy (concatenated) file name")
    return path


def load_gt(path: str | os.PathLike) -> dict[str, np.ndarray]:
    path = Path(path)
    if path.is_file() and path.suffix != ".npz":
        raise VadInputError(f"ground-truth file {path}: expected a per-video .npz (build one with vad-gt)")
    arrays = load_npz(path, "ground-truth file")
    return {k: binary_labels(v, f"ground-truth file {path}: video {k!r}") for k, v in arrays.items()}
