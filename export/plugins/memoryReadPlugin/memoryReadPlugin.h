// vad::VadMemoryRead v1 — fused memory read: sigmoid similarity, top-k mean over slots, augmentation read.
#pragma once

#include "../common/vadPluginCommon.h"

#include <vector>

namespace vad
{
namespace plugin
{

class MemoryReadPlugin : public PluginBase<MemoryReadPlugin>
{
public:
    static constexpr char const* kName = "VadMemoryRead";

    explicit MemoryReadPlugin(int32_t k);
    MemoryReadPlugin(MemoryReadPlugin const& other);
    ~MemoryReadPlugin() override = default;

    int32_t topK() const noexcept
    {
        return mK;
    }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
        int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;

    // IPluginV3OneRuntime
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    int32_t mK;
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

class MemoryReadPluginCreator : public CreatorBase
{
public:
    MemoryReadPluginCreator();
    nvinfer1::AsciiChar const* getPluginName() const noexcept override;
    nvinfer1::IPluginV3* createPlugin(nvinfer1::AsciiChar const* name, nvinfer1::PluginFieldCollection const* fc,
        nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFieldList;
};

} // namespace plugin
} // namespace vad
