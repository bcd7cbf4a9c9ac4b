"""Soak test of ``vad-runtime`` on a live source: RSS and open file descriptors stay flat; a file loses nothing.

    python benchmarks/soak.py --minutes 10                 # model/backbone from runs/demo (vad-runtime --demo)

A real HTTP MJPEG camera on 127.0.0.1 (runtime/loopback_camera.py) serves the real vtest.avi frames at 25 fps;
``vad-runtime`` runs as a separate process against it, with clips, events and metrics on, while the camera drops
for 2 s every ``--drop-every`` seconds (exercising reconnects). The process's RSS (VmRSS) and open file
descriptors are sampled every ``--sample-s`` seconds. After a warm-up, "flat" means max/min within 5 %.
Then vtest.avi is run as a file source and every snippet must be scored (frames // 16). Not part of the test
suite (it takes --minutes); results go to benchmarks/results/soak-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VTEST = REPO.parent / "shared" / "data" / "video" / "vtest.avi"


def proc_sample(pid: int) -> tuple[float, int]:
    """(RSS in MiB, open file descriptors) of a running process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def spread(values: list[float]) -> float:
    return max(values) / min(values) - 1 if values and min(values) > 0 else float("nan")


def soak_live(model: Path, backbone: Path, minutes: float, sample_s: float, drop_every: float, warmup_s: float,
              work: Path) -> dict:
    from vadedge.runtime.loopback_camera import LoopbackCamera, read_frames

    seconds = minutes * 60
    with LoopbackCamera(read_frames(VTEST, limit=300), fps=25, size=(640, 480)) as cam:
        cmd = [sys.executable, "-m", "vadedge.runtime.app", "--rtsp", cam.url, "--model", str(model), "--backbone", str(backbone),
               "--duration", str(seconds), "--events", str(work / "events.jsonl"), "--clips", str(work / "clips"),
               "--stats-every", "30", "--stall-timeout", "5", "--retry-forever", "--reconnect-max-s", "2"]
        log = open(work / "runtime.log", "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        samples, t0, next_drop = [], time.monotonic(), time.monotonic() + drop_every
        while proc.poll() is None:
            time.sleep(sample_s)
            now = time.monotonic() - t0
            try:
                rss, fds = proc_sample(proc.pid)
            except (FileNotFoundError, ProcessLookupError, StopIteration):
                break
            samples.append({"t_s": round(now, 1), "rss_mib": round(rss, 1), "fds": fds})
            print(f"  t {now:6.0f} s   rss {rss:7.1f} MiB   fds {fds}", flush=True)
            if drop_every and time.monotonic() >= next_drop:
                cam.drop(2.0)
                next_drop = time.monotonic() + drop_every
        rc = proc.wait()
        log.close()
    text = (work / "runtime.log").read_text()
    last_stats = [line for line in text.splitlines() if line.startswith("up ")]
    after = [s for s in samples if s["t_s"] >= warmup_s]
    return {"rc": rc, "minutes": minutes, "samples": samples, "warmup_s": warmup_s,
            "rss_spread": spread([s["rss_mib"] for s in after]), "fd_spread": spread([s["fds"] for s in after]),
            "final_stats": last_stats[-1] if last_stats else None, "camera_connections": cam.connections}


def file_lossless(model: Path, backbone: Path, work: Path) -> dict:
    import cv2
    import numpy as np

    cap = cv2.VideoCapture(str(VTEST))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    out = work / "file_scores.npz"
    subprocess.run([sys.executable, "-m", "vadedge.runtime.app", "--video", str(VTEST), "--model", str(model), "--backbone",
                    str(backbone), "--queue", "1", "--scores-out", str(out), "--events", str(work / "file_events.jsonl"),
                    "--stats-every", "0"], check=True, capture_output=True)
    scored = len(np.load(out)["vtest"])
    return {"frames": frames, "expected_snippets": frames // 16, "scored_snippets": scored, "lost": frames // 16 - scored}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=str(REPO / "runs/demo/model.onnx"))
    p.add_argument("--backbone", default=str(REPO / "runs/demo/backbone.onnx"))
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--warmup-s", type=float, default=60.0)
    p.add_argument("--drop-every", type=float, default=120.0, help="seconds between 2 s camera drops (0: none)")
    p.add_argument("--out", default=str(REPO / "benchmarks/results"))
    args = p.parse_args()
    for f in (args.model, args.backbone, VTEST):
        if not Path(f).is_file():
            print(f"error: {f}: not found (run `vad-runtime --demo` first for the default model)", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"live soak: {args.minutes:g} min, loopback MJPEG camera serving {VTEST.name} at 25 fps", flush=True)
        live = soak_live(Path(args.model), Path(args.backbone), args.minutes, args.sample_s, args.drop_every,
                         args.warmup_s, work)
        lossless = file_lossless(Path(args.model), Path(args.backbone), work)
    result = {"live": live, "file": lossless}
    out = Path(args.out) / f"soak-{date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    flat = live["rss_spread"] <= 0.05 and live["fd_spread"] <= 0.05
    print(f"\nafter {args.warmup_s:g} s warm-up: RSS spread {100 * live['rss_spread']:.1f} %, fd spread "
          f"{100 * live['fd_spread']:.1f} % -> {'FLAT' if flat else 'NOT FLAT'} (limit 5 %)")
    print(f"camera connections {live['camera_connections']}; last stats: {live['final_stats']}")
    print(f"file source vtest.avi: {lossless['scored_snippets']} of {lossless['expected_snippets']} snippets scored, "
          f"lost {lossless['lost']}")
    print(f"written {out}")
    return 0 if flat and lossless["lost"] == 0 and live["rc"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
