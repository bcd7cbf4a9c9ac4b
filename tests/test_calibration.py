"""Per-camera calibration (runtime/calibration.py, vad-calibrate): target false-alarm rate reproduced on held-out
scores of a known process, saturation, model-hash refusal, save/load across a restart, k-NN novelty vs brute
force, and score_video vs sliding-window scores on real decoded video (../shared/data/video)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vadedge.errors import VadInputError
from vadedge.runtime.calibration import (Calibration, NormalityMemory, SaturationError, calibrate, choose_thresholds,
                                         cross_validated_distances, fit_thresholds, kcenter_coreset, model_hash,
                                         motion_descriptor, score_video, simulate_alerts)
from vadedge.runtime.scoring import AlertPolicy

SHARED_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"


def ar1_scores(n: int, seed: int, rho: float = 0.7, mu: float = -2.0) -> np.ndarray:
    """Known normal-score process: sigmoid of a Gaussian AR(1) (unit variance) around logit ``mu``."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n) * math.sqrt(1 - rho ** 2)
    x = np.empty(n)
    x[0] = rng.standard_normal()
    for i in range(1, n):
        x[i] = rho * x[i - 1] + e[i]
    return 1 / (1 + np.exp(-(x + mu)))


def heldout_rate(th, scores, snippet_s=1.0, smooth=3, min_snippets=2) -> tuple[int, float]:
    n = len(simulate_alerts(scores, AlertPolicy(th.start, th.stop, min_snippets), smooth, snippet_s))
    return n, len(scores) * snippet_s / 3600


def test_simulate_alerts_follows_the_runtime_rules():
    s = [0, 0.7, 0.7, 0.5, 0.3, 0.7, 0.2, 0.9, 0.9, 0.9]
    # hysteresis: 1..3 stays open above stop 0.4; 5 is a one-snippet blip (min 2); 7..9 still open at the end
    assert simulate_alerts(np.array(s), AlertPolicy(0.6, 0.4, 2), 1, 0.5) == [(1, 3), (7, 9)]
    # smoothing 2 (the runtime's Smoother): 0 .35 .7 .6 .4 .5 .45 .55 .9 .9 never falls below 0.4 after 2: one alert
    assert simulate_alerts(np.array(s), AlertPolicy(0.6, 0.4, 2), 2, 0.5) == [(2, 9)]
    assert simulate_alerts(np.array(s), AlertPolicy(0.6, 0.5, 2), 2, 0.5) == [(2, 3), (8, 9)]


def test_target_rate_reproduced_with_enough_footage():
    """10 h of normal footage at 1 s snippets, target 30/h (300 alerts seen): read off the counts."""
    th = fit_thresholds(ar1_scores(36_000, seed=1), 1.0, 30.0, smooth=3, min_snippets=2)
    assert th.method == "empirical"
    n, hours = heldout_rate(th, ar1_scores(108_000, seed=101))
    # sampling error: the calibration's count (300) and the held-out count, 3 SD each
    tol = 3 * math.sqrt(30 / 10) + 3 * math.sqrt(30 / hours)
    assert abs(n / hours - 30) <= tol, (n / hours, tol)


@pytest.mark.parametrize("seed", [2, 3])
def test_target_rate_extrapolated_from_short_footage(seed):
    """1 h of footage for a target of 4/h (4 alerts expected: below the 20 needed to read it off): tail fit;
    the held-out rate over 40 h falls inside the reported range (plus the held-out count's Poisson error)."""
    th = fit_thresholds(ar1_scores(3_600, seed=seed), 1.0, 4.0, smooth=3, min_snippets=2)
    assert th.method in ("exponential-tail", "gpd-tail") and th.base_alerts >= 10
    assert th.expected_per_hour == pytest.approx(4.0)
    lo, hi = th.rate_range_per_hour
    assert lo < 4.0 < hi
    n, hours = heldout_rate(th, ar1_scores(144_000, seed=seed + 100))
    poisson = 3 * math.sqrt(max(n, 1)) / hours
    assert lo - poisson <= n / hours <= hi + poisson, (n / hours, lo, hi)
    # and the thresholds are not the default guess: far fewer alerts than at the default 0.6 / 0.4 would be wrong
    assert th.start != 0.6


def ar1_features(n: int, seed: int, dim: int = 16, rho: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n, dim))
    x = np.empty((n, dim))
    x[0] = e[0]
    for i in range(1, n):
        x[i] = rho * x[i - 1] + math.sqrt(1 - rho ** 2) * e[i]
    return (x + 4).astype(np.float32)


