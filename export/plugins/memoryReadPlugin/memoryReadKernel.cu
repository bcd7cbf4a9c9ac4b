// One block per query row: the row and its slot similarities live in shared memory, so the [N, M]
// similarity matrix never reaches global memory (the point of fusing the read).
#include "memoryReadKernel.h"

#include <cmath>

namespace vad
{
namespace kernels
{

constexpr int32_t kThreads = 128;

__global__ void memoryReadKernel(float const* __restrict__ query, float const* __restrict__ memory,
    float* __restrict__ score, float* __restrict__ augment, int64_t N, int32_t D, int64_t Bm, int32_t M, int32_t k,
    float scale)
{
    extern __shared__ float shared[];
    float* q = shared;       // [D]
    float* sim = shared + D; // [M]
    __shared__ float topSum;

    int64_t const row = blockIdx.x;
    int64_t const b = row / N;
    float const* qRow = query + row * D;
    float const* mem = memory + (Bm == 1 ? 0 : b) * static_cast<int64_t>(M) * D;

    for (int32_t d = threadIdx.x; d < D; d += blockDim.x)
    {
        q[d] = qRow[d];
    }
    if (threadIdx.x == 0)
    {
        topSum = 0.F;
    }
    __syncthreads();

    // A warp per slot: lanes stride over D (coalesced), then a shuffle reduction.
    int32_t const lane = threadIdx.x & 31;
    int32_t const warp = threadIdx.x >> 5;
    int32_t const warps = blockDim.x >> 5;
    for (int32_t s = warp; s < M; s += warps)
    {
        float const* slot = mem + static_cast<int64_t>(s) * D;
        float acc = 0.F;
        for (int32_t d = lane; d < D; d += 32)
        {
            acc += q[d] * slot[d];
        }
        for (int32_t offset = 16; offset > 0; offset >>= 1)
        {
            acc += __shfl_xor_sync(0xffffffffU, acc, offset);
        }
        if (lane == 0)
        {
            sim[s] = 1.F / (1.F + expf(-acc * scale));
        }
    }
    __syncthreads();

    // Top-k by rank: slot i is kept iff fewer than k slots beat it (ties: the lower index wins).
    for (int32_t i = threadIdx.x; i < M; i += blockDim.x)
    {
        float const v = sim[i];
        int32_t rank = 0;
        for (int32_t j = 0; j < M; ++j)
        {
            float const w = sim[j];
            rank += (w > v) || (w == v && j < i);
        }
        if (rank < k)
        {
            atomicAdd(&topSum, v);
        }
    }

    for (int32_t d = threadIdx.x; d < D; d += blockDim.x)
    {
        float acc = 0.F;
        for (int32_t s = 0; s < M; ++s)
        {
            acc += sim[s] * mem[static_cast<int64_t>(s) * D + d];
        }
        augment[row * D + d] = acc;
    }
    __syncthreads();
    if (threadIdx.x == 0)
    {
        score[row] = topSum / static_cast<float>(k);
    }
}

cudaError_t launchMemoryRead(float const* query, float const* memory, float* score, float* augment, int64_t B,
    int64_t N, int32_t D, int64_t Bm, int32_t M, int32_t k, cudaStream_t stream)
{
    if (B * N == 0)
    {
        return cudaSuccess;
    }
    if (D <= 0 || M <= 0 || k <= 0 || k > M || D + M > kMemoryReadMaxSharedFloats || (Bm != 1 && Bm != B)
        || B * N > 0x7fffffffLL)
    {
        return cudaErrorInvalidValue;
    }
    size_t const sharedBytes = static_cast<size_t>(D + M) * sizeof(float);
    float const scale = 1.F / sqrtf(static_cast<float>(D));
    memoryReadKernel<<<static_cast<unsigned int>(B * N), kThreads, sharedBytes, stream>>>(
        query, memory, score, augment, N, D, Bm, M, k, scale);
    return cudaGetLastError();
}

} // namespace kernels
} // namespace vad
