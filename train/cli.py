"""Command-line entry points: vad-train, vad-eval, vad-gt, vad-convert, vad-synth.

Bad input ends with one line on stderr (``error: …``, naming the file or field) and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from vadedge.cli import make_parser
from vadedge.errors import VadInputError, run_cli

DEMO_MODEL = dict(feature_dim=128, dim=64, heads=2, head_dim=32, mlp_dim=64, head_hidden=32, normal_slots=30, abnormal_slots=30)
DEMO_TRAIN = dict(iterations=300, lr=5e-4, batch_normal=16, batch_abnormal=16, eval_every=50, seed=0)
DEMO_GSMOE = dict(expert_dim=64, gate_dim=64)
DEMO_MOME = dict(embed_dim=128, expert_hidden=64, lgt_layers=1, lgt_max_len=64, head_hidden=32)
DEMO_MOME_TRAIN = dict(iterations=300, lr=5e-4, optimizer="adamw", weight_decay=1e-2, batch_normal=16, batch_abnormal=16,
                       eval_every=50, seed=0, seq_len=64, lr_milestones=[150], lr_gamma=0.5)
# MoME supplementary §B: UCF lr 1e-4 halved after the first epoch; XD 4e-5, x0.1 after the second.
# Optimizer, weight decay, epochs and the 256-snippet training length follow VadCLIP (the paper's base).
MOME_SCHEDULES = {"ucf": dict(lr=1e-4, gamma=0.5, decay_epoch=1), "xd": dict(lr=4e-5, gamma=0.1, decay_epoch=2)}
MOME_EPOCHS = 10
DEMO_STAGES = dict(encoder_iterations=300, tgs_iterations=150, expert_iterations=150, gate_iterations=150,
                   expert_batch=8, lr_tgs=2e-4, lr_experts=1e-3, lr_gate=1e-3, gate_warmup=15)


def _run(main, argv) -> int:
    try:
        return run_cli(main, argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parse_sets(pairs: list[str]) -> dict:
    """``--set key=value`` pairs; values are JSON when they parse as JSON, else strings."""
    out = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise VadInputError(f"--set {pair!r}: expected key=value")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


# ---------------------------------------------------------------- vad-train
def _train_parser() -> argparse.ArgumentParser:
    p = make_parser("vad-train", "Train a WSVAD model on features in the community format.", [
        "vad-train --demo                                  # SYNTHETIC features, a small model in minutes",
        "vad-train --model urdmu --preset ucf --train-list feats/train.list --test-list feats/test.list --gt gt.npz",
        "vad-train --out runs/train --resume               # continue from last.safetensors"])
    p.add_argument("--demo", action="store_true", help="built-in default: generate the SYNTHETIC dataset and train a small UR-DMU on it")
    p.add_argument("--model", default="urdmu", help="registered model name")
    p.add_argument("--preset", choices=["official", "paper", "ucf", "xd"], default="official",
                   help="UR-DMU: 'official' reproduces the official code (default), 'paper' the paper's formulas; "
                        "MoME: 'xd' switches to the XD-Violence settings (UCF-Crime otherwise)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model config field, e.g. --set feature_dim=2048")
    p.add_argument("--train-list", help="training list file (one feature .npy per line; vad-extract --list)")
    p.add_argument("--test-list", help="test list file for periodic evaluation (with --gt)")
    p.add_argument("--root", help="feature root that list paths are resolved against")
    p.add_argument("--gt", help="per-video frame GT .npz (vad-gt) for periodic evaluation")
    p.add_argument("--naming", choices=["auto", "ucf", "xd", "sh"], default="auto",
                   help="how video names give labels/classes (auto: from the names seen; sh: ShanghaiTech, needs --labels)")
    p.add_argument("--labels", help="split list 'NAME LABEL' per line (ShanghaiTech: required; names carry no label)")
    p.add_argument("--out", default="runs/train", help="run folder (checkpoints, logs, reports)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last.safetensors")
    tc = p.add_argument_group("training (defaults: the paper's)")
    for f in dataclasses.fields(_train_config_cls()):
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            tc.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=None, metavar="BOOL",
                            help=f"TrainConfig.{f.name} (unset: the paper's value)")
        elif str(f.type) == "list[int]":
            tc.add_argument(flag, type=_int_list, default=None, metavar="N,N,…", help=f"TrainConfig.{f.name} (unset: the paper's value)")
        else:
            tc.add_argument(flag, type={"int": int, "float": float}.get(str(f.type), str), default=None,
                            help=f"TrainConfig.{f.name} (unset: the paper's value)")
    gs = p.add_argument_group("GS-MoE (--model gsmoe); encoder fields go through --set encoder.FIELD=VALUE")
    gs.add_argument("--stage-iterations", help="iterations of the 4 stages: encoder,tgs,experts,gate (default 3000,1000,1000,1000)")
    gs.add_argument("--clusters", type=int, default=None, help="K-means cluster experts (k) instead of one expert per class")
    gs.add_argument("--expert-batch", type=int, default=None, help="normal and class videos per expert per step")
    gs.add_argument("--tgs-warmup", type=int, default=None, help="stage-2 steps on L_topk-norm only (-1: one epoch of anomalous crops)")
    gs.add_argument("--gate-warmup", type=int, default=None, help="gate steps on L_topk-norm only (-1: one epoch of anomalous crops)")
    mo = p.add_argument_group("MoME (--model mome)")
    mo.add_argument("--expert-set", choices=["paper", "explicit-only"], default="paper",
                    help="paper (default): 24 normal + 12 explicit + 12 implicit anomaly experts, fuser on; "
                         "explicit-only: 12 normal + 12 explicit (the earlier default)")
    mo.add_argument("--prototypes", help="anomaly prototype text embeddings for the APR (required; random ones only with --demo): "
                                         "[C, 512] .npy with --prototype-names, PEL4VAD *-prompt.npy, [C, K, 512] .npy or a per-class .npz")
    mo.add_argument("--prototype-names", help="class name per row of --prototypes (e.g. class_prompts.txt); normal rows are dropped")
    mo.add_argument("--prototype-drop-rows", type=_int_list, default=None, metavar="N,N,…",
                    help="rows (classes) of --prototypes that are not anomalies; replaces the automatic normal-row rule")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return p


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _train_config_cls():
    from .config import TrainConfig

    return TrainConfig


def _model_config(model: str, preset: str, sets: dict, base: dict | None = None):
    from .config import config_from_dict, config_to_dict
    from .models.registry import get_entry

    entry = get_entry(model)
    presets = {"paper": getattr(entry.config_cls, "paper", None), "xd": getattr(entry.config_cls, "xd", None)}
    cfg = (presets.get(preset) or entry.config_cls)()
    merged = {**config_to_dict(cfg), **(base or {}), **sets}
    return config_from_dict(entry.config_cls, merged, where="--set")


def train_cmd(argv=None) -> None:
    from .config import TrainConfig, config_from_dict, config_to_dict
    from .trainer import train

    args = _train_parser().parse_args(argv)
    out = Path(args.out)
    train_overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}
    model_base = None
    if args.demo:
        from .data.synthetic import SyntheticSpec, write_dataset

        data = out / "synthetic_data"
        mome = args.model == "mome"
        if not (data / "SYNTHETIC.json").exists():
            print(f"writing the SYNTHETIC demo dataset to {data} …")
            write_dataset(data, SyntheticSpec(crops=1, feature_dim=512 if mome else 128))
        args.train_list, args.test_list, args.root, args.gt = str(data / "train.list"), str(data / "test.list"), str(data), str(data / "test_gt.npz")
        model_base = DEMO_MOME if mome else DEMO_MODEL
        train_overrides = {**(DEMO_MOME_TRAIN if mome else DEMO_TRAIN), **train_overrides}
    if not args.train_list:
        raise VadInputError("--train-list is required (or --demo for the built-in synthetic run)")
    if args.model == "mome" and not args.demo:
        train_overrides = {**_mome_schedule(args, train_overrides), **train_overrides}
    cfg = config_from_dict(TrainConfig, {**config_to_dict(TrainConfig()), **train_overrides}, where="training options")
    if args.model == "gsmoe":
        return _train_gsmoe(args, cfg, model_base)
    sets = _parse_sets(args.set)
    prototypes = None
    if args.model == "mome":
        prototypes = _mome_prototypes(args, sets)
        from .models.mome import EXPERT_SETS

        model_base = {**EXPERT_SETS[args.expert_set], **(model_base or {})}
    model_cfg = _model_config(args.model, args.preset, sets, model_base)
    train_videos, test_videos, gt = _load_splits(args)
    if args.model == "mome" and cfg.seq_len < model_cfg.lgt_max_len:
        raise VadInputError(f"--seq-len {cfg.seq_len} < lgt_max_len {model_cfg.lgt_max_len}: MoME's positions past the "
                            "training length would never be trained; raise --seq-len or --set lgt_max_len")
    init_model = None
    if prototypes is not None and not args.resume:
        from .models.registry import create_model

        init_model = create_model("mome", model_cfg)
        init_model.set_prototypes(prototypes)
    result = train(args.model, model_cfg, train_videos, out, cfg=cfg, test_videos=test_videos, test_gt=gt,
                   resume=args.resume, progress=not args.no_progress, init_model=init_model,
                   extra_meta={"synthetic": _synthetic(args, train_videos), "train_list": args.train_list})
    print(f"checkpoint: {result.run_dir / 'best.safetensors'} (step {result.best_step})")
    if args.demo and test_videos is not None:
        from .checkpoint import load_model
        from .evaluate import evaluate, plot_results

        model, _ = load_model(out / "best.safetensors")
        _, results = evaluate(model, test_videos, gt)
        plots = plot_results(out / "plots", results, limit=8)
        print(f"score plots (SYNTHETIC data): {plots[0].parent}/ ({len(plots)} PNG)")


def _mome_prototypes(args, sets: dict):
    """The APR's text prototypes: required for real runs; the demo alone runs on random ones (labelled)."""
    from .data.prototypes import load_prototypes

    if not args.prototypes:
        if args.demo:
            sets.setdefault("prototypes_file", "random (SYNTHETIC demo only: no semantics)")
            print("MoME prototypes: random (SYNTHETIC demo only: no semantics)")
            return None
        if args.resume:
            return None  # the checkpoint holds them
        raise VadInputError("--prototypes is required for MoME (CLIP text embeddings of the anomaly prototypes, e.g. "
                            "class_prompts_clip_vitb16.npy with --prototype-names class_prompts.txt); random ones only with --demo")
    protos = load_prototypes(args.prototypes, args.prototype_names, args.prototype_drop_rows)
    sets.update(num_prototypes=len(protos.embeddings), prototype_classes=protos.classes, prototypes_file=str(args.prototypes))
    print(f"MoME prototypes: {len(protos.embeddings)} from {args.prototypes} ({len(set(protos.classes))} classes)")
    return protos