def test_scene_normality_reproduces_target_rate_on_held_out_features():
    """Novelty calibrated by time-block cross-validation (1 h of correlated normal features, target 6/h) alerts
    at the reported rate on 10 h of new features from the same process: the memory's own footage is not
    scored as 'seen'."""
    cal = calibrate(ar1_scores(3_600, 0), ar1_features(3_600, 0), 1.0, mode="normality", false_alarms_per_hour=6.0)
    assert cal.memory.bank.shape == (1024, 16)
    s = cal.score(ar1_scores(36_000, 50), ar1_features(36_000, 50))
    n = len(simulate_alerts(s, cal.policy, cal.smooth, 1.0))
    lo, hi = cal.thresholds.rate_range_per_hour
    poisson = 3 * math.sqrt(max(n, 1)) / 10
    assert lo - poisson <= n / 10 <= hi + poisson, (n / 10, lo, hi)


def test_short_footage_and_bad_scores_are_refused():
    with pytest.raises(VadInputError, match="too short"):
        fit_thresholds(np.full(5, 0.1), 1.0)
    bad = ar1_scores(100, seed=0)
    bad[3] = np.nan
    with pytest.raises(VadInputError, match="NaN"):
        fit_thresholds(bad, 1.0)
    with pytest.raises(VadInputError, match="false-alarms-per-hour"):
        fit_thresholds(ar1_scores(100, seed=0), 1.0, 0.0)


def test_saturated_model_is_refused_in_one_line():
    scores = np.clip(0.995 + 0.004 * np.random.default_rng(0).random(200), 0, 1)
    with pytest.raises(SaturationError) as err:
        choose_thresholds(scores, 1.6, camera="lobby")
    msg = str(err.value)
    assert "\n" not in msg and "lobby" in msg and "fine-tune" in msg and "--normality" in msg and ">= 0.99" in msg
    # not saturated on average, but the target needs a start above 0.999: no headroom left for anomalies
    with pytest.raises(SaturationError, match="no headroom"):
        choose_thresholds(ar1_scores(3_600, seed=0, mu=4.5), 1.0, camera="lobby")
    assert choose_thresholds(ar1_scores(3_600, seed=0, mu=3.5), 1.0, camera="lobby").thresholds.start < 0.999
    # fused mode drops the saturated model channel and calibrates scene normality alone, saying why
    feats = np.random.default_rng(1).random((200, 16)).astype(np.float32)
    logged = []
    cal = calibrate(scores, feats, 1.6, mode="fused", camera="lobby", log=logged.append)
    assert cal.mode == "normality" and cal.notes and len(logged) == 1 and cal.thresholds.start < 0.99


def test_flat_normal_scores_get_a_threshold_between_normal_and_the_ceiling():
    th = fit_thresholds(np.full(100, 1e-5), 0.64)
    assert th.method == "flat" and 1e-5 < th.start < 0.99 and th.observed_alerts == 0


def test_knn_novelty_equals_brute_force():
    rng = np.random.default_rng(0)
    normal = rng.standard_normal((300, 24)).astype(np.float32)
    query = rng.standard_normal((40, 24)).astype(np.float32)
    for k, normalise in ((1, True), (3, True), (2, False)):
        mem = NormalityMemory.build(normal, size=100, k=k, normalise=normalise)
        assert mem.bank.shape == (100, 24)
        q = query / np.linalg.norm(query, axis=1, keepdims=True) if normalise else query
        d = np.sqrt(((q[:, None, :] - mem.bank[None]) ** 2).sum(-1))  # brute force [40, 100]
        np.testing.assert_allclose(mem.distance(query), np.sort(d, 1)[:, :k].mean(1), rtol=1e-5, atol=1e-6)
    # the coreset covers every normal row within its greedy radius, and the first pick is row 0
    f = normal / np.linalg.norm(normal, axis=1, keepdims=True)
    idx = kcenter_coreset(f, 50)
    assert idx[0] == 0 and len(set(idx.tolist())) == 50
    cover = np.sqrt(((f[:, None] - f[idx][None]) ** 2).sum(-1)).min(1)
    assert cover.max() <= np.sqrt(((f[idx[-1]] - np.delete(f[idx], -1, 0)) ** 2).sum(-1)).min() + 1e-6


def test_cross_validated_distances_never_see_their_own_block():
    # every snippet repeated: with itself in the memory its distance would be 0
    base = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32)
    feats = np.repeat(base, 4, axis=0)  # 40 snippets, each 4x in a row
    d = cross_validated_distances(feats, size=1000, k=1, folds=5, guard=0)
    assert (d > 0.1).all()


