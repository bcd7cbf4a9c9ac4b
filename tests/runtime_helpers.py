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


def make_runtime(assets, sources, events=None, log=None, model=None, sinks=(), stats=None, **cfg):
    runner = OrtRunner(model or assets["onnx"])
    encoder = SnippetEncoder(assets["backbone"])
    cfg = {"stats_every": 0, "keep_trace": True, **cfg}
    rt = Runtime(runner, encoder, sources, RuntimeConfig(**cfg), EventLog(events), stats or Stats(), log=log or (lambda m: None),
                 retry=RetryPolicy(initial_s=0.05, max_s=0.2), sinks=sinks, model_file=model or assets["onnx"])
    rt.keep_features = True
    return rt
