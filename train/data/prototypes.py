"""Anomaly prototype text embeddings for MoME's APR, from the files public code ships.

Accepted files (CLIP ViT-B/16 text embeddings, one row per prototype, d = 512):
- ``[C, d]`` ``.npy`` with a names file (one class per line, e.g. ``class_prompts.txt`` next to
  ``class_prompts_clip_vitb16.npy``): rows whose name is a normal class are dropped;
- PEL4VAD-style ``*-prompt.npy`` ``[C, d]`` (class order of its label list, normal first): row 0 dropped;
- ``[C, K, d]`` ``.npy``: K prototypes per class (the paper's LLM-expanded prompts), flattened;
- a plain ``.npy`` needs ``names`` or ``drop_rows`` (``[]``: no normal row): without either, which rows are
  normal is unknown, and a kept normal row would silently become an anomaly prototype (an error instead);
- ``.npz`` with one array ``[K_c, d]`` (or ``[d]``) per class name: any number of prototypes per class.
``drop_rows`` (rows, or classes of a 3-D array) replaces the automatic normal-row rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vadedge.errors import VadInputError

NORMAL_NAMES = frozenset({"normal", "normal event", "normal video", "normal_videos", "a"})


@dataclass
class Prototypes:
    embeddings: np.ndarray  # [n, d] float32
    classes: list[str]  # class of each row
    source: str  # file(s) they came from


def _is_normal(name: str) -> bool:
    return name.strip().lower() in NORMAL_NAMES


def _read_names(path: Path, rows: int) -> list[str]:
    if not path.is_file():
        raise VadInputError(f"prototype names file {path} not found")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) != rows:
        raise VadInputError(f"prototype names file {path}: {len(names)} names for {rows} embedding rows")
    return names


def load_prototypes(path: str | os.PathLike, names: str | os.PathLike | None = None,
                    drop_rows: list[int] | tuple[int, ...] | None = None) -> Prototypes:
    """Read prototype embeddings and the class of each row; see the module docstring for formats."""
    path = Path(path)
    if not path.is_file():
        raise VadInputError(f"prototype file {path} not found")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise VadInputError(f"{path}: cannot read prototype embeddings ({exc})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            groups = [(key, np.atleast_2d(data[key])) for key in data.files]
        normal = [i for i, (key, _) in enumerate(groups) if _is_normal(key)]
    else:
        if data.ndim not in (2, 3):
            raise VadInputError(f"{path}: expected [classes, d], [classes, K, d] or an .npz per class, got shape {list(data.shape)}")
        classes = _read_names(Path(names), len(data)) if names else [f"class{i}" for i in range(len(data))]
        groups = [(c, np.atleast_2d(row)) for c, row in zip(classes, data)]
        if names:
            normal = [i for i, c in enumerate(classes) if _is_normal(c)]
        elif path.name.endswith("-prompt.npy"):
            normal = [0]
        elif drop_rows is None:  # a normal row kept as an anomaly prototype would go unnoticed (14 rows train as 14)
            raise VadInputError(f"{path}: rows have no class names, so normal rows cannot be dropped; pass --prototype-names "
                                "(one class per row, e.g. class_prompts.txt) or --prototype-drop-rows (rows that are normal)")
        else:
            normal = []
    drop = set(normal if drop_rows is None else drop_rows)
    if any(not 0 <= i < len(groups) for i in drop):
        raise VadInputError(f"{path}: drop rows {sorted(drop)} outside 0..{len(groups) - 1}")
    kept = [(c, g) for i, (c, g) in enumerate(groups) if i not in drop]
    if not kept:
        raise VadInputError(f"{path}: no anomaly prototypes left after dropping rows {sorted(drop)}")
    dims = {g.shape[-1] for _, g in kept}
    if len(dims) != 1 or any(g.ndim != 2 for _, g in kept):
        raise VadInputError(f"{path}: prototypes differ in shape ({sorted(dims)})")
    emb = np.concatenate([g for _, g in kept]).astype(np.float32)
    if not np.isfinite(emb).all() or (np.linalg.norm(emb, axis=1) == 0).any():
        raise VadInputError(f"{path}: prototype embeddings contain NaN, inf or all-zero rows")
    return Prototypes(emb, [c for c, g in kept for _ in range(len(g))], str(path))
