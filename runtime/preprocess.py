"""Frame sampling and preprocessing of a snippet, shared by ``vad-extract`` and ``vad-runtime`` (NumPy + OpenCV).

The backbone's ``BackboneConfig`` is saved in its ONNX file, so the features a model is trained on and the
features it sees live come from the same frames, resized, cropped and normalised the same way.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import cv2
import numpy as np

from vadedge.errors import VadInputError

SNIPPET_FRAMES = 16
CROP_MODES = ("center", "ten")


@dataclass
class BackboneConfig:
    name: str = "efficientnet_lite0"
    feature_dim: int = 1280
    snippet_frames: int = SNIPPET_FRAMES  # frames per snippet (the community's 16)
    sampled_frames: int = 4  # frames of each snippet the image backbone sees (evenly spaced), features averaged
    resize: int = 256  # shorter side before cropping
    crop: int = 224
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])  # RGB, on [0, 1] pixels
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    interpolation: str = "area"  # resize filter: "area" or "bicubic" (CLIP's)
    kind: str = "image"  # "image": per-frame model, features averaged over the sampled frames; "clip": one 3-D input

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "BackboneConfig":
        return cls(**json.loads(text))

    @classmethod
    def from_metadata(cls, text: str, where: str) -> "BackboneConfig":
        """``from_json`` for a file's metadata: unknown or missing fields, wrong types or ranges are one line."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VadInputError(f"{where}: not valid JSON ({exc.msg})") from None
        known = [f.name for f in fields(cls)]
        if not isinstance(data, dict):
            raise VadInputError(f"{where}: expected a JSON object with fields {known}, got {type(data).__name__}")
        if set(data) - set(known):
            raise VadInputError(f"{where}: unknown field(s) {sorted(set(data) - set(known))}; known: {known}")
        cfg = cls(**data)
        for name in ("feature_dim", "snippet_frames", "sampled_frames", "resize", "crop"):
            value = getattr(cfg, name)
            if type(value) is not int or value < 1:
                raise VadInputError(f"{where}: {name} = {value!r}, expected a positive integer")
        if cfg.sampled_frames > cfg.snippet_frames or cfg.crop > cfg.resize:
            raise VadInputError(f"{where}: needs sampled_frames <= snippet_frames and crop <= resize")
        if cfg.interpolation not in INTERPOLATIONS or cfg.kind not in ("image", "clip"):
            raise VadInputError(f"{where}: interpolation {cfg.interpolation!r} / kind {cfg.kind!r} not supported")
        numbers = [cfg.mean, cfg.std]
        if not all(isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v) for v in numbers) \
                or min(cfg.std) <= 0:
            raise VadInputError(f"{where}: mean and std must be three numbers each (std > 0)")
        return cfg


def sample_indices(cfg: BackboneConfig) -> np.ndarray:
    """Which frames of a snippet the backbone sees: evenly spaced, centred in their sub-intervals."""
    step = cfg.snippet_frames / cfg.sampled_frames
    return np.floor(step * (np.arange(cfg.sampled_frames) + 0.5)).astype(np.int64)


INTERPOLATIONS = {"area": cv2.INTER_AREA, "bicubic": cv2.INTER_CUBIC}


def resize_short(frame: np.ndarray, short: int, interpolation: str) -> np.ndarray:
    h, w = frame.shape[:2]
    scale = short / min(h, w)
    return cv2.resize(frame, (max(short, round(w * scale)), max(short, round(h * scale))), interpolation=INTERPOLATIONS[interpolation])


def crops(frame: np.ndarray, size: int, mode: str) -> list[np.ndarray]:
    """``center``: one centre crop; ``ten``: centre + 4 corners and their horizontal flips (10-crop)."""
    h, w = frame.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    center = frame[y:y + size, x:x + size]
    if mode == "center":
        return [center]
    if mode != "ten":
        raise VadInputError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")
    five = [center, frame[:size, :size], frame[:size, w - size:], frame[h - size:, :size], frame[h - size:, w - size:]]
    return five + [c[:, ::-1] for c in five]


