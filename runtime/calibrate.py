"""``vad-calibrate``: per-camera alert thresholds from recorded footage declared normal.

    vad-calibrate --model runs/demo/model.onnx --backbone runs/demo/backbone.onnx --video lobby_mon.mp4 \\
                  --video lobby_tue.mp4 --camera lobby --out calib/ --false-alarms-per-hour 1 [--normality]

Scores the footage exactly as vad-runtime does (backbone, sliding window), then chooses the start/stop
thresholds that give the target false-alarm rate under the runtime's smoothing, hysteresis and minimum
duration (runtime/calibration.py); writes CALIB/CAMERA.calib.json (+ CAMERA.memory.npy with --normality).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vadedge.cli import make_parser
from vadedge.errors import VadInputError, run_cli

from .calibration import calibrate, check_camera, model_hash, score_video

DEFAULT_DIR = Path("runs/demo")


def build_parser() -> argparse.ArgumentParser:
    p = make_parser("vad-calibrate", __doc__.splitlines()[0], [
        "vad-calibrate --video lobby_normal.mp4 --camera lobby --out calibration/",
        "vad-calibrate --video a.mp4 --video b.mp4 --camera gate --out calibration/ --normality --false-alarms-per-hour 0.5"])
    p.add_argument("--model", default=str(DEFAULT_DIR / "model.onnx"), help="engine .plan, .onnx or checkpoint .safetensors")
    p.add_argument("--backbone", default=str(DEFAULT_DIR / "backbone.onnx"), help="backbone ONNX")
    p.add_argument("--backend", default="auto", help="auto: TensorRT, then onnxruntime CUDA, then CPU")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime CPU threads (0 = default)")
    p.add_argument("--video", action="append", default=[], required=True, metavar="PATH",
                   help="normal footage of this camera (repeat for several files)")
    p.add_argument("--max-seconds", type=float, help="use at most this much of each video")
    p.add_argument("--camera", required=True, help="camera name (names the calibration files)")
    p.add_argument("--out", required=True, help="calibration folder")
    p.add_argument("--false-alarms-per-hour", type=float, default=1.0, help="target alerts per hour on normal footage")
    p.add_argument("--window", type=int, default=32, help="snippets in the sliding window (as vad-runtime)")
    p.add_argument("--smooth", type=int, default=3, help="moving average over this many scores (as vad-runtime)")
    p.add_argument("--min-duration", type=int, default=2, help="minimum alert length in snippets (as vad-runtime)")
    p.add_argument("--normality", action="store_true",
                   help="fuse the model score with scene normality (a memory of this camera's normal features)")
    p.add_argument("--memory-size", type=int, default=1024, help="--normality: coreset rows kept")
    p.add_argument("--k", type=int, default=1, help="--normality: nearest neighbours averaged")
    p.add_argument("--no-motion", action="store_true", help="--normality: appearance memory only (no motion memory)")
    return p


def run(argv=None, log=print) -> None:
    from .backends import make_runner
    from .encoder import SnippetEncoder

    args = build_parser().parse_args(argv)
    check_camera(args.camera)  # everything that can be refused is refused before minutes of scoring
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise VadInputError(f"--out {args.out}: exists and is not a folder")
    for flag, value in (("--false-alarms-per-hour", args.false_alarms_per_hour), ("--window", args.window),
                        ("--smooth", args.smooth), ("--min-duration", args.min_duration), ("--memory-size", args.memory_size),
                        ("--k", args.k), ("--max-seconds", args.max_seconds if args.max_seconds is not None else 1)):
        if not value > 0:
            raise VadInputError(f"{flag} must be > 0, got {value}")
    for v in args.video:
        if not Path(v).is_file():
            raise VadInputError(f"--video {v}: file not found")
    if not Path(args.model).is_file():
        raise VadInputError(f"--model {args.model}: not found")
    runner = make_runner(args.model, args.backend, args.threads)
    encoder = SnippetEncoder(args.backbone, "center", args.threads)
    scores, feats, moves, durations = [], [], [], []
    for v in args.video:
        s, f, dt, m = score_video(v, encoder, runner, args.window, args.max_seconds, motion=True)
        scores.append(s), feats.append(f), moves.append(m), durations.append(dt)
        log(f"{v}: {len(s)} snippets of {dt:.3f} s scored")
    if max(durations) > 1.01 * min(durations):
        raise VadInputError(f"--video: snippet durations differ ({', '.join(f'{d:.3f}' for d in durations)} s); "
                            "calibrate with footage at this camera's frame rate")
    cal = calibrate(np.concatenate(scores), np.concatenate(feats), float(np.mean(durations)),
                    motion=None if args.no_motion else np.concatenate(moves), mode="fused" if args.normality else "model", false_alarms_per_hour=args.false_alarms_per_hour,
                    smooth=args.smooth, min_snippets=args.min_duration, window=args.window, camera=args.camera,
                    model_sha256=model_hash(args.model), backbone_sha256=model_hash(args.backbone),
                    memory_size=args.memory_size, k=args.k, log=log)
    path = cal.save(args.out)
    log(cal.summary())
    if cal.mode == "model":  # the thresholds are on the model's own score: usable as plain flags too
        log(f"{path}: saved (as plain vad-runtime flags: --start {cal.thresholds.start:.6g} --stop {cal.thresholds.stop:.6g} "
            f"--min-duration {cal.min_snippets} --smooth {cal.smooth} --window {cal.window})")
    else:
        log(f"{path}: saved (+ {cal.camera}.memory.npy{' and .motion.npy' if cal.uses_motion else ''}; the thresholds "
            f"apply to the {cal.mode} score, so vad-runtime must load this calibration)")


def main(argv=None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
