"""The plugins' CUDA kernels on a GPU, without TensorRT: called through the harness library with torch CUDA
tensors and compared with the PyTorch reference. Skips on machines without a CUDA GPU.

On the lent GPU machine:  python -m pytest tests/test_plugin_kernels_gpu.py -v
"""

import ctypes

import pytest
import torch

from vadedge.train.layers.memory import memory_read

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the kernel harness needs one")

MEMORY_SHAPES = [  # B, N, D, Bm, M, k
    (1, 1, 512, 1, 60, 4),  # T = 1
    (4, 1000, 512, 1, 60, 4),  # T not a multiple of the 128-thread block
    (2, 17, 100, 2, 60, 4),  # D not a multiple of a warp, per-batch memory
    (24, 333, 128, 24, 60, 4),  # MoME internal memories: one per expert
    (1, 200, 1024, 1, 4096, 1),  # many slots, k = 1
]
ROUTE_SHAPES = [(1, 12), (1000, 24), (4097, 1), (70000, 13)]


@pytest.fixture(scope="module")
def harness(plugin_build):
    lib = ctypes.CDLL(str(plugin_build / "libvad_kernels_harness.so"))
    lib.vad_memory_read.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64, ctypes.c_int64, ctypes.c_int32, ctypes.c_int64,
                                                            ctypes.c_int32, ctypes.c_int32]
    lib.vad_top1_route.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64, ctypes.c_int32]
    return lib


@pytest.mark.parametrize("b,n,d,bm,m,k", MEMORY_SHAPES)
def test_memory_read_kernel(harness, b, n, d, bm, m, k):
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(b, n, d, device="cuda", generator=g)
    mem = torch.randn(bm, m, d, device="cuda", generator=g) / d ** 0.25
    score = torch.empty(b, n, device="cuda")
    aug = torch.empty(b, n, d, device="cuda")
    rc = harness.vad_memory_read(q.data_ptr(), mem.data_ptr(), score.data_ptr(), aug.data_ptr(), b, n, d, bm, m, k)
    assert rc == 0
    ref_score, ref_aug, _ = memory_read(q.double(), mem.double(), k)
    torch.testing.assert_close(score.double(), ref_score, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(aug.double(), ref_aug, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("rows,experts", ROUTE_SHAPES)
def test_top1_route_kernel(harness, rows, experts):
    logits = torch.randn(rows, experts, device="cuda", generator=torch.Generator(device="cuda").manual_seed(1))
    index = torch.empty(rows, dtype=torch.int32, device="cuda")
    weight = torch.empty(rows, device="cuda")
    assert harness.vad_top1_route(logits.data_ptr(), index.data_ptr(), weight.data_ptr(), rows, experts) == 0
    assert torch.equal(index.long(), logits.argmax(-1))
    torch.testing.assert_close(weight, torch.softmax(logits, -1).max(-1).values, atol=1e-6, rtol=1e-5)


def test_invalid_shapes_are_refused(harness):
    q = torch.zeros(1, 2, 8, device="cuda")
    out = torch.zeros(1, 2, 8, device="cuda")
    assert harness.vad_memory_read(q.data_ptr(), q.data_ptr(), out.data_ptr(), out.data_ptr(), 1, 2, 8, 1, 2, 3) != 0  # k > M
