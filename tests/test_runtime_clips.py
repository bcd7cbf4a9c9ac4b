"""Clips hold every decoded frame at the source's rate (H.264 via PyAV), pre-/post-roll, retention, a snapshot of
the peak snippet; decoded back with PyAV."""

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from vadedge.runtime.clips import ClipRecorder, prune, write_snapshot
from vadedge.runtime.events import load_event_schema
from vadedge.runtime.scoring import AlertPolicy
from vadedge.runtime.sources import SourceSpec

from runtime_helpers import make_runtime

av = pytest.importorskip("av", reason="clips are decoded back with PyAV (pip install av)")


def decode(path) -> tuple[int, float, str, tuple[int, int]]:
    """(frames, average rate, codec, (w, h)) of a video file, by decoding every frame."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return n, float(s.average_rate), s.codec_context.name, (s.width, s.height)


def frames_at(n: int, t0: float, fps: float, size=(64, 48)) -> tuple[float, float, list[np.ndarray]]:
    frames = [np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8) for i in range(n)]
    return t0, t0 + n / fps, frames


def test_clip_has_pre_roll_alert_and_post_roll_at_the_source_rate(tmp_path):
    rec = ClipRecorder(tmp_path, pre_s=1.6, max_s=60, post_s=1.6, log=lambda m: None)
    fps, n = 10.0, 16  # 16-frame snippets of 1.6 s
    for i in range(3):  # 4.8 s before the alert: only the last 1.6 s are kept
        rec.add(*frames_at(n, i * 1.6, fps), alert_start=None)
    assert len(rec.buffer) <= 2
    rec.add(*frames_at(n, 4.8, fps), alert_start=4.8)  # the alert's first snippet
    path = rec.start("lobby cam", "0123456789ab", 4.8)
    rec.add(*frames_at(n, 6.4, fps), alert_start=4.8)
    assert rec.finish(alert_end=8.0) == path and not Path(path).exists()  # post-roll still to come
    rec.add(*frames_at(n, 8.0, fps), alert_start=None)  # the post-roll (1.6 s) completes the clip
    assert rec.finished == [path] and rec.recording is None
    frames, rate, codec, size = decode(path)
    assert codec == "h264" and abs(rate - fps) < 0.01 and size == (64, 48)
    assert frames == 4 * n  # pre-roll 1.6 s + alert 3.2 s + post-roll 1.6 s, every frame
    assert Path(path).name == "lobby_cam_0123456789ab_4.8s.mp4"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_an_alert_starting_in_the_previous_clips_post_roll_gets_its_pre_roll_and_first_frames(tmp_path):
    """QA (issue 13): the post-roll's frames went to the previous clip only, so the next alert's clip missed its
    pre-roll and, when it started in that post-roll, its own first snippet (a clip that does not show the alert)."""
    rec = ClipRecorder(tmp_path, pre_s=1.6, max_s=60, post_s=3.2, log=lambda m: None)
    fps, n = 10.0, 16
    rec.add(*frames_at(n, 0.0, fps), alert_start=None)
    rec.add(*frames_at(n, 1.6, fps), alert_start=1.6)
    first = rec.start("cam", "aaaaaaaaaaaa", 1.6)
    assert rec.finish(alert_end=3.2) == first  # post-roll until 6.4 s
    rec.add(*frames_at(n, 3.2, fps), alert_start=None)  # post-roll of the first clip, pre-roll of the next
    rec.add(*frames_at(n, 4.8, fps), alert_start=4.8)  # the second alert's first snippet ends the post-roll
    second = rec.start("cam", "bbbbbbbbbbbb", 4.8)
    rec.add(*frames_at(n, 6.4, fps), alert_start=4.8)
    assert rec.finish(alert_end=None) == second and rec.finished == [first]
    assert decode(first)[0] == 4 * n  # pre-roll, alert, post-roll 3.2 s
    assert decode(second)[0] == 3 * n  # pre-roll 1.6 s (3.2-4.8), its first snippet (4.8-6.4), then 6.4-8.0


def test_the_first_alert_after_calibrating_has_its_pre_roll(assets, tmp_path):
    """QA (issue 13): footage scored while calibrating was not kept as pre-roll."""
    from vadedge.runtime.calibrating import CalibrationSettings

    events, clips = tmp_path / "e.jsonl", tmp_path / "clips"
    logs = []
    # 2 snippets of calibration: too short, so the configured thresholds (always alert) apply from the 3rd snippet on
    rt = make_runtime(assets, [SourceSpec("lobby", str(assets["video"]), "file")], events=events, clips=str(clips),
                      policy=AlertPolicy(0.0, 0.0, 1), clip_pre_s=60.0, log=logs.append,
                      calibration=CalibrationSettings(str(tmp_path / "cal"), seconds=1.0))
    rt.run()
    assert any("not calibrated" in m for m in logs), logs
    end = [json.loads(x) for x in events.read_text().splitlines()][-1]
    assert end["start_s"] > 0 and decode(end["clip"])[0] == 6 * 16  # the calibration footage is its pre-roll


def test_runtime_clip_holds_every_decoded_frame_and_a_snapshot_of_the_peak(assets, tmp_path):
    import jsonschema

    events, clips = tmp_path / "e.jsonl", tmp_path / "clips"
    clips.mkdir()
    rt = make_runtime(assets, [SourceSpec("lobby", str(assets["video"]), "file")], events=events, clips=str(clips),
                      policy=AlertPolicy(0.0, 0.0, 1))
    rt.run()
    records = [json.loads(x) for x in events.read_text().splitlines()]
    end = records[-1]
    for r in records:
        jsonschema.validate(r, load_event_schema())
    cap = cv2.VideoCapture(str(assets["video"]))
    src_fps, src_frames = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    frames, rate, codec, _ = decode(end["clip"])
    assert codec == "h264" and abs(rate - src_fps) < 0.05
    assert frames == src_frames // 16 * 16  # every frame of every complete snippet (the alert spans the whole file)
    snap = cv2.imread(end["snapshot"])
    assert snap is not None and snap.shape[:2] == cv2.imread(str(clips / Path(end["snapshot"]).name)).shape[:2]
    assert end["snapshot"].endswith("_peak.jpg") and Path(end["snapshot"]).parent == clips


def test_snapshot_has_the_score_drawn(tmp_path):
    frame = np.zeros((240, 320, 3), np.uint8)
    path = write_snapshot(tmp_path, "cam:554", "0123456789ab", frame, 0.93, 12.3)
    from vadedge.atomic import default_file_mode

    assert os.stat(path).st_mode & 0o777 == default_file_mode()  # readable like the clips (was 0600)
    img = cv2.imread(path)
    assert Path(path).name == "cam_554_0123456789ab_peak.jpg" and img.shape == frame.shape
    assert img[:40].max() > 100 and img[60:].max() < 30  # text drawn in the top band only


def test_retention_by_age_and_total_size(tmp_path):
    now = time.time()
    for i, (age_h, size) in enumerate([(50, 100), (30, 300), (2, 400), (1, 500)]):
        p = tmp_path / f"cam_{i:012d}_1.0s.mp4"
        p.write_bytes(b"x" * size)
        os.utime(p, (now - age_h * 3600, now - age_h * 3600))
    (tmp_path / "notes.txt").write_text("not ours")
    (tmp_path / ".cam_tmp.mp4").write_bytes(b"x" * 10_000)  # a clip being written
    assert [p.name[4:16] for p in prune(tmp_path, max_age_s=48 * 3600, now=now)] == ["000000000000"]
    assert [p.name[4:16] for p in prune(tmp_path, max_bytes=1000, now=now)] == ["000000000001"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cam_tmp.mp4", "cam_000000000002_1.0s.mp4",
                                                          "cam_000000000003_1.0s.mp4", "notes.txt"]
