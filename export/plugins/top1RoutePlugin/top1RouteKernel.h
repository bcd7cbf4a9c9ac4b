#pragma once

#include <cstdint>
#include <cuda_runtime_api.h>

namespace vad
{
namespace kernels
{

//! Per row of logits [rows, E]: index = argmax (lowest index on ties), weight = softmax probability of it.
cudaError_t launchTop1Route(
    float const* logits, int32_t* index, float* weight, int64_t rows, int32_t experts, cudaStream_t stream);

} // namespace kernels
} // namespace vad
