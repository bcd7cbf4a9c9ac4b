"""Per-camera calibration inside ``vad-runtime``: load a camera's saved calibration at start, or calibrate it on its
first ``--calibrate SECONDS`` of footage (declared normal) and save it. The rules themselves live in
``calibration.py`` (``vad-calibrate`` uses the same ones on recorded footage).

A source's calibration file is named after the source made file-safe (``cam7:554`` -> ``cam7_554.calib.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vadedge.errors import VadInputError

from .calibration import Calibration, calibrate, model_hash
from .sources import safe_filename

MODES = ("model", "normality", "fused")


@dataclass
class CalibrationSettings:
    directory: str | None = None  # where calibrations are loaded from / saved to
    seconds: float = 0.0  # > 0: calibrate on this much footage per source instead of loading
    false_alarms_per_hour: float = 1.0
    mode: str = "model"  # model | normality | fused (calibration.py "Scene normality")
    motion: bool = True  # normality/fused: keep the motion memory beside the appearance memory
    model_sha256: str = ""
    backbone_sha256: str | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise VadInputError(f"--calibration-mode must be one of {MODES}, got {self.mode!r}")
        if self.seconds < 0:
            raise VadInputError(f"--calibrate {self.seconds:g}: must be >= 0 seconds")
        if not np.isfinite(self.false_alarms_per_hour) or self.false_alarms_per_hour <= 0:
            raise VadInputError(f"--false-alarms-per-hour {self.false_alarms_per_hour:g}: must be > 0")
        if self.seconds and not self.directory:
            raise VadInputError("--calibrate needs --calibration DIR (where each camera's calibration is saved)")

    @classmethod
    def for_files(cls, model: str | Path, backbone: str | Path, **kw) -> "CalibrationSettings":
        return cls(model_sha256=model_hash(model), backbone_sha256=model_hash(backbone), **kw)

    @property
    def active(self) -> bool:
        return bool(self.directory)

    def wants_motion(self) -> bool:
        return self.seconds > 0 and self.mode != "model" and self.motion


def camera_id(source: str) -> str:
    return safe_filename(source)


def load_calibration(settings: CalibrationSettings, source: str, window: int, smooth: int,
                     feature_dim: int) -> Calibration | None:
    """The saved calibration of ``source`` (None if there is none yet); refused in one line if it was made for
    another model/backbone or with another window/smoothing."""
    camera = camera_id(source)
    if not (Path(settings.directory) / f"{camera}.calib.json").is_file():
        return None
    cal = Calibration.load(settings.directory, camera, settings.model_sha256, settings.backbone_sha256)
    cal.check_settings(window, smooth, feature_dim)
    return cal


@dataclass
class Collector:
    """The first ``seconds`` of one source's raw scores, features (and motion descriptors), then a Calibration."""

    source: str
    seconds: float
    t0: float | None = None
    scores: list = field(default_factory=list)
    features: list = field(default_factory=list)
    motion: list = field(default_factory=list)
    snippet_seconds: list = field(default_factory=list)

    def add(self, t_start: float, t_end: float, raw: float, feature: np.ndarray, motion: np.ndarray | None) -> bool:
        """Add one snippet; True once ``seconds`` of footage are in."""
        self.t0 = t_start if self.t0 is None else self.t0
        self.scores.append(raw)
        self.features.append(np.asarray(feature, np.float32))
        self.snippet_seconds.append(t_end - t_start)
        if motion is not None:
            self.motion.append(motion)
        return t_end - self.t0 >= self.seconds

    def finish(self, settings: CalibrationSettings, window: int, smooth: int, min_snippets: int, log) -> Calibration:
        """Fit, save (atomic) and return the calibration; raises VadInputError (one line) if it cannot be made."""
        motion = np.stack(self.motion) if self.motion and len(self.motion) == len(self.scores) else None
        cal = calibrate(np.asarray(self.scores), np.stack(self.features), float(np.median(self.snippet_seconds)),
                        motion=motion, mode=settings.mode, false_alarms_per_hour=settings.false_alarms_per_hour,
                        smooth=smooth, min_snippets=min_snippets, window=window, camera=camera_id(self.source),
                        model_sha256=settings.model_sha256, backbone_sha256=settings.backbone_sha256, log=log)
        cal.save(settings.directory)
        return cal
