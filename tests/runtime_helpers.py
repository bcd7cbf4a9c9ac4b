"""Shared runtime-test assets: a real EfficientNet-Lite0 backbone export, a small UR-DMU ONNX model and a
rendered (SYNTHETIC) clip; plus the real surveillance clip from ../shared."""

from pathlib import Path

import pytest

from vadedge.runtime.app import Runtime, RuntimeConfig
from vadedge.runtime.backends import OrtRunner
from vadedge.runtime.encoder import SnippetEncoder
from vadedge.runtime.events import EventLog
from vadedge.runtime.sources import RetryPolicy
from vadedge.runtime.stats import Stats

SHARED_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"


def make_runtime(assets, sources, events=None, log=None, model=None, sinks=(), stats=None, calibration=None, **cfg):
    runner = OrtRunner(model or assets["onnx"])
    encoder = SnippetEncoder(assets["backbone"])
    cfg = {"stats_every": 0, "keep_trace": True, **cfg}
    rt = Runtime(runner, encoder, sources, RuntimeConfig(**cfg), EventLog(events), stats or Stats(), log=log or (lambda m: None),
                 retry=RetryPolicy(initial_s=0.05, max_s=0.2), sinks=sinks, model_file=model or assets["onnx"],
                 calibration=calibration)
    rt.keep_features = True
    return rt


def write_noise_video(path, frames: int, size: tuple[int, int] = (320, 240), fps: float = 25, seed: int = 0) -> Path:
    """An MJPG .avi of random frames (SYNTHETIC test data) written by OpenCV; size is (width, height)."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return Path(path)


def wait_for(cond, timeout: float) -> bool:
    """Poll ``cond()`` every 20 ms until it is true (True) or ``timeout`` seconds pass (False)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False
