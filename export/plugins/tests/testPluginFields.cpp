// CPU-only check of the built library, the way TensorRT uses it: dlopen, getCreators, then for each
// creator name/version/namespace, createPlugin(BUILD) from ONNX-style fields, getFieldsToSerialize,
// createPlugin(RUNTIME) from those fields, and the field values after the round trip.
#include "NvInferRuntime.h"

#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <string>

using namespace nvinfer1;

namespace
{
int gFailures = 0;

void check(bool ok, std::string const& what)
{
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    gFailures += ok ? 0 : 1;
}

int32_t fieldInt(PluginFieldCollection const* fc, char const* name, int32_t fallback)
{
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        if (std::strcmp(fc->fields[i].name, name) == 0 && fc->fields[i].type == PluginFieldType::kINT32)
        {
            return *static_cast<int32_t const*>(fc->fields[i].data);
        }
    }
    return fallback;
}

PluginFieldCollection const* serialize(IPluginV3* plugin)
{
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    return runtime->getFieldsToSerialize();
}
} // namespace

int main(int argc, char** argv)
{
    if (argc != 2)
    {
        std::fprintf(stderr, "usage: %s libvad_trt_plugins.so\n", argv[0]);
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    check(lib != nullptr, std::string("dlopen ") + argv[1] + (lib ? "" : std::string(": ") + dlerror()));
    if (lib == nullptr)
    {
        return 1;
    }
    using GetCreators = IPluginCreatorInterface* const* (*) (int32_t&);
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(lib, "getCreators"));
    check(getCreators != nullptr && dlsym(lib, "setLoggerFinder") != nullptr, "exports getCreators and setLoggerFinder");
    int32_t n = 0;
    IPluginCreatorInterface* const* creators = getCreators(n);
    check(n == 2, "two creators");
    for (int32_t i = 0; i < n; ++i)
    {
        InterfaceInfo info = creators[i]->getInterfaceInfo();
        check(std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") == 0, std::string("creator kind ") + info.kind);
        auto* creator = static_cast<IPluginCreatorV3One*>(creators[i]);
        std::string const name = creator->getPluginName();
        check(std::strcmp(creator->getPluginVersion(), "1") == 0 && std::strcmp(creator->getPluginNamespace(), "vad") == 0,
            name + " version 1, namespace vad");
        int32_t k = 5;
        PluginField field("k", &k, PluginFieldType::kINT32, 1);
        PluginFieldCollection onnxFields{name == "VadMemoryRead" ? 1 : 0, &field};
        IPluginV3* built = creator->createPlugin(name.c_str(), &onnxFields, TensorRTPhase::kBUILD);
        check(built != nullptr, name + " createPlugin(BUILD)");
        if (built == nullptr)
        {
            continue;
        }
        auto* core = static_cast<IPluginV3OneCore*>(built->getCapabilityInterface(PluginCapabilityType::kCORE));
        check(name == core->getPluginName() && std::strcmp(core->getPluginNamespace(), "vad") == 0, name + " plugin identity");
        IPluginV3* runtime = creator->createPlugin(name.c_str(), serialize(built), TensorRTPhase::kRUNTIME);
        check(runtime != nullptr, name + " createPlugin(RUNTIME) from serialized fields");
        if (name == "VadMemoryRead" && runtime != nullptr)
        {
            check(fieldInt(serialize(runtime), "k", -1) == 5, "VadMemoryRead k survives build -> runtime (5)");
            PluginFieldCollection empty{0, nullptr};
            IPluginV3* bad = creator->createPlugin(name.c_str(), &empty, TensorRTPhase::kBUILD);
            check(bad == nullptr, "VadMemoryRead without k is refused");
        }
        IPluginV3* copy = built->clone();
        check(copy != nullptr, name + " clone");
        delete copy;
        delete runtime;
        delete built;
    }
    dlclose(lib);
    std::printf("%d failure(s)\n", gFailures);
    return gFailures == 0 ? 0 : 1;
}
