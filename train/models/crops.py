"""Test-protocol crop averaging with a bound on how many snippets are scored at once."""

from __future__ import annotations

from typing import Callable

import torch

# Crops x snippets in one forward. Activations are linear in it (UR-DMU ~25 KB per snippet in float32):
# the crops of short videos share a forward (bigger GEMMs), those of long videos go one at a time, as
# the official loop does, so 10 crops never need more memory than one.
MAX_SNIPPETS = 4096


def mean_over_crops(score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                    max_snippets: int = MAX_SNIPPETS) -> torch.Tensor:
    """``score`` [N, T, F] -> [N, T] applied to [B, T, F] as is, or to [B, ncrop, T, F] in groups of
    crops of at most ``max_snippets`` snippets (at least one crop each), averaged over crops -> [B, T].

    Same numbers as one batch (every model scores each sequence independently).
    """
    if x.dim() != 4:
        return score(x)
    b, n, t, _ = x.shape
    flat = x.flatten(0, 1)
    step = max(1, max_snippets // max(t, 1))
    parts = [score(flat[i:i + step]) for i in range(0, b * n, step)]
    return (parts[0] if len(parts) == 1 else torch.cat(parts)).reshape(b, n, -1).mean(1)
