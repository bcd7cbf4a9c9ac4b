"""Video label and class from a feature file's name, per the public datasets' naming."""

from __future__ import annotations

import re
from dataclasses import dataclass

NORMAL = "Normal"

# XD-Violence codes in `..._label_B1-0-0` (A = normal); the first code names the primary class.
XD_CLASSES = {"A": NORMAL, "B1": "Fighting", "B2": "Shooting", "B4": "Riot", "B5": "Abuse", "B6": "CarAccident", "G": "Explosion"}
NAMINGS = ("ucf", "xd", "auto")

_CROP_SUFFIX = re.compile(r"__(\d+)$")
_UCF_CLASS = re.compile(r"^([A-Za-z]+?)(?:_?\d+)")


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


def video_label(name: str, naming: str = "auto") -> VideoLabel:
    if naming not in NAMINGS:
        raise ValueError(f"naming must be one of {NAMINGS}, got {naming!r}")
    if naming == "xd" or (naming == "auto" and "_label_" in name):
        return xd_label(name)
    return ucf_label(name)
