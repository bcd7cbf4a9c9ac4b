"""Training loop shared by all models: balanced batches, periodic evaluation, best/last checkpoints, resume."""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from vadedge.errors import VadInputError
from vadedge.validate import worker_error

from .checkpoint import load_model, load_train_state, save_checkpoint, save_train_state
from .config import TrainConfig, config_to_dict
from .data.datasets import BalancedBatches, TrainCrops
from .data.features import VideoEntry
from .evaluate import evaluate, write_report
from .metrics import format_report
from .models.registry import get_entry

SELECT_METRICS = ("auc", "ap", "pr_auc_trapz", "auc_abnormal", "ap_abnormal")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VadInputError(f"device {name!r} asked for, but PyTorch sees no CUDA device")
    return torch.device(name)


OPTIMIZERS = ("adam", "adamw")


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":  # UR-DMU's official setting (L2 penalty inside Adam)
        return torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":  # GS-MoE's
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise VadInputError(f"optimizer must be one of {OPTIMIZERS}, got {cfg.optimizer!r}")


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Step schedule: lr · gamma^(milestones passed). A pure function of the step, so resume needs no state."""
    return cfg.lr * cfg.lr_gamma ** sum(step >= m for m in cfg.lr_milestones)


def set_lr(optimizer: torch.optim.Optimizer, cfg: TrainConfig, step: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr_at(cfg, step)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass
class TrainResult:
    run_dir: Path
    best_step: int
    best_metrics: dict
    last_step: int


def _collate(items):
    feats = torch.from_numpy(np.stack([f for f, _ in items]))
    labels = torch.tensor([y for _, y in items], dtype=torch.float32)
    return feats, labels


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _log(run_dir: Path, record: dict) -> None:
    # One JSON line per record, flushed and fsynced: a crash loses at most the line being written.
    with open(run_dir / "train_log.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _batches(loader: DataLoader):
    """The loader's batches; a worker's bad-input error keeps its one line (not the worker's traceback)."""
    try:
        yield from loader
    except VadInputError as exc:
        raise VadInputError(worker_error(exc)) from None


def train(model_name: str, model_config, train_videos: list[VideoEntry], run_dir: str | os.PathLike, *,
          cfg: TrainConfig | None = None, test_videos: list[VideoEntry] | None = None, test_gt: dict | None = None,
          resume: bool = False, progress: bool = True, extra_meta: dict | None = None,
          init_model: torch.nn.Module | None = None, loss_fn: torch.nn.Module | None = None) -> TrainResult:
    """Train a registered model; writes ``best.safetensors``, ``last.safetensors`` (+ ``last.state.safetensors``
    for resume), ``train_log.jsonl`` and ``best_report.json`` into ``run_dir``."""
    cfg = cfg or TrainConfig()
    if cfg.select_metric not in SELECT_METRICS:
        raise VadInputError(f"select_metric must be one of {SELECT_METRICS}, got {cfg.select_metric!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed, cfg.deterministic)

    entry = get_entry(model_name)
    if resume:
        model, info = load_model(run_dir / "last.safetensors", device)
        if info.model != model_name:
            raise VadInputError(f"{run_dir / 'last.safetensors'}: holds model {info.model!r}, not {model_name!r}")
    elif init_model is not None:
        model = init_model.to(device)
    else:
        from .models.registry import create_model

        model = create_model(model_name, model_config).to(device)
    if resume and init_model is not None:  # keep the caller's freezing on the resumed weights
        frozen = {n for n, p in init_model.named_parameters() if not p.requires_grad}
        for n, p in model.named_parameters():
            p.requires_grad_(n not in frozen)
    loss_fn = loss_fn if loss_fn is not None else entry.loss_factory(model.config)
    optimizer = make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])

    start, best = 0, {"step": -1, "value": -float("inf"), "metrics": {}}
    if resume:
        start, best, rng = load_train_state(run_dir / "last.state.safetensors", optimizer)
        if start != info.step:  # a crash between the two writes, or files copied from different runs
            raise VadInputError(f"--resume: {run_dir / 'last.safetensors'} is from step {info.step} but "
                                f"{run_dir / 'last.state.safetensors'} from step {start}; restore a matching pair or start afresh")
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], device)

    crops = TrainCrops(train_videos, cfg.seq_len, model.config.feature_dim)
    sampler = BalancedBatches(crops.labels, cfg.batch_normal, cfg.batch_abnormal, cfg.seed)
    loader = DataLoader(crops, batch_sampler=list(sampler.steps(start, cfg.iterations)), collate_fn=_collate,
                        num_workers=cfg.num_workers,
                        # Its own generator: creating the iterator must not draw from the global RNG,
                        # or a resumed run's dropout noise would shift against an uninterrupted one.
                        generator=torch.Generator().manual_seed(cfg.seed))
    meta = {"train_config": config_to_dict(cfg), "extra": extra_meta or {}}

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.iterations, initial=start, desc=f"train {model_name}", unit="it", dynamic_ncols=True)
    step = start
    last_metric = None
    t0 = time.perf_counter()
    for feats, labels in _batches(loader):
        model.train()
        feats, labels = feats.to(device), labels.to(device)
        outputs = model.forward_train(feats[: cfg.batch_normal], feats[cfg.batch_normal :])
        losses = loss_fn(outputs, labels, step=step)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        set_lr(optimizer, cfg, step)
        optimizer.step()
        if hasattr(model, "after_step"):  # non-gradient state, e.g. MoME's external memories
            model.after_step(outputs)
        step += 1
        record = {"step": step, **{k: float(v.detach()) for k, v in losses.items()}}
        if test_videos is not None and (step % cfg.eval_every == 0 or step == cfg.iterations):
            report, _ = evaluate(model, test_videos, test_gt, device)
            model.train()
            last_metric = report[cfg.select_metric]
            record["eval"] = {k: v for k, v in report.items() if k != "per_class_auc"}
            if last_metric > best["value"]:
                best = {"step": step, "value": last_metric, "metrics": report}
                save_checkpoint(run_dir / "best.safetensors", model, step=step, metrics=report, **meta)
                write_report(run_dir / "best_report.json", report, {"step": step})
        if step % cfg.eval_every == 0 or step == cfg.iterations:
            save_checkpoint(run_dir / "last.safetensors", model, step=step, **meta)
            save_train_state(run_dir / "last.state.safetensors", optimizer, step=step, best=best, rng=_rng_state(device))
        _log(run_dir, {**record, "elapsed_s": round(time.perf_counter() - t0, 3)})
        if bar is not None:
            post = {"loss": f"{record['loss']:.3f}"}
            if last_metric is not None:
                post[cfg.select_metric] = f"{last_metric:.4f}"
            bar.set_postfix(post)
            bar.update(1)
    if bar is not None:
        bar.close()
    if test_videos is None:  # no evaluation: the final weights are the result
        save_checkpoint(run_dir / "best.safetensors", model, step=step, **meta)
        best = {"step": step, "value": float("nan"), "metrics": {}}
    elif progress and best["metrics"]:
        print(f"best {cfg.select_metric} at step {best['step']}:\n{format_report(best['metrics'])}")
    return TrainResult(run_dir, best["step"], best["metrics"], step)