def _mome_schedule(args, overrides: dict) -> dict:
    """The paper's MoME schedule with epochs counted in balanced batches of abnormal crops."""
    from .data.datasets import TrainCrops
    from .data.features import read_list

    sched = MOME_SCHEDULES["xd" if args.preset == "xd" else "ucf"]
    batch = overrides.get("batch_abnormal", 64)
    crops = TrainCrops(read_list(args.train_list, args.root, args.naming, _labels(args)), 1, feature_dim=0, probe=True)
    epoch = max(1, -(-int((crops.labels == 1).sum()) // batch))
    return dict(lr=sched["lr"], lr_milestones=[sched["decay_epoch"] * epoch], lr_gamma=sched["gamma"],
                iterations=MOME_EPOCHS * epoch, optimizer="adamw", weight_decay=1e-2, seq_len=256)


def _labels(args) -> dict[str, int] | None:
    """Video labels from ``--labels`` (a split list), read once per run."""
    from .data.names import read_split_labels

    if not getattr(args, "labels", None):
        return None
    if not hasattr(args, "_label_map"):
        args._label_map = read_split_labels(args.labels)
    return args._label_map


def _load_splits(args):
    from .data.features import read_list
    from .gt import load_gt

    train_videos = read_list(args.train_list, args.root, args.naming, _labels(args))
    if not args.test_list:
        return train_videos, None, None
    if not args.gt:
        raise VadInputError("--test-list needs --gt (per-video frame ground truth .npz, see vad-gt)")
    return train_videos, read_list(args.test_list, args.root, args.naming, _labels(args)), load_gt(args.gt)


def _synthetic(args, train_videos) -> bool:
    """Whether the checkpoint is marked synthetic: --demo, or training data carrying a SYNTHETIC.json marker."""
    from .data.features import synthetic_marker

    marker = None if args.demo else synthetic_marker(args.train_list, train_videos)
    if marker is not None:
        print(f"warning: training on SYNTHETIC features ({marker}): the checkpoint and its exports are marked synthetic")
    return bool(args.demo) or marker is not None


def _train_gsmoe(args, cfg, encoder_base) -> None:
    from .config import config_from_dict
    from .models.gsmoe import GSMoEConfig
    from .pipelines.gsmoe import GSMoEStages, format_comparison, run_gsmoe

    from .models.urdmu import URDMUConfig

    sets = _parse_sets(args.set)
    # A key only the encoder has (feature_dim, dim, ...) is the encoder's, as for the other models: no "encoder." needed.
    own = {f.name for f in dataclasses.fields(GSMoEConfig)}
    sets = {(f"encoder.{k}" if k not in own and k in {f.name for f in dataclasses.fields(URDMUConfig)} else k): v
            for k, v in sets.items()}
    encoder = _model_config("urdmu", args.preset, {k[len("encoder."):]: v for k, v in sets.items() if k.startswith("encoder.")}, encoder_base)
    fields = {**(DEMO_GSMOE if args.demo else {}), **{k: v for k, v in sets.items() if not k.startswith("encoder.")}}
    config = config_from_dict(GSMoEConfig, fields, where="--set")
    config.encoder = encoder
    stage_fields = dict(DEMO_STAGES) if args.demo else {}
    if args.stage_iterations:
        try:
            its = [int(x) for x in args.stage_iterations.split(",")]
            assert len(its) == 4
        except (ValueError, AssertionError):
            raise VadInputError(f"--stage-iterations {args.stage_iterations!r}: expected four integers, e.g. 3000,1000,1000,1000") from None
        stage_fields.update(zip(("encoder_iterations", "tgs_iterations", "expert_iterations", "gate_iterations"), its))
    for key in ("clusters", "expert_batch", "tgs_warmup", "gate_warmup"):
        if getattr(args, key) is not None:
            stage_fields[key] = getattr(args, key)
    train_videos, test_videos, gt = _load_splits(args)
    reports = run_gsmoe(train_videos, args.out, config=config, stages=GSMoEStages(**stage_fields), cfg=cfg,
                        test_videos=test_videos, test_gt=gt, progress=not args.no_progress,
                        extra_meta={"synthetic": _synthetic(args, train_videos), "train_list": args.train_list})
    print(f"checkpoint: {Path(args.out) / 'gsmoe.safetensors'}")
    if test_videos is not None:
        print(format_comparison(reports))


def train_main(argv=None) -> int:
    return _run(train_cmd, argv)


# ---------------------------------------------------------------- vad-eval
def eval_cmd(argv=None) -> None:
    from .data.names import video_label, video_name
    from .evaluate import build_results, evaluate, plot_results, write_report, write_scores
    from .gt import load_gt
    from .metrics import format_report, frame_report

    p = make_parser("vad-eval", "Frame-level AUC / AP / PR-AUC / AUC_A / AP_A / FAR / per-class AUC.", [
        "vad-eval --ckpt runs/train/best.safetensors --test-list feats/test.list --gt gt.npz",
        "vad-eval --scores scores.npz --gt gt.npz --json report.json"])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", help="checkpoint to score --test-list with")
    src.add_argument("--scores", help="per-video snippet scores .npz (key = video name) to evaluate as is")
    p.add_argument("--test-list", help="test list file (with --ckpt)")
    p.add_argument("--root", help="feature root that list paths are resolved against")
    p.add_argument("--gt", required=True, help="per-video frame GT .npz (vad-gt)")
    p.add_argument("--naming", choices=["auto", "ucf", "xd", "sh"], default="auto", help="how video names give labels/classes")
    p.add_argument("--labels", help="split list 'NAME LABEL' per line (ShanghaiTech: required; names carry no label)")
    p.add_argument("--far-threshold", type=float, default=0.5, help="score threshold of the false alarm rate on normal videos")
    p.add_argument("--json", help="write the report as JSON here")
    p.add_argument("--plots", help="folder for per-video score plots (PNG)")
    p.add_argument("--scores-out", help="save per-video snippet scores (.npz)")
    p.add_argument("--expert-masking", action="store_true", help="GS-MoE: per-class AUC with each class's expert masked")
    p.add_argument("--expert-load", action="store_true", help="MoME: top-1 snippet count per expert (load balance)")
    p.add_argument("--device", default="cpu", help="torch device for --ckpt (cpu, cuda)")
    args = p.parse_args(argv)
    gt = load_gt(args.gt)
    if args.ckpt:
        from .checkpoint import load_model
        from .data.features import read_list
        from .trainer import resolve_device

        if not args.test_list:
            raise VadInputError("--ckpt needs --test-list (and usually --root)")
        device = resolve_device(args.device)
        model, info = load_model(args.ckpt, device)
        test_videos = read_list(args.test_list, args.root, args.naming, _labels(args))
        report, results = evaluate(model, test_videos, gt, device, args.far_threshold, progress=True)
        extra = {"checkpoint": args.ckpt, "model": info.model}
        if args.expert_masking:
            if info.model != "gsmoe":
                raise VadInputError(f"--expert-masking needs a GS-MoE checkpoint; {args.ckpt} holds {info.model!r}")
            from .pipelines.gsmoe import masked_expert_report

            extra["expert_masking"] = masked_expert_report(model, test_videos, gt, device)
            for name, v in extra["expert_masking"].items():
                print(f"expert {name}: class AUC {100 * v['auc']:.2f}, masked {100 * v['auc_expert_masked']:.2f}")
        if args.expert_load:
            if info.model != "mome":
                raise VadInputError(f"--expert-load needs a MoME checkpoint; {args.ckpt} holds {info.model!r}")
            from .models.mome import expert_load, format_expert_load

            counts = expert_load(model, test_videos, device)
            extra["expert_load"] = {k: v.tolist() for k, v in counts.items()}
            print(format_expert_load(counts))
    else:
        from vadedge.validate import load_npz

        from .data.features import VideoEntry

        scores = load_npz(args.scores, "scores file")
        keys = {}
        for key in scores:  # keys in any release's naming -> annotation names
            name = video_name(key)[0]
            if name in keys:
                raise VadInputError(f"{args.scores}: keys {keys[name]!r} and {key!r} are the same video {name}")
            keys[name] = key
        try:
            videos = [VideoEntry(name, video_label(name, args.naming, _labels(args))) for name in keys]
        except ValueError as exc:
            raise VadInputError(f"{args.scores}: {exc}") from None
        results = build_results(videos, [scores[keys[v.name]] for v in videos], gt, source=f"scores file {args.scores}")
        report, extra = frame_report(results, args.far_threshold), {"scores": args.scores}
    print(format_report(report))
    if args.json:
        write_report(args.json, report, extra)
    if args.scores_out:
        write_scores(args.scores_out, results)
    if args.plots:
        plot_results(args.plots, results)


def eval_main(argv=None) -> int:
    return _run(eval_cmd, argv)


# ---------------------------------------------------------------- vad-gt
def gt_cmd(argv=None) -> None:
    from .data.features import read_list
    from .data.names import read_split_labels
    from .gt import (CONVENTIONS, build_gt, build_mask_gt, lengths_from_features, read_frame_masks, read_order,
                     read_ucf_annotations, read_xd_annotations, save_gt)

    p = make_parser("vad-gt", "Frame-level ground truth from official annotation files or frame masks.", [
        "vad-gt --dataset ucf --annotation Temporal_Anomaly_Annotation.txt --test-list feats/test.list --out gt.npz",
        "vad-gt --dataset sh --masks test_frame_mask/ --labels SH_Test.list --test-list feats/test.list --out gt.npz"])
    p.add_argument("--dataset", choices=["ucf", "xd", "sh"], required=True, help="annotation format: UCF-Crime, XD-Violence or ShanghaiTech masks")
    p.add_argument("--annotation", help="ucf/xd: UCF_Annotation.txt / Temporal_Anomaly_Annotation.txt / XD annotations.txt")
    p.add_argument("--masks", help="sh: folder of per-video frame masks NAME.npy (ShanghaiTech test_frame_mask)")
    p.add_argument("--labels", help="sh: split list 'NAME LABEL' per line (required: ShanghaiTech names carry no label)")
    p.add_argument("--order", help="file naming the videos in output order (e.g. test_order.txt or a test list)")
    p.add_argument("--test-list", help="test list: videos, order and snippet counts taken from their features (T*16 frames)")
    p.add_argument("--root", help="feature root for --test-list")
    p.add_argument("--convention", choices=sorted(CONVENTIONS), default=None,
                   help="ucf-public-i3d (UCF default): match the public I3D features' lengths from frame counts alone")
    p.add_argument("--trailing", choices=["drop", "pad"], default="drop", help="frames past the last full snippet (from frame counts)")
    p.add_argument("--end-inclusive", action="store_true", help="annotation end frames are inclusive")
    p.add_argument("--out", required=True, help=".npz (per video) or .npy (concatenated in order)")
    args = p.parse_args(argv)
    sh = args.dataset == "sh"
    if sh and not (args.masks and args.labels):
        raise VadInputError("--dataset sh needs --masks (frame-mask folder) and --labels (split list)")
    if not sh and not args.annotation:
        raise VadInputError(f"--dataset {args.dataset} needs --annotation")
    labels = read_split_labels(args.labels) if sh else None
    lengths = order = None
    if args.test_list:
        videos = read_list(args.test_list, args.root, "sh" if sh else "auto", labels)
        lengths, order = lengths_from_features(videos), [v.name for v in videos]
    if args.order:
        order = read_order(args.order)
    if sh:
        if order is None:
            raise VadInputError("--dataset sh needs --test-list (names and snippet counts) or --order")
        gt = build_mask_gt(read_frame_masks(args.masks), order, lengths=lengths, labels=labels, trailing=args.trailing)
    else:
        anns = read_ucf_annotations(args.annotation) if args.dataset == "ucf" else read_xd_annotations(args.annotation)
        convention = args.convention or ("ucf-public-i3d" if args.dataset == "ucf" and lengths is None else "plain")
        gt = build_gt(anns, lengths=lengths, order=order, trailing=args.trailing, convention=convention, end_inclusive=args.end_inclusive)
    save_gt(args.out, gt)
    frames = sum(len(v) for v in gt.values())
    print(f"{args.out}: {len(gt)} videos, {frames} frames, {sum(int(v.sum()) for v in gt.values())} anomalous")


def gt_main(argv=None) -> int:
    return _run(gt_cmd, argv)


# ---------------------------------------------------------------- vad-convert
def convert_cmd(argv=None) -> None:
    from .checkpoint import save_checkpoint
    from .convert import load_official_urdmu

    p = make_parser("vad-convert", "Import an official UR-DMU checkpoint (.pkl state dict) as a vadedge checkpoint.", [
        "vad-convert ucf_trans_2022.pkl urdmu_ucf.safetensors"])
    p.add_argument("src", help="official checkpoint, e.g. ucf_trans_2022.pkl")
    p.add_argument("dst", help="output .safetensors")
    p.add_argument("--heads", type=int, default=4, help="attention heads (not stored in the weights; official: 4)")
    args = p.parse_args(argv)
    model = load_official_urdmu(args.src, heads=args.heads)
    save_checkpoint(args.dst, model, extra={"converted_from": str(args.src)})
    print(f"{args.dst}: urdmu, {sum(t.numel() for t in model.parameters())} parameters, feature_dim {model.config.feature_dim}")


def convert_main(argv=None) -> int:
    return _run(convert_cmd, argv)


# ---------------------------------------------------------------- vad-synth
def synth_cmd(argv=None) -> None:
    from .data.synthetic import SyntheticSpec, write_dataset

    p = make_parser("vad-synth", "Write the built-in SYNTHETIC feature dataset (tests and demos only).", [
        "vad-synth data/synth"])
    p.add_argument("out", help="output folder (features, lists, GT)")
    for f in dataclasses.fields(SyntheticSpec):
        if f.name != "classes":
            p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default, help=f"SyntheticSpec.{f.name}")
    args = p.parse_args(argv)
    spec = SyntheticSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SyntheticSpec) if f.name != "classes"})
    write_dataset(args.out, spec)
    print(f"{args.out}: SYNTHETIC dataset (train.list, test.list, test_gt.npz, features/)")


def synth_main(argv=None) -> int:
    return _run(synth_cmd, argv)
