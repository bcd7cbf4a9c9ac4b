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

    reason = missing_nvcc()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("plugin_build")
    # Turing (oldest supported) + Hopper (the lent H100); the default build covers 75..90 incl. Jetson Orin.
    build(out, cuda_architectures="75;90")
    return out


@pytest.fixture(scope="session")
def split_args():
    """CLI arguments of a dataset written by ``write_dataset`` (train/test lists, root, GT) and a run folder."""

    def args(data: Path, out: Path) -> list[str]:
        return ["--train-list", str(data / "train.list"), "--test-list", str(data / "test.list"), "--root", str(data),
                "--gt", str(data / "test_gt.npz"), "--out", str(out), "--no-progress"]

    return args
