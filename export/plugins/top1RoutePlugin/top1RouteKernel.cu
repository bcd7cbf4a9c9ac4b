// A thread per snippet: E is small (tens of experts), so one pass for the max and one for the
// softmax denominator beat any cooperative scheme.
#include "top1RouteKernel.h"

namespace vad
{
namespace kernels
{

__global__ void top1RouteKernel(
    float const* __restrict__ logits, int32_t* __restrict__ index, float* __restrict__ weight, int64_t rows, int32_t experts)
{
    for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < rows;
         r += static_cast<int64_t>(gridDim.x) * blockDim.x)
    {
        float const* l = logits + r * experts;
        float best = l[0];
        int32_t bestIndex = 0;
        for (int32_t e = 1; e < experts; ++e)
        {
            if (l[e] > best)
            {
                best = l[e];
                bestIndex = e;
            }
        }
        float denom = 0.F;
        for (int32_t e = 0; e < experts; ++e)
        {
            denom += expf(l[e] - best);
        }
        index[r] = bestIndex;
        weight[r] = 1.F / denom;
    }
}

cudaError_t launchTop1Route(
    float const* logits, int32_t* index, float* weight, int64_t rows, int32_t experts, cudaStream_t stream)
{
    if (rows == 0)
    {
        return cudaSuccess;
    }
    if (experts <= 0)
    {
        return cudaErrorInvalidValue;
    }
    constexpr int32_t kThreads = 256;
    int64_t const blocks = (rows + kThreads - 1) / kThreads;
    unsigned int const grid = static_cast<unsigned int>(blocks < 65535 ? blocks : 65535);
    top1RouteKernel<<<grid, kThreads, 0, stream>>>(logits, index, weight, rows, experts);
    return cudaGetLastError();
}

} // namespace kernels
} // namespace vad