INPUT_MODES = ("center", "full", "roi")


@dataclass(frozen=True)
class InputView:
    """What part of the camera frame the model sees, applied before the backbone's resize and crop.

    ``center``: the centre square (the community's features; a 16:9 camera shows the model ~56 % of its width);
    ``full``: the whole frame, letterboxed (black bars) into the square the backbone crops, nothing cut off;
    ``roi``: a region of interest ``(x, y, w, h)`` in fractions of the frame, shown whole (letterboxed).
    vad-extract (``--input``) and vad-runtime (``--input`` / a camera's ``input:``) apply it in the same place
    (``SnippetEncoder.prepare_frame``), so the features agree (tested per mode)."""

    mode: str = "center"
    roi: tuple[float, float, float, float] | None = None

    @classmethod
    def parse(cls, text: str, where: str = "--input") -> "InputView":
        """``center``, ``full`` or ``roi:x,y,w,h`` (fractions of the frame, e.g. ``roi:0.5,0,0.5,1`` = right half)."""
        mode, _, rest = str(text).partition(":")
        if mode not in INPUT_MODES or (mode == "roi") != bool(rest):
            raise VadInputError(f"{where} {text!r}: expected center, full or roi:x,y,w,h (fractions of the frame)")
        if mode != "roi":
            return cls(mode)
        try:
            x, y, w, h = (float(v) for v in rest.split(","))
        except ValueError:
            raise VadInputError(f"{where} {text!r}: roi needs four numbers x,y,w,h") from None
        if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 - x + 1e-9 and 0 < h <= 1 - y + 1e-9):
            raise VadInputError(f"{where} {text!r}: roi must lie inside the frame (0 <= x, y; w, h > 0; x+w, y+h <= 1)")
        return cls("roi", (x, y, w, h))

    def __str__(self) -> str:
        return self.mode if self.roi is None else "roi:" + ",".join(f"{v:g}" for v in self.roi)

    def apply(self, frame: np.ndarray, cfg: BackboneConfig) -> np.ndarray:
        if self.mode == "center":
            return frame
        if self.mode == "roi":
            fh, fw = frame.shape[:2]
            x, y, w, h = self.roi
            x0, y0 = int(round(x * fw)), int(round(y * fh))
            frame = frame[y0:max(y0 + 1, int(round((y + h) * fh))), x0:max(x0 + 1, int(round((x + w) * fw)))]
        return letterbox(frame, cfg)


def letterbox(frame: np.ndarray, cfg: BackboneConfig) -> np.ndarray:
    """Pad the frame (centred, black) into a square whose centre crop after ``resize_short`` holds all of it."""
    h, w = frame.shape[:2]
    side = int(np.ceil(max(h, w) * cfg.resize / cfg.crop))
    out = np.zeros((side, side, 3), frame.dtype)
    y, x = (side - h) // 2, (side - w) // 2
    out[y:y + h, x:x + w] = frame
    return out


def preprocess(frames: list[np.ndarray], cfg: BackboneConfig, crop_mode: str = "center") -> np.ndarray:
    """Sampled BGR uint8 frames of one snippet -> [crops, frames, 3, crop, crop] float32 network input."""
    mean = np.asarray(cfg.mean, np.float32)[:, None, None]
    std = np.asarray(cfg.std, np.float32)[:, None, None]
    out = []
    for frame in frames:
        if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
            raise VadInputError(f"frame: expected an HxWx3 BGR image, got {None if frame is None else frame.shape}")
        rgb = cv2.cvtColor(resize_short(frame, cfg.resize, cfg.interpolation), cv2.COLOR_BGR2RGB)
        views = [(c.astype(np.float32).transpose(2, 0, 1) / 255.0 - mean) / std for c in crops(rgb, cfg.crop, crop_mode)]
        out.append(np.stack(views))
    return np.ascontiguousarray(np.stack(out, axis=1), dtype=np.float32)  # [crops, frames, 3, H, W]
