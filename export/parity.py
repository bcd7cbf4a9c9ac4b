"""onnxruntime vs PyTorch on the same inputs: max score error and identical expert ids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .onnx_export import InferenceGraph

PARITY_T = (1, 17, 200, 1000)
PARITY_B = (1, 4)


@dataclass
class ParityRow:
    batch: int
    snippets: int
    max_abs_err: float
    experts_equal: bool | None  # None: the model has no expert output

    def ok(self, tol: float) -> bool:
        return self.max_abs_err <= tol and self.experts_equal is not False

    def __str__(self) -> str:
        experts = "" if self.experts_equal is None else f"  expert ids {'identical' if self.experts_equal else 'DIFFER'}"
        return f"B={self.batch:<2} T={self.snippets:<5} max |onnxruntime - torch| {self.max_abs_err:.2e}{experts}"


def compare(model: torch.nn.Module, onnx_path, snippets=PARITY_T, batches=PARITY_B, seed: int = 0,
            precision: str = "fp32") -> list[ParityRow]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
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
            experts = bool((ref[1].numpy() == got[1]).all()) if len(ref) > 1 else None
            rows.append(ParityRow(b, t, err, experts))
    return rows


def check_parity(model, onnx_path, tol: float = 1e-5) -> list[str]:
    rows = compare(model, onnx_path)
    verdict = "PASS" if all(r.ok(tol) for r in rows) else "FAIL"
    return [str(r) for r in rows] + [f"parity {verdict} (tolerance {tol:g})"]
