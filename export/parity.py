"""onnxruntime vs PyTorch on the same inputs: max score error and identical expert ids, against tolerances
that depend on the precision and on T.

FP32: both sides compute in float32 but sum in different orders (MLAS vs PyTorch's kernels), so the
difference is rounding. The reductions over the snippet axis (attention over T keys in GL-MHSA and the
gate, the global temporal-distance branch) have length T, and the rounding error of an n-term sum grows as
sqrt(n)·u with high probability (Higham & Mary, "A new approach to probabilistic rounding error analysis",
SIAM J. Sci. Comput. 2019), so the tolerance is 1e-5 up to T = 200 (where every export met it) and grows
as sqrt(T / 200) beyond: 2.2e-5 at T = 1000.

FP16: the graph computes in half precision (FP32 islands for similarities, top-k, means and routing) and is
compared with the FP32 PyTorch model, so the error is FP16 rounding (u = 4.9e-4) through the whole network,
with the same sqrt(T / 200) growth: scores within 1e-2 up to T = 200, and at least 97 % of expert ids equal
(near-ties flip). A model whose FP16 drift exceeds that at long windows fails, as it should: PyTorch's own
FP16 forward of the demo UR-DMU is 7e-2 off its FP32 forward at T = 1000 (README, "FP16").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .onnx_export import InferenceGraph

PARITY_T = (1, 17, 200, 1000)
PARITY_B = (1, 4)
FP32_TOL, TOL_BASE_T = 1e-5, 200
FP16_TOL, FP16_MIN_EXPERT_AGREEMENT = 1e-2, 0.97


def tolerance(precision: str, snippets: int) -> float:
    """Largest allowed max |onnxruntime - torch| score difference for a window of ``snippets`` (module docstring)."""
    base = FP16_TOL if precision == "fp16" else FP32_TOL
    return base * math.sqrt(max(snippets, TOL_BASE_T) / TOL_BASE_T)


@dataclass
class ParityRow:
    batch: int
    snippets: int
    max_abs_err: float
    expert_agreement: float | None  # fraction of equal expert ids; None: the model has no expert output
    precision: str = "fp32"

    @property
    def tol(self) -> float:
        return tolerance(self.precision, self.snippets)

    @property
    def experts_equal(self) -> bool | None:
        return None if self.expert_agreement is None else self.expert_agreement == 1.0

    def ok(self) -> bool:
        need = 1.0 if self.precision == "fp32" else FP16_MIN_EXPERT_AGREEMENT
        return self.max_abs_err <= self.tol and (self.expert_agreement is None or self.expert_agreement >= need)

    def __str__(self) -> str:
        experts = "" if self.expert_agreement is None else f"  expert ids equal {100 * self.expert_agreement:.1f} %"
        return (f"B={self.batch:<2} T={self.snippets:<5} max |onnxruntime - torch| {self.max_abs_err:.2e} "
                f"(tol {self.tol:.1e}){experts}  {'ok' if self.ok() else 'FAIL'}")


def compare(model: torch.nn.Module, onnx_path, snippets=PARITY_T, batches=PARITY_B, seed: int = 0,
            precision: str = "fp32", session=None) -> list[ParityRow]:
    """Run ``onnx_path`` (or a ready ``session`` with the same ``run`` signature) against the FP32 PyTorch model."""
    if session is None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # FP16 graphs log "can't constant fold" warnings that mean nothing to a user
        session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    graph = InferenceGraph(model.eval(), "fp32")
    rng = np.random.default_rng(seed)
    rows = []
    for t in snippets:
        for b in batches:
            x = rng.standard_normal((b, t, model.config.feature_dim), dtype=np.float32)
            with torch.no_grad():
                ref = graph(torch.from_numpy(x))
            ref = ref if isinstance(ref, tuple) else (ref,)
            got = session.run(None, {"features": x})
            err = float(np.abs(ref[0].numpy() - got[0]).max())
            agreement = float((ref[1].numpy() == got[1]).mean()) if len(ref) > 1 else None
            rows.append(ParityRow(b, t, err, agreement, precision))
    return rows


def check_parity(model, onnx_path, precision: str = "fp32", max_t: int | None = None) -> tuple[list[str], bool]:
    """The parity table lines and the verdict (every row within its tolerance); ``max_t``: the longest window
    to check (the deployment's), default the largest of PARITY_T."""
    snippets = PARITY_T if max_t is None else tuple(sorted({t for t in PARITY_T if t < max_t} | {max_t}))
    rows = compare(model, onnx_path, snippets=snippets, precision=precision)
    ok = all(r.ok() for r in rows)
    return [str(r) for r in rows] + [f"parity {'PASS' if ok else 'FAIL'} ({precision})"], ok
