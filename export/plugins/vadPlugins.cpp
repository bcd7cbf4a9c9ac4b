// Library entry points for TensorRT's dynamic plugin loading (IPluginRegistry::loadLibrary,
// trtexec --dynamicPlugins, IBuilderConfig::setPluginsToSerialize). No link dependency on libnvinfer.
#include "common/vadPluginCommon.h"
#include "memoryReadPlugin/memoryReadPlugin.h"
#include "top1RoutePlugin/top1RoutePlugin.h"

extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    vad::plugin::setLoggerFinder(finder);
}

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static vad::plugin::MemoryReadPluginCreator memoryRead;
    static vad::plugin::Top1RoutePluginCreator top1Route;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&memoryRead, &top1Route};
    nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
    return creators;
}
