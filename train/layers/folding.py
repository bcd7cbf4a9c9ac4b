"""Inference-time weight folding: where exact algebra lets a product of weight matrices stand in for a
chain of linear layers, a no-grad test pass applies the product once instead of the chain.

The folded weights are built in float64 from the live parameters and rebuilt whenever one of them
changes (training step, ``load_state_dict``, ``.to()``), so they never go stale. Training (grad
enabled) and export keep the layers as written: gradients and the exported graph (custom ops,
dense local matrix) stay those of the model's definition.
"""

from __future__ import annotations

from typing import Callable

import torch


def exporting() -> bool:
    """True while torch.export / ONNX tracing (the graph must keep the model's own layers)."""
    return torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()


def folding() -> bool:
    """Whether this call may use folded weights: no autograd (test path) and not exporting."""
    return not torch.is_grad_enabled() and not exporting()


class FoldCache:
    """Holds one module's folded weights, keyed by the identity and version of the parameters they
    came from (storage, device, dtype and the in-place version counter)."""

    def __init__(self):
        self._key: tuple | None = None
        self._value: tuple[torch.Tensor, ...] = ()

    def get(self, params: tuple[torch.Tensor, ...],
            build: Callable[..., tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
        """``build(*params as float64)`` -> tensors cast back to the parameters' dtype, cached."""
        key = tuple((p.data_ptr(), p.device, p.dtype, p._version) for p in params)
        if key != self._key:
            with torch.no_grad():
                dtype = params[0].dtype
                self._value = tuple(w.to(dtype).contiguous() for w in build(*(p.detach().double() for p in params)))
            self._key = key
        return self._value
