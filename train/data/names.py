"""Video names and labels from the public datasets' naming, whatever feature release the files come from.

Feature releases name one video's files differently; ``video_name`` maps each to the name the
annotation files use:

| release | file stem | video name |
|---|---|---|
| UR-DMU / VadCLIP (one file per crop) | ``Abuse028_x264__5`` | ``Abuse028_x264`` |
| RTFM / PEL4VAD ([T, ncrop, D] per video) | ``Abuse028_x264_i3d`` | ``Abuse028_x264`` |
| XD-Violence (5 crops) | ``v=…__#1_label_B2-0-0__3`` | ``v=…__#1_label_B2-0-0`` |
| ShanghaiTech (RTFM) | ``01_0014_i3d`` | ``01_0014`` |

UCF-Crime and XD-Violence names carry the label; ShanghaiTech names (``01_001``) do not, so its
labels come from the weakly-supervised split lists (``read_split_labels``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from vadedge.errors import VadInputError

NORMAL = "Normal"
ANOMALY = "Anomaly"  # class of anomalous videos in datasets without classes (ShanghaiTech)

# XD-Violence codes in `..._label_B1-0-0` (A = normal); the first code names the primary class.
XD_CLASSES = {"A": NORMAL, "B1": "Fighting", "B2": "Shooting", "B4": "Riot", "B5": "Abuse", "B6": "CarAccident", "G": "Explosion"}
NAMINGS = ("ucf", "xd", "sh", "auto")

_CROP_SUFFIX = re.compile(r"__(\d+)$")
_FEATURE_SUFFIX = re.compile(r"_(i3d|rgb|clip|c3d|swin)$", re.IGNORECASE)
_UCF_CLASS = re.compile(r"^([A-Za-z]+?)(?:_?\d+)")
_SH_NAME = re.compile(r"^\d{2}_\d{3,4}$")
_VIDEO_EXT = (".npy", ".mp4", ".avi")


@dataclass(frozen=True)
class VideoLabel:
    label: int  # 0 normal, 1 anomalous (video level)
    cls: str  # class name; "Normal" for normal videos


def split_crop(stem: str) -> tuple[str, int | None]:
    """'Abuse001_x264__3' -> ('Abuse001_x264', 3); a stem without a crop suffix gives None."""
    m = _CROP_SUFFIX.search(stem)
    if not m:
        return stem, None
    return stem[: m.start()], int(m.group(1))


def video_name(token: str) -> tuple[str, int | None]:
    """A file name, path or list token -> (annotation name, crop index or None); see the module table."""
    stem = Path(token.strip().replace("\\", "/")).name
    for ext in _VIDEO_EXT:
        stem = stem.removesuffix(ext)
    name, crop = split_crop(stem)
    return _FEATURE_SUFFIX.sub("", name), crop


def is_sh_name(name: str) -> bool:
    return bool(_SH_NAME.match(name))


def ucf_label(name: str) -> VideoLabel:
    """UCF-Crime style: 'Normal_Videos…' is normal; otherwise the class is the name's letter prefix.

    The name, not the folder, decides: feature folders differ between releases ('all_rgbs/…').
    """
    if name.startswith("Normal"):
        return VideoLabel(0, NORMAL)
    m = _UCF_CLASS.match(name)
    if not m:
        raise ValueError(f"video name {name!r}: expected a UCF-Crime style name such as 'Abuse001_x264' or 'Normal_Videos_003_x264'")
    return VideoLabel(1, m.group(1))


def xd_label(name: str) -> VideoLabel:
    """XD-Violence style: '…_label_A' is normal; '…_label_B2-G-0' is class B2 (Shooting)."""
    if "_label_" not in name:
        raise ValueError(f"video name {name!r}: expected an XD-Violence name containing '_label_<code>'")
    code = name.rsplit("_label_", 1)[1].split("-")[0]
    if code == "A":
        return VideoLabel(0, NORMAL)
    if code not in XD_CLASSES:
        raise ValueError(f"video name {name!r}: unknown XD-Violence class code {code!r}; expected one of {sorted(XD_CLASSES)}")
    return VideoLabel(1, XD_CLASSES[code])


def video_label(name: str, naming: str = "auto", labels: dict[str, int] | None = None) -> VideoLabel:
    """Label and class of a video. ``labels`` (from split lists) decides when given; ShanghaiTech
    names need it (their names carry no label), so one missing from it is an error, never normal."""
    if naming not in NAMINGS:
        raise ValueError(f"naming must be one of {NAMINGS}, got {naming!r}")
    if labels is not None:
        if name not in labels:
            raise ValueError(f"video {name!r}: not in the split list of labels")
        if naming == "sh" or is_sh_name(name):
            return VideoLabel(labels[name], ANOMALY if labels[name] else NORMAL)
        own = video_label(name, naming)
        if own.label != labels[name]:
            raise ValueError(f"video {name!r}: its name says label {own.label} but the split list says {labels[name]}")
        return own
    if naming == "sh" or (naming == "auto" and is_sh_name(name)):
        raise ValueError(f"video {name!r}: ShanghaiTech names carry no label; give the split list (--labels)")
    if naming == "xd" or (naming == "auto" and "_label_" in name):
        return xd_label(name)
    return ucf_label(name)


def read_split_labels(path: str | os.PathLike) -> dict[str, int]:
    """Video labels from a split list: one video per line, ``NAME LABEL`` (LABEL 0 normal / 1 anomalous;
    NAME may be a feature path in any release's style). Lines naming crops of one video agree."""
    path = Path(path)
    if not path.is_file():
        raise VadInputError(f"split list {path} not found")
    out: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1"):
            raise VadInputError(f"{path}:{lineno}: expected 'NAME LABEL' with LABEL 0 (normal) or 1 (anomalous), got {line.strip()!r}")
        name, label = video_name(parts[0])[0], int(parts[1])
        if out.setdefault(name, label) != label:
            raise VadInputError(f"{path}:{lineno}: video {name} is listed both as {out[name]} and {label}")
    if not out:
        raise VadInputError(f"split list {path} names no videos")
    return out
