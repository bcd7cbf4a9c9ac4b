#include "memoryReadPlugin.h"

#include "memoryReadKernel.h"

#include <algorithm>

using namespace nvinfer1;

namespace vad
{
namespace plugin
{

MemoryReadPlugin::MemoryReadPlugin(int32_t k)
    : mK(k)
{
}

MemoryReadPlugin::MemoryReadPlugin(MemoryReadPlugin const& other)
    : mK(other.mK)
{
}

int32_t MemoryReadPlugin::getNbOutputs() const noexcept
{
    return 2;
}

int32_t MemoryReadPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (nbInputs != 2 || nbOutputs != 2)
    {
        return -1;
    }
    outputTypes[0] = DataType::kFLOAT;
    outputTypes[1] = DataType::kFLOAT;
    return 0;
}

int32_t MemoryReadPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* shapeInputs,
    int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    if (nbInputs != 2 || nbOutputs != 2 || inputs[0].nbDims != 3 || inputs[1].nbDims != 3)
    {
        logError("VadMemoryRead: expects query [B, N, D] and memory [Bm, M, D]");
        return -1;
    }
    outputs[0].nbDims = 2; // score [B, N]
    outputs[0].d[0] = inputs[0].d[0];
    outputs[0].d[1] = inputs[0].d[1];
    outputs[1] = inputs[0]; // augment [B, N, D]
    return 0;
}

bool MemoryReadPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    // FP32 only, by design: this op is the FP32 island of an FP16 graph.
    return pos < nbInputs + nbOutputs && isLinear(inOut[pos].desc, DataType::kFLOAT);
}

int32_t MemoryReadPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (nbInputs != 2 || nbOutputs != 2)
    {
        return -1;
    }
    Dims const& q = in[0].desc.dims;
    Dims const& m = in[1].desc.dims;
    if (q.d[2] >= 0 && m.d[2] >= 0 && q.d[2] != m.d[2])
    {
        logError("VadMemoryRead: query and memory feature sizes differ");
        return -1;
    }
    if (q.d[2] >= 0 && m.d[1] >= 0 && q.d[2] + m.d[1] > kernels::kMemoryReadMaxSharedFloats)
    {
        logError("VadMemoryRead: D + M exceeds the kernel's shared-memory limit (12288 floats)");
        return -1;
    }
    return 0;
}

int32_t MemoryReadPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    Dims const& q = inputDesc[0].dims;
    Dims const& m = inputDesc[1].dims;
    int32_t const slots = static_cast<int32_t>(m.d[1]);
    cudaError_t const status = kernels::launchMemoryRead(static_cast<float const*>(inputs[0]),
        static_cast<float const*>(inputs[1]), static_cast<float*>(outputs[0]), static_cast<float*>(outputs[1]), q.d[0],
        q.d[1], static_cast<int32_t>(q.d[2]), m.d[0], slots, std::min(mK, slots), stream);
    if (status != cudaSuccess)
    {
        logError(std::string("VadMemoryRead: kernel launch failed: ") + cudaGetErrorString(status));
        return -1;
    }
    return 0;
}

PluginFieldCollection const* MemoryReadPlugin::getFieldsToSerialize() noexcept
{
    mFields = {PluginField("k", &mK, PluginFieldType::kINT32, 1)};
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
    return &mFieldCollection;
}

MemoryReadPluginCreator::MemoryReadPluginCreator()
{
    mFieldList = {PluginField("k", nullptr, PluginFieldType::kINT32, 1)};
    mFieldNames.nbFields = static_cast<int32_t>(mFieldList.size());
    mFieldNames.fields = mFieldList.data();
}

AsciiChar const* MemoryReadPluginCreator::getPluginName() const noexcept
{
    return MemoryReadPlugin::kName;
}

IPluginV3* MemoryReadPluginCreator::createPlugin(
    AsciiChar const* name, PluginFieldCollection const* fc, TensorRTPhase phase) noexcept
{
    int32_t k = 0;
    if (!readInt32Field(fc, "k", k) || k < 1)
    {
        logError("VadMemoryRead: field 'k' (int32 >= 1) is missing or invalid");
        return nullptr;
    }
    return new (std::nothrow) MemoryReadPlugin(k);
}

} // namespace plugin
} // namespace vad