def _fused_calibration(seed=0):
    rng = np.random.default_rng(seed)
    scores = ar1_scores(400, seed=seed)
    feats = rng.standard_normal((400, 32)).astype(np.float32) + 3.0
    motion = np.abs(rng.standard_normal((400, 12))).astype(np.float32)
    return calibrate(scores, feats, 0.64, motion=motion, mode="fused", camera="gate_1", model_sha256="a" * 64,
                     backbone_sha256="b" * 64, memory_size=64, false_alarms_per_hour=2.0), rng


def test_model_hash_refusal_and_tampered_memory(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model one")
    other = tmp_path / "o.onnx"
    other.write_bytes(b"model two")
    cal = choose_thresholds(ar1_scores(500, seed=4), 1.0, camera="door", model_sha256=model_hash(model))
    cal.save(tmp_path / "calib")
    assert Calibration.load(tmp_path / "calib", "door", model_hash(model)).policy == cal.policy
    with pytest.raises(VadInputError, match="another model") as err:
        Calibration.load(tmp_path / "calib", "door", model_hash(other))
    assert "\n" not in str(err.value)
    with pytest.raises(VadInputError, match="no calibration for camera"):
        Calibration.load(tmp_path / "calib", "garage", model_hash(model))
    # Model mode too: the model's scores come from the backbone's features, so another backbone is refused.
    cal_b = calibrate(ar1_scores(500, seed=5), None, 1.0, camera="porch", model_sha256=model_hash(model), backbone_sha256="b" * 64)
    cal_b.save(tmp_path / "calib")
    assert Calibration.load(tmp_path / "calib", "porch", model_hash(model), backbone_hash="b" * 64).policy == cal_b.policy
    with pytest.raises(VadInputError, match="another backbone"):
        Calibration.load(tmp_path / "calib", "porch", model_hash(model), backbone_hash="c" * 64)
    with pytest.raises(VadInputError, match="camera"):
        cal.save(tmp_path / "calib", camera="../evil")
    fused, _ = _fused_calibration()
    fused.save(tmp_path / "calib")
    with pytest.raises(VadInputError, match="another backbone"):
        Calibration.load(tmp_path / "calib", "gate_1", "a" * 64, backbone_hash="c" * 64)
    for suffix in ("memory", "motion"):
        good = (tmp_path / "calib" / f"gate_1.{suffix}.npy").read_bytes()
        np.save(tmp_path / "calib" / f"gate_1.{suffix}.npy", np.zeros((3, 32), np.float32))
        with pytest.raises(VadInputError, match=f"gate_1.{suffix}.npy: missing or not the memory"):
            Calibration.load(tmp_path / "calib", "gate_1", "a" * 64)
        (tmp_path / "calib" / f"gate_1.{suffix}.npy").write_bytes(good)
    loaded = Calibration.load(tmp_path / "calib", "gate_1", "a" * 64)
    assert loaded.uses_motion
    loaded.check_settings(32, 3, 32)
    with pytest.raises(VadInputError, match="--window 32 --smooth 3"):
        loaded.check_settings(16, 3)
    with pytest.raises(VadInputError, match="1280-d"):
        loaded.check_settings(32, 3, 1280)
    (tmp_path / "calib" / "door.calib.json").write_text("{not json")
    with pytest.raises(VadInputError, match="not a valid calibration"):
        Calibration.load(tmp_path / "calib", "door", model_hash(model))


def test_calibration_survives_a_restart(tmp_path):
    cal, rng = _fused_calibration()
    assert cal.mode == "fused" and cal.memory is not None and cal.uses_motion
    cal.save(tmp_path)
    raw = ar1_scores(50, seed=9)
    feats = rng.standard_normal((50, 32)).astype(np.float32) + 3.0
    feats[20:30] *= -1  # novel snippets
    motion = np.abs(rng.standard_normal((50, 12))).astype(np.float32)
    np.save(tmp_path / "raw.npy", raw)
    np.save(tmp_path / "feats.npy", feats)
    np.save(tmp_path / "motion.npy", motion)
    code = ("import json, numpy as np, sys; from vadedge.runtime.calibration import Calibration, simulate_alerts; "
            f"c = Calibration.load({str(tmp_path)!r}, 'gate_1', 'a' * 64, 'b' * 64); d = {str(tmp_path)!r}; "
            "s = c.score(np.load(d + '/raw.npy'), np.load(d + '/feats.npy'), np.load(d + '/motion.npy')); "
            "print(json.dumps({'scores': s.tolist(), 'start': c.policy.start, 'stop': c.policy.stop, "
            "'alerts': simulate_alerts(s, c.policy, c.smooth, c.snippet_seconds), 'summary': c.summary()}))")
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    before = cal.score(raw, feats, motion)
    np.testing.assert_allclose(out["scores"], before, rtol=1e-12)
    assert (out["start"], out["stop"]) == (cal.policy.start, cal.policy.stop)
    assert [tuple(a) for a in out["alerts"]] == simulate_alerts(before, cal.policy, cal.smooth, cal.snippet_seconds)
    assert out["alerts"] and all(a <= 30 and b >= 20 for a, b in out["alerts"])  # the novel stretch alerts
    assert out["summary"] == cal.summary()
    # one snippet at a time (as the runtime calls it) equals the batch
    assert cal.score(float(raw[25]), feats[25], motion[25]) == pytest.approx(before[25], rel=1e-9)
    with pytest.raises(VadInputError, match="motion descriptor"):
        cal.score(raw, feats)


def test_motion_descriptor_sees_frozen_fast_and_flicker():
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 200, (120, 160, 3)).astype(np.uint8)

    def shifted(dx):
        return np.roll(scene, dx, axis=1)

    walking = [shifted(4 * i) for i in range(4)]
    frozen = [scene] * 4
    fast = [shifted(16 * i) for i in range(4)]
    flicker = [np.clip(f.astype(int) + (80 if i % 2 else 0), 0, 255).astype(np.uint8) for i, f in enumerate(walking)]
    m = {k: motion_descriptor(v) for k, v in dict(walking=walking, frozen=frozen, fast=fast, flicker=flicker).items()}
    assert m["walking"].shape == (96,) and np.all(m["frozen"] == 0)
    assert m["flicker"].mean() > m["walking"].mean() and m["fast"].max() >= m["walking"].max()


