// C entry points over the raw CUDA kernels, for the Python GPU harness (tests/test_plugin_kernels_gpu.py):
// it passes device pointers of torch CUDA tensors through ctypes. No TensorRT involved.
#include "../memoryReadPlugin/memoryReadKernel.h"
#include "../top1RoutePlugin/top1RouteKernel.h"

#include <cuda_runtime_api.h>

extern "C" int vad_memory_read(float const* query, float const* memory, float* score, float* augment, int64_t B,
    int64_t N, int32_t D, int64_t Bm, int32_t M, int32_t k)
{
    cudaError_t status = vad::kernels::launchMemoryRead(query, memory, score, augment, B, N, D, Bm, M, k, nullptr);
    return static_cast<int>(status != cudaSuccess ? status : cudaDeviceSynchronize());
}

extern "C" int vad_top1_route(float const* logits, int32_t* index, float* weight, int64_t rows, int32_t experts)
{
    cudaError_t status = vad::kernels::launchTop1Route(logits, index, weight, rows, experts, nullptr);
    return static_cast<int>(status != cudaSuccess ? status : cudaDeviceSynchronize());
}

// Launch only (no synchronisation), on the legacy default stream that torch also uses by default, so a benchmark
// can bracket many launches with CUDA events (benchmarks/gpu_check.py). Returns the launch status.
extern "C" int vad_memory_read_launch(float const* query, float const* memory, float* score, float* augment, int64_t B,
    int64_t N, int32_t D, int64_t Bm, int32_t M, int32_t k)
{
    return static_cast<int>(vad::kernels::launchMemoryRead(query, memory, score, augment, B, N, D, Bm, M, k, nullptr));
}

extern "C" int vad_top1_route_launch(float const* logits, int32_t* index, float* weight, int64_t rows, int32_t experts)
{
    return static_cast<int>(vad::kernels::launchTop1Route(logits, index, weight, rows, experts, nullptr));
}
