from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
UCF = SHARED / "data" / "ucf_crime"


@pytest.fixture(scope="session")
def ucf_dir() -> Path:
    if not (UCF / "test_frame_gt.npz").is_file():
        pytest.skip(f"real UCF-Crime annotation files not found at {UCF} (../shared is absent)")
    return UCF
