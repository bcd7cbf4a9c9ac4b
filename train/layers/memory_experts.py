"""A bank of memory experts (MoME): each reads a private internal memory and the bank's external memory.

Every expert: query ``q = x + MLP(LN(x))``, then two fused memory reads with sigmoid similarity,
``H = [S_in M_in ; S_ext M_ext]`` (2d) and a match score (mean of the two top-K slot means).
M_in is learned by backprop; M_ext is shared by the bank and moved by an NTM-style erase/add rule
after each optimiser step, never by gradients.

Weights are stacked on an expert axis. ``sparse`` runs each expert on only the snippets routed to it
(training, Eq. 6); ``dense`` runs every expert on every snippet and gathers the routed one (the
export form). The two give the same numbers (tested to 1e-6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .memory import memory_read, memory_topk


@dataclass
class ExpertReadout:
    h: torch.Tensor  # [..., N, 2d] memory augmentation of the routed expert
    score: torch.Tensor  # [..., N] memory match score in (0, 1)
    query: torch.Tensor  # [..., N, d] the expert's query (drives the external-memory update)
    ext_sim: torch.Tensor | None  # [..., N, M_ext] similarities to the external memory (None in exported graphs)


class MemoryExpertBank(nn.Module):
    def __init__(self, experts: int, dim: int, hidden: int, internal_slots: int, external_slots: int):
        super().__init__()
        self.experts, self.dim = experts, dim
        self.k_in, self.k_ext = memory_topk(internal_slots), memory_topk(external_slots)
        bound_in, bound_hidden, bound_mem = 1 / math.sqrt(dim), 1 / math.sqrt(hidden), 1 / math.sqrt(dim)
        self.ln_weight = nn.Parameter(torch.ones(experts, dim))
        self.ln_bias = nn.Parameter(torch.zeros(experts, dim))
        self.w1 = nn.Parameter(torch.empty(experts, dim, hidden).uniform_(-bound_in, bound_in))
        self.b1 = nn.Parameter(torch.zeros(experts, hidden))
        self.w2 = nn.Parameter(torch.empty(experts, hidden, dim).uniform_(-bound_hidden, bound_hidden))
        self.b2 = nn.Parameter(torch.zeros(experts, dim))
        self.internal = nn.Parameter(torch.empty(experts, internal_slots, dim).uniform_(-bound_mem, bound_mem))
        self.register_buffer("external", torch.empty(external_slots, dim).uniform_(-bound_mem, bound_mem))

    def read(self, x: torch.Tensor, experts: torch.Tensor | slice) -> ExpertReadout:
        """x [E', n, d] through experts ``experts`` (E' of them) -> readouts [E', n, ...]."""
        ln = F.layer_norm(x, (self.dim,)) * self.ln_weight[experts, None] + self.ln_bias[experts, None]
        hidden = F.gelu(torch.matmul(ln, self.w1[experts]) + self.b1[experts, None])
        q = x + torch.matmul(hidden, self.w2[experts]) + self.b2[experts, None]
        s_in, aug_in, _ = memory_read(q, self.internal[experts], self.k_in)
        s_ext, aug_ext, sim_ext = memory_read(q, self.external, self.k_ext)
        return ExpertReadout(torch.cat([aug_in, aug_ext], -1), 0.5 * (s_in + s_ext), q, sim_ext)

    def dense(self, x: torch.Tensor, index: torch.Tensor) -> ExpertReadout:
        """All experts on all N snippets [N, d], then the routed expert's row gathered (export form)."""
        out = self.read(x.unsqueeze(0).expand(self.experts, -1, -1), slice(None))
        pick = index.view(1, -1, 1)

        def gather(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:  # the export op returns no similarities: inference does not need them
                return None
            if t.dim() == 2:
                return torch.gather(t, 0, index.view(1, -1)).squeeze(0)
            return torch.gather(t, 0, pick.expand(1, -1, t.shape[-1])).squeeze(0)

        return ExpertReadout(gather(out.h), gather(out.score), gather(out.query), gather(out.ext_sim))

    def sparse(self, x: torch.Tensor, index: torch.Tensor) -> ExpertReadout:
        """Each expert on only its own snippets (X_e = {X_t | P_te = 1}), results scattered back."""
        n = x.shape[0]
        parts: list[tuple[torch.Tensor, ExpertReadout]] = []
        for e in range(self.experts):
            rows = torch.nonzero(index == e, as_tuple=True)[0]
            if rows.numel():
                parts.append((rows, self.read(x[rows].unsqueeze(0), slice(e, e + 1))))
        rows = torch.cat([r for r, _ in parts])

        def scatter(field: str) -> torch.Tensor:
            values = torch.cat([getattr(o, field).squeeze(0) for _, o in parts])
            out = values.new_zeros((n,) + values.shape[1:])
            return out.index_copy(0, rows, values)

        return ExpertReadout(scatter("h"), scatter("score"), scatter("query"), scatter("ext_sim"))

    @torch.no_grad()
    def update_external(self, query: torch.Tensor, ext_sim: torch.Tensor, rate: float) -> None:
        """``M_ext ← M_ext ⊙ (1 − α ē) + α ā`` over the snippets [N] this bank should remember.

        Each snippet addresses the slots with its normalised similarities w_ti; slot i's erase
        ē_i = mean_t w_ti (its usage) and add ā_i = mean_t w_ti q_t, so each slot drifts toward the
        mean of the queries it matched at a rate α times its usage.
        """
        if query.shape[0] == 0:
            return
        w = ext_sim / ext_sim.sum(-1, keepdim=True)
        erase = w.mean(0)
        add = torch.matmul(w.t(), query) / query.shape[0]
        # Rebind instead of writing in place: the old tensor may still be saved in an autograd graph.
        self.external = self.external * (1 - rate * erase[:, None]) + rate * add

    def diversity(self) -> torch.Tensor:
        """Mean pairwise L1 distance between the experts' internal memories (slots L2-normalised)."""
        m = F.normalize(self.internal, dim=-1).flatten(1)
        if m.shape[0] < 2:
            return m.new_zeros(())
        dist = torch.cdist(m, m, p=1) / m.shape[1]
        return dist.sum() / (m.shape[0] * (m.shape[0] - 1))
