#pragma once

#include <cstdint>
#include <cuda_runtime_api.h>

namespace vad
{
namespace kernels
{

//! Largest D + M the kernel keeps in shared memory (floats): 48 KiB default shared memory.
constexpr int32_t kMemoryReadMaxSharedFloats = 12288;

//! score[b, n] = mean of the k largest sigmoid(q·m_s / sqrt(D)) over slots s; augment[b, n, :] = Σ_s sim_s m_s.
//! query [B, N, D], memory [Bm, M, D] with Bm == 1 (shared) or Bm == B. All float32, row-major.
cudaError_t launchMemoryRead(float const* query, float const* memory, float* score, float* augment, int64_t B,
    int64_t N, int32_t D, int64_t Bm, int32_t M, int32_t k, cudaStream_t stream);

} // namespace kernels
} // namespace vad
