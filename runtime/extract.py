"""``vad-extract``: videos -> snippet features in the community layout (``NAME__{crop}.npy`` [T, D] + a list file).

    vad-extract --export-backbone backbone.onnx                       # once: the EfficientNet-Lite0 backbone
    vad-extract --backbone backbone.onnx --out feats/ videos/*.mp4 --list feats/train.list [--ten-crop]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from vadedge.atomic import atomic_path, atomic_write_text
from vadedge.cli import make_parser
from vadedge.errors import VadInputError, run_cli

from .encoder import SnippetEncoder, iter_video_snippets
from .preprocess import InputView
from .sources import check_file


def extract_video(path: str | Path, encoder: SnippetEncoder) -> np.ndarray:
    """[T, crops, D] features of one video (T = complete 16-frame snippets)."""
    feats = [encoder.encode_sampled(s) for s in iter_video_snippets(path, encoder)]
    if not feats:
        raise VadInputError(f"{path}: fewer than {encoder.snippet_frames} decodable frames, no snippet")
    return np.stack(feats)


def write_features(out_dir: Path, name: str, feats: np.ndarray) -> list[Path]:
    paths = []
    for c in range(feats.shape[1]):
        p = out_dir / f"{name}__{c}.npy"
        with atomic_path(p) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.ascontiguousarray(feats[:, c], dtype=np.float32))
        paths.append(p)
    return paths


def run(argv=None) -> None:
    p = make_parser("vad-extract", __doc__.splitlines()[0], [
        "vad-extract --export-backbone backbone.onnx",
        "vad-extract --backbone backbone.onnx --out feats/ videos/*.mp4 --list feats/train.list --ten-crop"])
    p.add_argument("videos", nargs="*", help="video files (name = file stem, e.g. Abuse001_x264.mp4)")
    p.add_argument("--backbone", help="backbone ONNX file (from --export-backbone)")
    p.add_argument("--export-backbone", metavar="ONNX", help="write the backbone ONNX here and exit (needs torch)")
    p.add_argument("--backbone-name", default="efficientnet_lite0", choices=["efficientnet_lite0", "clip_vit_b16", "i3d"],
                   help="with --export-backbone: which backbone (efficientnet_lite0: ImageNet weights)")
    p.add_argument("--weights", help="with --export-backbone clip_vit_b16 / i3d: your weights file")
    p.add_argument("--out", help="feature folder")
    p.add_argument("--input", default="center", help="what the model sees of each frame: center, full (letterboxed) "
                   "or roi:x,y,w,h (fractions); vad-runtime must use the same")
    p.add_argument("--list", help="list file to write (one line per crop file, paths relative to its folder)")
    p.add_argument("--ten-crop", action="store_true", help="10 crops (centre, corners, flips) instead of the centre crop")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime CPU threads (0 = default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--strict", action="store_true", help="stop at the first unusable video (without it: skip it with a warning)")
    args = p.parse_args(argv)
    if args.export_backbone:
        from vadedge.export.backbone_export import export_backbone

        print(f"{export_backbone(args.backbone_name, args.export_backbone, args.weights)}: {args.backbone_name} backbone")
        return
    if not args.backbone or not args.out or not args.videos:
        raise VadInputError("need --backbone, --out and at least one video (or --export-backbone)")
    encoder = SnippetEncoder(args.backbone, "ten" if args.ten_crop else "center", args.threads,
                             view=InputView.parse(args.input))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    videos = args.videos
    if not args.no_progress:
        try:
            from tqdm import tqdm

            videos = tqdm(videos, desc="extract", unit="video")
        except ImportError:
            pass
    lines, failed = [], []
    list_dir = Path(args.list).resolve().parent if args.list else out.resolve()
    for video in videos:
        try:
            check_file(video, encoder.snippet_frames, flag="video")
            feats = extract_video(video, encoder)
        except VadInputError as exc:
            if args.strict:
                raise
            failed.append(video)
            print(f"warning: skipped: {exc}", file=sys.stderr, flush=True)
            continue
        for path in write_features(out, Path(video).stem, feats):
            path = path.resolve()
            lines.append(str(path.relative_to(list_dir)) if path.is_relative_to(list_dir) else str(path))
    if args.list:
        atomic_write_text(args.list, "\n".join(lines) + ("\n" if lines else ""))
    done = len(args.videos) - len(failed)
    print(f"{out}: {done} of {len(args.videos)} video(s), {len(lines)} feature file(s), {encoder.feature_dim}-d"
          + (f"; skipped {len(failed)}: {', '.join(map(str, failed))}" if failed else ""))
    if not done:
        raise VadInputError(f"no usable video among {len(args.videos)} (see the warnings above)")


def main(argv=None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
