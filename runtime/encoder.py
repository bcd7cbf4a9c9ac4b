"""Snippet encoder: 16 decoded frames -> one feature vector per crop, through the backbone's ONNX file.

vad-extract (offline, training data) and vad-runtime (live) both call ``SnippetEncoder.encode``, so a model
sees the same features in deployment as in training.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from vadedge.errors import VadInputError

from .backends import batch_limit
from .preprocess import BackboneConfig, InputView, preprocess, resize_short, sample_indices

META_KEY = "vadedge.backbone_config"


class SnippetEncoder:
    def __init__(self, onnx_path: str | os.PathLike, crop_mode: str = "center", threads: int = 0, device: str = "cpu",
                 view: InputView | None = None):
        """``device``: "cpu" / "cuda" (onnxruntime) or "openvino" (OpenVINO CPU); ``view``: center / full / roi."""
        from .backends import open_onnx_session

        path = self.path = Path(onnx_path)
        if not path.is_file():
            raise VadInputError(f"{path}: backbone ONNX file not found (make one with: vad-extract --export-backbone {path})")
        self.session, meta = open_onnx_session(path, device, threads, what="this backbone")
        if META_KEY not in meta:
            raise VadInputError(f"{path}: not a vadedge backbone export (no {META_KEY} metadata)")
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs != ["frames"]:
            raise VadInputError(f"{path}: backbone inputs {inputs}, expected one input 'frames'")
        self._configure(BackboneConfig.from_metadata(meta[META_KEY], f"{path}: metadata {META_KEY}"), crop_mode, view)

    def _configure(self, config: BackboneConfig, crop_mode: str, view: InputView | None = None) -> None:
        self.config, self.crop_mode = config, crop_mode
        self.view = view or InputView()  # center / full / roi (per camera in the runtime: prepare_frame's view)
        self.sampled = sample_indices(self.config)

    @classmethod
    def from_session(cls, session, crop_mode: str = "center", source: str = "backbone") -> "SnippetEncoder":
        """An encoder over any object with ``run(None, {"frames": x})`` and a ``config_json`` attribute (the
        backbone config), e.g. a Triton server's ``vad_backbone`` (runtime/triton.py)."""
        enc = cls.__new__(cls)
        enc.session, enc.path = session, source
        enc._configure(BackboneConfig.from_metadata(session.config_json, f"{source}: {META_KEY}"), crop_mode)
        return enc

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    @property
    def snippet_frames(self) -> int:
        return self.config.snippet_frames

    def prepare_frame(self, frame: np.ndarray, view: InputView | None = None) -> np.ndarray:
        """The first preprocessing step (shorter side to ``resize``), safe to run early: ``preprocess`` of the
        result equals ``preprocess`` of the original frame exactly (a same-size resize is a copy)."""
        frame = (view or self.view).apply(frame, self.config)  # the input mode, before any resize (both paths)
        return resize_short(frame, self.config.resize, self.config.interpolation)

    def keep(self, index_in_snippet: int) -> bool:
        """Whether frame i of a snippet is one the backbone sees (callers may skip storing the others)."""
        return bool((self.sampled == index_in_snippet).any())

    @property
    def max_rows(self) -> int | None:
        """Most rows (frames; clip backbones: crops) one backbone call takes: the ONNX input's batch axis when it
        is fixed, a Triton server's ``max_batch_size``; None: any (our exports have a dynamic axis)."""
        return batch_limit(self.session, "frames")

    @property
    def rows_per_snippet(self) -> int:
        """Rows of the backbone's input one snippet needs: crops x sampled frames (clip backbones: crops)."""
        crops = 10 if self.crop_mode == "ten" else 1
        return crops if self.config.kind == "clip" else crops * len(self.sampled)

    def encode_sampled(self, frames: list[np.ndarray], timings: dict | None = None, prepared: bool = False) -> np.ndarray:
        """The backbone's sampled frames of one snippet -> [crops, D] (mean over the frames).

        ``prepared``: the frames already went through ``prepare_frame`` (the runtime's capture threads do it);
        else it is done here. ``timings``, if given, receives the preprocess and backbone seconds."""
        return self.encode_batch([frames], timings, prepared)[0]

    def encode_batch(self, snippets: list[list[np.ndarray]], timings: dict | None = None,
                     prepared: bool = False) -> list[np.ndarray]:
        """Several snippets' sampled frames -> one [crops, D] each, from one backbone call (the runtime's batched
        scheduler, runtime/batching.py). Every row of the backbone's input (a frame, or a crop's clip) is computed
        independently, so a snippet's features do not depend on its batch (tested to 1e-5). Calls are split into
        chunks of ``max_rows``. ``timings`` receives the preprocess and backbone seconds of the whole batch."""
        for frames in snippets:
            if len(frames) != len(self.sampled):
                raise VadInputError(f"snippet: expected {len(self.sampled)} sampled frames, got {len(frames)}")
        t0 = time.perf_counter()
        xs = [preprocess(frames if prepared else [self.prepare_frame(f) for f in frames], self.config, self.crop_mode)
              for frames in snippets]  # each [C, F, 3, H, W]
        t1 = time.perf_counter()
        if self.config.kind == "clip":  # a video model (I3D) sees the frames as one [3, T, H, W] clip per crop
            rows = [x.transpose(0, 2, 1, 3, 4) for x in xs]
        else:
            rows = [x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]) for x in xs]
        out = self._run_rows(np.ascontiguousarray(np.concatenate(rows)))
        feats, start = [], 0
        for x, r in zip(xs, rows):
            f = out[start:start + len(r)]
            start += len(r)
            feats.append(f if self.config.kind == "clip" else f.reshape(x.shape[0], x.shape[1], -1).mean(1))
        if timings is not None:
            timings["preprocess"], timings["backbone"] = t1 - t0, time.perf_counter() - t1
        return feats

    def _run_rows(self, x: np.ndarray) -> np.ndarray:
        step = self.max_rows or len(x)
        parts = [self.session.run(None, {"frames": x[i:i + step]})[0] for i in range(0, len(x), step)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def encode(self, frames: list[np.ndarray]) -> np.ndarray:
        """All ``snippet_frames`` frames of one snippet -> [crops, D]."""
        if len(frames) != self.snippet_frames:
            raise VadInputError(f"snippet: expected {self.snippet_frames} frames, got {len(frames)}")
        return self.encode_sampled([frames[i] for i in self.sampled])


class SnippetAssembler:
    """Groups a frame stream into snippets of ``snippet_frames``, keeping only the frames the backbone samples.

    Frame i of the stream belongs to snippet i // snippet_frames; a trailing partial snippet is never emitted
    (the community's feature convention), and ``reset()`` drops a partial snippet (e.g. after a reconnect).
    Given frame times, ``span`` is (first frame's time, end of the last frame) of the snippet just returned.
    """

    def __init__(self, encoder: SnippetEncoder, keep_all: bool = False):
        self.n = encoder.snippet_frames
        self.keep = [encoder.keep(i) for i in range(self.n)]
        self.keep_all = keep_all  # clips: every decoded frame of the snippet, in ``all_frames`` after it completes
        self.span: tuple[float, float] = (0.0, 0.0)
        self.all_frames: list[np.ndarray] | None = None
        self.reset()

    def reset(self) -> None:
        self.position = 0
        self.frames: list[np.ndarray] = []
        self._all: list[np.ndarray] = []
        self.first_t: float | None = None

    def push(self, frame: np.ndarray, t: float | None = None) -> list[np.ndarray] | None:
        if self.position == 0:
            self.first_t = t
        if self.keep[self.position]:
            self.frames.append(frame)
        if self.keep_all:
            self._all.append(frame)
        self.position += 1
        if self.position < self.n:
            return None
        if t is not None and self.first_t is not None:
            step = (t - self.first_t) / (self.n - 1) if self.n > 1 else 0.0
            self.span = (self.first_t, t + step)  # the last frame lasts one mean frame interval
        done, self.frames, self.position = self.frames, [], 0
        if self.keep_all:
            self.all_frames, self._all = self._all, []
        return done


def iter_video_snippets(path: str | os.PathLike, encoder: SnippetEncoder):
    """Decode a video file with OpenCV and yield each complete snippet's sampled frames."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VadInputError(f"{path}: OpenCV cannot open this video")
    assembler = SnippetAssembler(encoder)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            snippet = assembler.push(frame)
            if snippet is not None:
                yield snippet
    finally:
        cap.release()
