"""SYNTHETIC surveillance-like scene videos rendered with OpenCV, for the demo and the tests (not real data).

A static street (sky, buildings, pavement) with walkers at normal pace; anomalous clips inject episodes:
``Running`` (a burst of fast, motion-blurred runners), ``Falling`` (a walker falls and lies still),
``Fighting`` (two figures jittering erratically with red flashes) and ``Fire`` (a large flickering
orange/yellow blob). Files are named in the UCF-Crime style (``SynFire003_x264.mp4``,
``Normal_Videos_syn007_x264.mp4``) so the training half labels them, and carry per-frame ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vadedge.errors import VadInputError

ANOMALIES = ("Running", "Falling", "Fighting", "Fire")
WIDTH, HEIGHT, FPS = 320, 240, 25
GROUND = 170


@dataclass
class Episode:
    kind: str
    start: int  # frame, inclusive
    end: int  # frame, exclusive


@dataclass
class Walker:
    x: float
    y: int
    speed: float
    color: tuple[int, int, int]
    size: int


def _background(rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    sky = np.linspace(200, 140, GROUND)[:, None]
    img[:GROUND] = np.stack([sky + 30, sky + 10, sky - 20], -1).clip(0, 255).astype(np.uint8)
    img[GROUND:] = (90, 95, 100)
    x = 0
    while x < WIDTH:
        w, h = int(rng.integers(30, 70)), int(rng.integers(50, 130))
        shade = int(rng.integers(60, 140))
        cv2.rectangle(img, (x, GROUND - h), (x + w, GROUND), (shade, shade - 10, shade - 20), -1)
        for wy in range(GROUND - h + 8, GROUND - 10, 16):
            for wx in range(x + 5, x + w - 8, 12):
                cv2.rectangle(img, (wx, wy), (wx + 5, wy + 7), (40, 180, 220) if rng.random() < 0.3 else (50, 50, 60), -1)
        x += w + int(rng.integers(0, 15))
    cv2.line(img, (0, GROUND + 35), (WIDTH, GROUND + 35), (200, 200, 200), 1)
    return img


def _draw_person(img, x, y, size, color, lying=False):
    x, y = int(x), int(y)
    if lying:
        cv2.rectangle(img, (x - 2 * size, y - size // 2), (x + 2 * size, y), color, -1)
        cv2.circle(img, (x + 2 * size + size // 2, y - size // 4), size // 2, (180, 200, 230), -1)
        return
    cv2.rectangle(img, (x - size // 2, y - 3 * size), (x + size // 2, y - size), color, -1)
    cv2.line(img, (x - size // 4, y - size), (x - size // 2, y), color, 2)
    cv2.line(img, (x + size // 4, y - size), (x + size // 2, y), color, 2)
    cv2.circle(img, (x, y - 3 * size - size // 2), size // 2, (180, 200, 230), -1)


def render(path: str | Path, frames: int, episodes: list[Episode], seed: int) -> np.ndarray:
    """Write the clip (mp4v) and return its per-frame ground truth (1 inside an episode)."""
    rng = np.random.default_rng(seed)
    for e in episodes:
        if e.kind not in ANOMALIES or not 0 <= e.start < e.end <= frames:
            raise VadInputError(f"episode {e}: expected a kind in {ANOMALIES} inside [0, {frames})")
    bg = _background(rng)
    walkers = [Walker(float(rng.uniform(0, WIDTH)), int(rng.integers(GROUND + 10, HEIGHT - 5)), float(rng.uniform(0.6, 1.6))
                      * rng.choice([-1, 1]), tuple(int(c) for c in rng.integers(30, 220, 3)), int(rng.integers(6, 10)))
               for _ in range(int(rng.integers(3, 7)))]
    runners = [Walker(float(rng.uniform(0, WIDTH)), int(rng.integers(GROUND + 10, HEIGHT - 5)), float(rng.uniform(9, 14))
                      * rng.choice([-1, 1]), tuple(int(c) for c in rng.integers(30, 220, 3)), int(rng.integers(7, 10)))
               for _ in range(6)]
    fire_xy = (int(rng.integers(60, WIDTH - 60)), GROUND - 10)
    gt = np.zeros(frames, np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise VadInputError(f"{path}: OpenCV cannot write mp4v video here")
    fallen: Walker | None = None
    noise = [rng.normal(0, 3, (HEIGHT, WIDTH, 3)).astype(np.int16) for _ in range(8)]  # sensor noise, cycled
    for t in range(frames):
        img = bg.copy()
        active = {e.kind for e in episodes if e.start <= t < e.end}
        gt[t] = bool(active)
        for w in walkers:
            if w is fallen:
                _draw_person(img, w.x, w.y, w.size, w.color, lying=True)
                continue
            w.x = (w.x + w.speed) % WIDTH
            _draw_person(img, w.x, w.y, w.size, w.color)
        if "Falling" in active and fallen is None:
            fallen = walkers[0]
        if "Falling" not in active:
            fallen = None
        if "Running" in active:
            for r in runners:
                r.x = (r.x + r.speed) % WIDTH
                for k in (3, 2, 1):  # motion-blur trail in fading colours: fast motion visible in one frame
                    faded = tuple(int(c * (1 - 0.25 * k) + 95 * 0.25 * k) for c in r.color)
                    _draw_person(img, r.x - np.sign(r.speed) * 5 * k, r.y, r.size, faded)
                _draw_person(img, r.x, r.y, r.size, r.color)
        if "Fighting" in active:
            cx = WIDTH // 2 + int(rng.integers(-8, 9))
            for k in range(2):
                _draw_person(img, cx + (k * 2 - 1) * 8 + rng.integers(-7, 8), GROUND + 40 + rng.integers(-5, 6), 10,
                             (30, 30, 200) if rng.random() < 0.5 else (40, 40, 40))
            if rng.random() < 0.4:
                cv2.circle(img, (cx, GROUND + 5), int(rng.integers(10, 25)), (0, 0, 255), 2)
        if "Fire" in active:
            for _ in range(12):
                r = int(rng.integers(10, 40))
                c = (0, int(rng.integers(80, 200)), int(rng.integers(200, 256)))
                cv2.circle(img, (fire_xy[0] + int(rng.integers(-30, 31)), fire_xy[1] + int(rng.integers(-50, 10))), r, c, -1)
            img = cv2.GaussianBlur(img, (5, 5), 0)
        writer.write(np.clip(img.astype(np.int16) + noise[t % len(noise)], 0, 255).astype(np.uint8))
    writer.release()
    return gt


def clip_name(kind: str | None, index: int) -> str:
    return f"Normal_Videos_syn{index:03d}_x264" if kind is None else f"Syn{kind}{index:03d}_x264"


def random_episodes(rng: np.random.Generator, frames: int, kinds: list[str]) -> list[Episode]:
    """Non-overlapping episodes of the given kinds, 2-5 s each, spread over the clip."""
    episodes, slot = [], frames // max(len(kinds), 1)
    for i, kind in enumerate(kinds):
        length = int(rng.integers(2 * FPS, 5 * FPS))
        lo = i * slot + FPS // 2
        start = int(rng.integers(lo, max(lo + 1, (i + 1) * slot - length)))
        episodes.append(Episode(kind, start, min(start + length, frames)))
    return episodes
