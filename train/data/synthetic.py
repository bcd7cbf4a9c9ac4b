"""Built-in SYNTHETIC dataset of weakly-labelled feature videos, for tests and the default demo.

It is not real data and says so everywhere: class names start with ``Syn``, and the folder holds a
``SYNTHETIC.json`` describing it. It is written in the community layout (per-crop ``.npy`` files,
list files, per-video frame GT ``.npz``) so every real-data code path runs on it.

Each video: a scene vector plus slowly varying AR(1) "normal activity" noise. Anomalous videos add
one or two events of their class: a class direction switched on over the event, with a class
strength (subtle to blatant), a class duration range, and a magnitude rise (as I3D features show).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vadedge.atomic import atomic_path, atomic_write_text
from vadedge.errors import VadInputError

from ..gt import save_gt


EVENT_SIGMAS = 2.5  # an event of strength 1 moves features 2.5 noise std along its class direction


@dataclass(frozen=True)
class SynClass:
    name: str
    strength: float  # event amplitude along the class direction, in units of the normal noise
    min_frac: float  # event duration range, as a fraction of the video (at least 2 snippets)
    max_frac: float


DEFAULT_CLASSES = (
    SynClass("SynExplosion", 3.0, 0.06, 0.15),  # blatant, short
    SynClass("SynFighting", 1.6, 0.2, 0.5),  # medium, long
    SynClass("SynShoplifting", 1.2, 0.1, 0.3),  # subtle
    SynClass("SynRoadAccident", 2.2, 0.05, 0.12),  # short, fairly clear
)


@dataclass
class SyntheticSpec:
    feature_dim: int = 128
    crops: int = 2
    train_normal: int = 600
    train_abnormal: int = 600
    test_normal: int = 30
    test_abnormal: int = 30
    min_len: int = 40  # video length range in snippets (16 frames each)
    max_len: int = 240
    noise: float = 1.0
    crop_noise: float = 0.1
    seed: int = 0
    classes: tuple[SynClass, ...] = field(default=DEFAULT_CLASSES)

    def validate(self) -> None:
        """Ranges the generator needs; a value outside is a one-line error naming the field (and its vad-synth flag)."""
        limits = {"feature_dim": (len(self.classes), "the number of classes (orthogonal class directions)"),
                  "crops": (1, "1"), "train_normal": (1, "1"), "train_abnormal": (1, "1"), "test_normal": (1, "1"),
                  "test_abnormal": (1, "1"), "min_len": (2, "2 (events span at least 2 snippets)"),
                  "max_len": (self.min_len, "min_len"), "noise": (0, "0"), "crop_noise": (0, "0"), "seed": (0, "0")}
        for name, (low, text) in limits.items():
            value = getattr(self, name)
            if not (value >= low and math.isfinite(value)):
                raise VadInputError(f"synthetic spec {name} (--{name.replace('_', '-')}) = {value}: must be >= {text}")


def _video(rng: np.random.Generator, spec: SyntheticSpec, t: int, scene_dirs: np.ndarray) -> np.ndarray:
    scene = scene_dirs[rng.integers(len(scene_dirs))] * 2.0 + rng.normal(0, 0.5, spec.feature_dim)
    noise = np.empty((t, spec.feature_dim))
    noise[0] = rng.normal(0, 1, spec.feature_dim)
    innov = rng.normal(0, np.sqrt(1 - 0.8**2), (t, spec.feature_dim))
    for i in range(1, t):  # AR(1): normal activity drifts smoothly
        noise[i] = 0.8 * noise[i - 1] + innov[i]
    return scene + spec.noise * noise


def _events(rng, cls: SynClass, t: int) -> list[tuple[int, int]]:
    events = []
    for _ in range(rng.integers(1, 3)):
        length = max(2, int(round(t * rng.uniform(cls.min_frac, cls.max_frac))))
        start = int(rng.integers(0, max(1, t - length)))
        events.append((start, min(t, start + length)))
    return events


def generate(spec: SyntheticSpec):
    """Yield (split, name, class, features [crops, T, D], snippet labels [T])."""
    rng = np.random.default_rng(spec.seed)
    d = spec.feature_dim
    directions = np.linalg.qr(rng.normal(0, 1, (d, len(spec.classes))))[0].T  # orthonormal class directions
    class_dirs = {c.name: v for c, v in zip(spec.classes, directions)}
    # Scenes vary freely except along the class directions, so an event is what stands out of its scene.
    scene_dirs = rng.normal(0, 1, (6, d))
    scene_dirs -= scene_dirs @ directions.T @ directions
    counts = {"train": (spec.train_normal, spec.train_abnormal), "test": (spec.test_normal, spec.test_abnormal)}
    for split, (n_normal, n_abnormal) in counts.items():
        for i in range(n_normal + n_abnormal):
            t = int(rng.integers(spec.min_len, spec.max_len + 1))
            feat = _video(rng, spec, t, scene_dirs)
            labels = np.zeros(t, dtype=np.uint8)
            if i < n_normal:
                name, cls_name = f"Normal_Videos_{split}{i:04d}_x264", "Normal"
            else:
                cls = spec.classes[(i - n_normal) % len(spec.classes)]
                name, cls_name = f"{cls.name}{i:04d}_x264", cls.name
                for s, e in _events(rng, cls, t):
                    ramp = np.minimum(1.0, np.minimum(np.arange(e - s) + 1, np.arange(e - s)[::-1] + 1) / 2.0)
                    feat[s:e] += EVENT_SIGMAS * cls.strength * spec.noise * ramp[:, None] * class_dirs[cls.name]
                    feat[s:e] *= 1.0 + 0.15 * cls.strength / 3
                    labels[s:e] = 1
            crops = feat[None] + rng.normal(0, spec.crop_noise, (spec.crops, t, d))
            yield split, name, cls_name, crops.astype(np.float32), labels


def write_dataset(root: str | os.PathLike, spec: SyntheticSpec | None = None) -> Path:
    """Write the synthetic set under ``root``: features/, train.list, test.list, test_gt.npz, SYNTHETIC.json."""
    spec = spec or SyntheticSpec()
    spec.validate()
    root = Path(root)
    lists: dict[str, list[str]] = {"train": [], "test": []}
    gt: dict[str, np.ndarray] = {}
    for split, name, cls, crops, labels in generate(spec):
        folder = root / "features" / cls
        folder.mkdir(parents=True, exist_ok=True)
        for c, crop in enumerate(crops):
            path = folder / f"{name}__{c}.npy"
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, crop)
            lists[split].append(f"features/{cls}/{path.name}")
        if split == "test":
            gt[name] = np.repeat(labels, 16)
    for split, lines in lists.items():
        atomic_write_text(root / f"{split}.list", "\n".join(lines) + "\n")
    save_gt(root / "test_gt.npz", gt)
    meta = {"SYNTHETIC": True, "note": "synthetic weakly-labelled features for tests and demos; not real video data",
            "spec": asdict(spec)}
    atomic_write_text(root / "SYNTHETIC.json", json.dumps(meta, indent=2))
    return root
