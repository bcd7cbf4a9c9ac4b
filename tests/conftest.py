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
