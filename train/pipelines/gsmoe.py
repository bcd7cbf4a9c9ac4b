"""GS-MoE training in four stages, each written to its own folder and skipped when already done:

1. ``stage1_encoder``  UR-DMU task encoder with its MIL loss (the generic trainer);
2. ``stage2_tgs``      the encoder fine-tuned with the TGS loss replacing L_cls;
3. ``stage3_experts``  one expert per class (or K-means cluster), each on its class + normal videos,
                       all experts trained together in one batched pass on the frozen task features;
4. ``stage4_gate``     the gate on all videos with encoder and experts frozen -> ``gsmoe.safetensors``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vadedge.atomic import atomic_write_text
from vadedge.errors import VadInputError

from ..checkpoint import load_model, save_checkpoint
from ..config import TrainConfig
from ..data.datasets import BalancedBatches, TrainCrops
from ..data.features import VideoEntry, load_video
from ..evaluate import evaluate
from ..losses import GateLoss, URDMUTGSLoss, pseudo_source, tgs_options
from ..metrics import format_report
from ..models.gsmoe import GSMoE, GSMoEConfig
from ..models.urdmu import URDMU
from ..tgs import tgs_loss
from ..trainer import make_optimizer, resolve_device, seed_everything, train


@dataclass
class GSMoEStages:
    """Iterations and settings per stage (paper: AdamW; batch 64 normal + 64 abnormal in every stage;
    the first epoch of each TGS stage on L_topk-norm only)."""

    encoder_iterations: int = 3000
    tgs_iterations: int = 1000
    expert_iterations: int = 1000
    gate_iterations: int = 1000
    # Normal and class crops per expert per step: the paper's 64 + 64. All E experts train in one batched
    # pass, so a step holds E x 128 crops; lower it (--expert-batch) when memory is short.
    expert_batch: int = 64
    lr_tgs: float = 1e-4
    lr_experts: float = 1e-4
    lr_gate: float = 1e-4
    clusters: int = 0  # > 0: K-means cluster experts instead of class experts
    tgs_warmup: int = -1  # stage-2 steps on L_topk-norm only; -1 = one epoch of anomalous crops (the paper)
    gate_warmup: int = -1  # gate steps on L_topk-norm only; -1 = one epoch of anomalous crops (the paper)

    def __post_init__(self):
        # -1 is the only sentinel: -5 used to mean "one epoch" silently, negative counts trained nothing
        lows = {"tgs_warmup": -1, "gate_warmup": -1, "expert_batch": 1}
        for name in ("encoder_iterations", "tgs_iterations", "expert_iterations", "gate_iterations", "expert_batch", "clusters",
                     "tgs_warmup", "gate_warmup"):
            if getattr(self, name) < lows.get(name, 0):
                raise VadInputError(f"GS-MoE {name} {getattr(self, name)}: expected an integer >= {lows.get(name, 0)}"
                                    + (" (-1: one epoch of anomalous crops)" if name.endswith("warmup") else ""))


def kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """K-means (scikit-learn, k-means++ seeding, 10 restarts) of ``x`` [N, D]; returns a cluster id per row [N].
    Raises VadInputError (one line) unless 1 <= k <= N."""
    from sklearn.cluster import KMeans

    if k < 1 or k > len(x):
        raise VadInputError(f"clusters={k}: expected 1 <= k <= number of anomalous training videos ({len(x)})")
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(np.asarray(x, np.float64)).astype(np.int64)


@torch.no_grad()
def video_task_embeddings(encoder: URDMU, videos: list[VideoEntry], device) -> np.ndarray:
    """Mean task-aware feature per video (over crops and snippets), for K-means cluster experts."""
    encoder.eval()
    out = []
    for v in videos:
        feats = torch.from_numpy(load_video(v, encoder.config.feature_dim)).to(device)
        out.append(encoder.task_features(feats).mean((0, 1)).cpu().numpy())
    return np.stack(out)


def expert_groups(train_videos, encoder: URDMU, clusters: int, seed: int, device) -> tuple[list[str], dict[str, int]]:
    """Expert names and the expert of each anomalous training video (by class, or by K-means cluster)."""
    abnormal = [v for v in train_videos if v.label.label == 1]
    if clusters > 0:
        assign = kmeans(video_task_embeddings(encoder, abnormal, device), clusters, seed)
        return [f"cluster{i}" for i in range(clusters)], {v.name: int(a) for v, a in zip(abnormal, assign)}
    names = sorted({v.label.cls for v in abnormal})
    return names, {v.name: names.index(v.label.cls) for v in abnormal}


def train_experts(model: GSMoE, train_videos, groups: dict[str, int], stages: GSMoEStages, cfg: TrainConfig,
                  device, out_dir: Path, progress: bool) -> None:
    """Stage 3: each expert on its own normal + group batch; all experts in one batched forward."""
    crops = TrainCrops(train_videos, cfg.seq_len, model.config.encoder.feature_dim)
    n_exp = len(model.config.experts)
    group = np.array([groups.get(train_videos[r.video].name, -1) for r in crops.refs])
    samplers = []
    for e in range(n_exp):
        keep = (crops.labels == 0) | (group == e)
        idx = np.flatnonzero(keep)
        sampler = BalancedBatches(crops.labels[idx], stages.expert_batch, stages.expert_batch, cfg.seed + e)
        samplers.append((idx, sampler))
    optimizer = make_optimizer(replace(cfg, lr=stages.lr_experts, optimizer="adamw"), model.experts.parameters())
    loss_cfg, options = model.config, tgs_options(model.config)
    warmup = max(1, min(len(np.flatnonzero(group == e)) for e in range(n_exp)) // stages.expert_batch)
    labels = torch.cat([torch.zeros(stages.expert_batch), torch.ones(stages.expert_batch)]).to(device)
    bar = _bar(progress, stages.expert_iterations, "stage 3 experts")
    log = open(out_dir / "train_log.jsonl", "a")
    for step in range(stages.expert_iterations):
        batch = np.stack([idx[sampler.batch(step)] for idx, sampler in samplers])  # [E, 2B]
        x = torch.from_numpy(np.stack([crops[i][0] for i in batch.ravel()])).to(device)
        with torch.no_grad():
            model.encoder.eval()
            task = model.encoder.task_features(x).reshape(n_exp, len(labels), cfg.seq_len, -1)
            source = pseudo_source(loss_cfg, model.encoder.head(task))
        model.experts.train()
        scores = model.experts(task)  # [E, 2B, T]
        per_expert = [tgs_loss(scores[e], labels, warmup=step < warmup, source=None if source is None else source[e],
                               **options)["loss"] for e in range(n_exp)]
        loss = torch.stack(per_expert).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        log.write(json.dumps({"step": step + 1, "loss": loss.item(), "per_expert": [round(v.item(), 5) for v in per_expert]}) + "\n")
        if bar:
            bar.set_postfix(loss=f"{loss.item() / n_exp:.3f}")
            bar.update(1)
    log.close()
    if bar:
        bar.close()


def _bar(progress: bool, total: int, desc: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="it", dynamic_ncols=True)


def masked_expert_report(model: GSMoE, videos, gt, device="cpu") -> dict[str, dict[str, float]]:
    """Per-class AUC with all experts, and with that class's expert masked (the paper's Table 4)."""
    from ..evaluate import build_results
    from ..metrics import frame_report

    def scores_with(mask):
        out = []
        with torch.no_grad():
            for v in videos:
                x = torch.from_numpy(load_video(v, model.config.encoder.feature_dim)).to(device)
                out.append(model.forward_detailed(x, mask)["scores"].mean(0).cpu().numpy())
        return frame_report(build_results(videos, out, gt))["per_class_auc"]

    model.eval()
    full = scores_with(None)
    table = {}
    for e, name in enumerate(model.config.experts):
        if name not in full:
            continue
        mask = torch.ones(len(model.config.experts), device=device)
        mask[e] = 0
        table[name] = {"auc": full[name], "auc_expert_masked": scores_with(mask)[name]}
    return table


def warmup_steps(train_videos: list[VideoEntry], cfg: TrainConfig, feature_dim: int) -> int:
    """Steps in one epoch of anomalous training samples: every crop is a sample (a [T, ncrop, D] file
    holds ncrop of them), taken ``cfg.batch_abnormal`` at a time."""
    crops = TrainCrops(train_videos, cfg.seq_len, feature_dim)
    return max(1, int((crops.labels == 1).sum()) // cfg.batch_abnormal)


def run_gsmoe(train_videos: list[VideoEntry], run_dir, *, config: GSMoEConfig, stages: GSMoEStages, cfg: TrainConfig,
              test_videos=None, test_gt=None, progress: bool = True, extra_meta: dict | None = None) -> dict:
    """Run (or finish) the four stages; returns the per-stage evaluation reports side by side. ``extra_meta``
    (e.g. ``{"synthetic": True}``) goes into every stage's checkpoint."""
    extra_meta = dict(extra_meta or {})
    run_dir = Path(run_dir)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed, cfg.deterministic)
    epoch_steps = warmup_steps(train_videos, cfg, config.encoder.feature_dim)
    reports: dict[str, dict] = {}

    def stage(name: str, model_name: str, iterations: int, lr: float, optimizer: str, **kw) -> nn.Module:
        folder = run_dir / name
        done = folder / "best.safetensors"
        if not (folder / "DONE").exists():
            resume = (folder / "last.state.safetensors").exists()
            stage_cfg = replace(cfg, iterations=iterations, lr=lr, optimizer=optimizer)
            train(model_name, kw.pop("model_config", None), train_videos, folder, cfg=stage_cfg, test_videos=test_videos,
                  test_gt=test_gt, resume=resume, progress=progress, extra_meta=extra_meta, **kw)
            (folder / "DONE").write_text("ok\n")
        return load_model(done, device)[0]

    encoder = stage("stage1_encoder", "urdmu", stages.encoder_iterations, cfg.lr, cfg.optimizer, model_config=config.encoder)
    reports["urdmu"] = _report(encoder, test_videos, test_gt, device)
    encoder.requires_grad_(True)
    encoder = stage("stage2_tgs", "urdmu", stages.tgs_iterations, stages.lr_tgs, "adamw", init_model=encoder,
                    loss_fn=URDMUTGSLoss(config, warmup_steps=epoch_steps if stages.tgs_warmup < 0 else stages.tgs_warmup))
    reports["urdmu_tgs"] = _report(encoder, test_videos, test_gt, device)

    folder3 = run_dir / "stage3_experts"
    folder3.mkdir(parents=True, exist_ok=True)
    if (folder3 / "DONE").exists():
        model, _ = load_model(folder3 / "experts.safetensors", device)
    else:
        names, groups = expert_groups(train_videos, encoder, stages.clusters, cfg.seed, device)
        config = replace(config, encoder=encoder.config, experts=names, expert_mode="cluster" if stages.clusters else "class")
        model = GSMoE(config).to(device)
        model.encoder.load_state_dict(encoder.state_dict())
        model.encoder.requires_grad_(False)
        atomic_write_text(folder3 / "groups.json", json.dumps({"experts": names, "video_expert": groups}, indent=1))
        train_experts(model, train_videos, groups, stages, cfg, device, folder3, progress)
        save_checkpoint(folder3 / "experts.safetensors", model, extra={**extra_meta, "stage": 3})
        (folder3 / "DONE").write_text("ok\n")
    model.encoder.requires_grad_(False)
    model.experts.requires_grad_(False)
    model.gate.requires_grad_(True)
    final = stage("stage4_gate", "gsmoe", stages.gate_iterations, stages.lr_gate, "adamw", init_model=model,
                  loss_fn=GateLoss(model.config, warmup_steps=epoch_steps if stages.gate_warmup < 0 else stages.gate_warmup))
    save_checkpoint(run_dir / "gsmoe.safetensors", final, extra={**extra_meta, "stages": asdict(stages)})
    reports["gsmoe"] = _report(final, test_videos, test_gt, device)
    if test_videos is not None and final.config.expert_mode == "class":
        reports["expert_masking"] = masked_expert_report(final, test_videos, test_gt, device)
    atomic_write_text(run_dir / "comparison.json", json.dumps(reports, indent=2))
    return reports


def _report(model, videos, gt, device) -> dict:
    if videos is None:
        return {}
    return evaluate(model, videos, gt, device)[0]


def format_comparison(reports: dict) -> str:
    keys = [k for k in ("urdmu", "urdmu_tgs", "gsmoe") if reports.get(k)]
    rows = ["model        AUC     AUC_A   AP      AP_A    FAR"]
    for k in keys:
        r = reports[k]
        rows.append(f"{k:<12} " + " ".join(f"{100 * r[m]:6.2f} " for m in ("auc", "auc_abnormal", "ap", "ap_abnormal", "far")))
    for name, v in reports.get("expert_masking", {}).items():
        rows.append(f"  {name}: class AUC {100 * v['auc']:.2f}, with its expert masked {100 * v['auc_expert_masked']:.2f}")
    return "\n".join(rows)


__all__ = ["GSMoEStages", "format_comparison", "kmeans", "masked_expert_report", "run_gsmoe", "warmup_steps", "format_report"]