# ---------------------------------------------------------------- real decoded video
@pytest.mark.shared
def test_score_video_equals_sliding_window_scores(assets):
    from vadedge.runtime.backends import OrtRunner
    from vadedge.runtime.encoder import SnippetEncoder, iter_video_snippets

    video = SHARED_VIDEO / "vtest.avi"
    if not video.is_file():
        pytest.skip(f"{video} not found (../shared is absent)")
    enc, runner = SnippetEncoder(assets["backbone"]), OrtRunner(assets["onnx"])
    scores, feats, dt = score_video(video, enc, runner, window=3, max_seconds=8.0)
    assert dt == pytest.approx(16 / 10) and scores.shape == (5,) and feats.shape == (5, 1280)
    _, _, _, motion = score_video(video, enc, runner, window=3, max_seconds=8.0, motion=True)
    assert motion.shape == (5, 96) and (motion > 0).any()
    ref = []
    for i, snippet in enumerate(iter_video_snippets(video, enc)):
        ref.append(enc.encode_sampled(snippet).mean(0))
        if i == 4:
            break
    ref = np.stack(ref)
    np.testing.assert_allclose(feats, ref, atol=1e-5)
    # offline: the model over the last <= 3 features, the newest position's score
    offline = [float(runner.run(ref[max(0, t - 2):t + 1][None])["scores"][0, -1]) for t in range(5)]
    np.testing.assert_allclose(scores, offline, atol=1e-6)


@pytest.mark.shared
def test_vad_calibrate_cli(assets, tmp_path, capsys):
    from vadedge.runtime.calibrate import main

    video = SHARED_VIDEO / "vtest.avi"
    if not video.is_file():
        pytest.skip(f"{video} not found (../shared is absent)")
    common = ["--model", str(assets["onnx"]), "--backbone", str(assets["backbone"]), "--camera", "vtest",
              "--out", str(tmp_path), "--window", "8"]
    assert main(common + ["--video", str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4: file not found" in capsys.readouterr().err
    for bad, msg in ((["--camera", "a/b"], "--camera 'a/b'"), (["--false-alarms-per-hour", "0"], "--false-alarms-per-hour"),
                     (["--smooth", "0"], "--smooth"), (["--max-seconds", "-1"], "--max-seconds")):
        assert main(common + ["--video", str(video)] + bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and msg in err and err.count("\n") == 1
    assert main(common + ["--video", str(video), "--max-seconds", "16"]) == 2  # 10 snippets
    assert "too short" in capsys.readouterr().err
    assert main(common + ["--video", str(video), "--normality", "--memory-size", "32", "--false-alarms-per-hour", "2"]) == 0
    out = capsys.readouterr().out
    assert "calibration vtest:" in out and "false alarms/h" in out and "must load this calibration" in out
    cal = Calibration.load(tmp_path, "vtest", model_hash(assets["onnx"]), model_hash(assets["backbone"]))
    assert cal.memory.bank.shape == (32, 1280) and cal.false_alarms_per_hour == 2.0 and cal.window == 8
    assert cal.motion_memory.bank.shape == (32, 96)
