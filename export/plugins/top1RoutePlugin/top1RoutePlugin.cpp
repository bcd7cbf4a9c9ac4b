#include "top1RoutePlugin.h"

#include "top1RouteKernel.h"

using namespace nvinfer1;

namespace vad
{
namespace plugin
{

int32_t Top1RoutePlugin::getNbOutputs() const noexcept
{
    return 2;
}

int32_t Top1RoutePlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (nbInputs != 1 || nbOutputs != 2)
    {
        return -1;
    }
    outputTypes[0] = DataType::kINT32; // expert index
    outputTypes[1] = DataType::kFLOAT; // routing weight
    return 0;
}

int32_t Top1RoutePlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* shapeInputs,
    int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    if (nbInputs != 1 || nbOutputs != 2 || inputs[0].nbDims < 1)
    {
        logError("VadTop1Route: expects logits [..., E]");
        return -1;
    }
    DimsExprs rows;
    rows.nbDims = inputs[0].nbDims - 1; // drop the expert axis
    for (int32_t i = 0; i < rows.nbDims; ++i)
    {
        rows.d[i] = inputs[0].d[i];
    }
    outputs[0] = rows;
    outputs[1] = rows;
    return 0;
}

bool Top1RoutePlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    switch (pos)
    {
    case 0: return isLinear(inOut[0].desc, DataType::kFLOAT);
    case 1: return isLinear(inOut[1].desc, DataType::kINT32);
    case 2: return isLinear(inOut[2].desc, DataType::kFLOAT);
    default: return false;
    }
}

int32_t Top1RoutePlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    return (nbInputs == 1 && nbOutputs == 2) ? 0 : -1;
}

int32_t Top1RoutePlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    Dims const& d = inputDesc[0].dims;
    int32_t const experts = static_cast<int32_t>(d.d[d.nbDims - 1]);
    cudaError_t const status = kernels::launchTop1Route(static_cast<float const*>(inputs[0]),
        static_cast<int32_t*>(outputs[0]), static_cast<float*>(outputs[1]), volume(d, 0, d.nbDims - 1), experts, stream);
    if (status != cudaSuccess)
    {
        logError(std::string("VadTop1Route: kernel launch failed: ") + cudaGetErrorString(status));
        return -1;
    }
    return 0;
}

PluginFieldCollection const* Top1RoutePlugin::getFieldsToSerialize() noexcept
{
    return &mFieldCollection;
}

Top1RoutePluginCreator::Top1RoutePluginCreator() = default;

AsciiChar const* Top1RoutePluginCreator::getPluginName() const noexcept
{
    return Top1RoutePlugin::kName;
}

IPluginV3* Top1RoutePluginCreator::createPlugin(
    AsciiChar const* name, PluginFieldCollection const* fc, TensorRTPhase phase) noexcept
{
    return new (std::nothrow) Top1RoutePlugin();
}

} // namespace plugin
} // namespace vad
