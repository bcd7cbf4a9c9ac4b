// Shared helpers for the vad TensorRT plugins: logging through TensorRT's logger finder, field parsing,
// and the capability boilerplate every IPluginV3 needs.
#pragma once

#include "NvInferRuntime.h"

#include <cstdint>
#include <cstring>
#include <new>
#include <string>

namespace vad
{
namespace plugin
{

constexpr char const* kNamespace = "vad"; // == ONNX domain of the custom nodes
constexpr char const* kVersion = "1";

//! Set by setLoggerFinder() when TensorRT loads the library; null before that.
void setLoggerFinder(nvinfer1::ILoggerFinder* finder);
void logError(std::string const& message) noexcept;

//! Reads a scalar int32 field; returns false (and leaves out alone) if the field is absent or of another type.
inline bool readInt32Field(nvinfer1::PluginFieldCollection const* fc, char const* name, int32_t& out) noexcept
{
    if (fc == nullptr)
    {
        return false;
    }
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        nvinfer1::PluginField const& f = fc->fields[i];
        if (f.name != nullptr && std::strcmp(f.name, name) == 0 && f.type == nvinfer1::PluginFieldType::kINT32
            && f.length == 1 && f.data != nullptr)
        {
            out = *static_cast<int32_t const*>(f.data);
            return true;
        }
    }
    return false;
}

//! Every input/output: linear layout and the given type.
inline bool isLinear(nvinfer1::PluginTensorDesc const& d, nvinfer1::DataType type) noexcept
{
    return d.format == nvinfer1::TensorFormat::kLINEAR && d.type == type;
}

inline int64_t volume(nvinfer1::Dims const& d, int32_t from = 0, int32_t to = -1) noexcept
{
    int64_t v = 1;
    int32_t const end = to < 0 ? d.nbDims : to;
    for (int32_t i = from; i < end; ++i)
    {
        v *= d.d[i];
    }
    return v;
}

//! The IPluginV3 boilerplate every vad plugin shares (CRTP): capability casts, identity, clone and the
//! context/shape hooks these stateless kernels do not need. ``Derived`` provides ``kName`` and the build
//! and runtime methods specific to its op.
template <typename Derived>
class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime
{
public:
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override
    {
        switch (type)
        {
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }
    nvinfer1::IPluginV3* clone() noexcept override
    {
        return new (std::nothrow) Derived(static_cast<Derived const&>(*this));
    }
    nvinfer1::AsciiChar const* getPluginName() const noexcept override
    {
        return Derived::kName;
    }
    nvinfer1::AsciiChar const* getPluginVersion() const noexcept override
    {
        return kVersion;
    }
    nvinfer1::AsciiChar const* getPluginNamespace() const noexcept override
    {
        return kNamespace;
    }
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override
    {
        return 0;
    }
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override
    {
        return clone();
    }
};

//! Base for the creators: name/version/namespace and an owned field-name list.
class CreatorBase : public nvinfer1::IPluginCreatorV3One
{
public:
    nvinfer1::AsciiChar const* getPluginVersion() const noexcept override
    {
        return kVersion;
    }
    nvinfer1::AsciiChar const* getPluginNamespace() const noexcept override
    {
        return kNamespace;
    }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override
    {
        return &mFieldNames;
    }

protected:
    nvinfer1::PluginFieldCollection mFieldNames{};
};

} // namespace plugin
} // namespace vad
