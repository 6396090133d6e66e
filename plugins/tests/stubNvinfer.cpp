/*
 * A stub libnvinfer for the plugin loader tests (tests/test_plugin_contract.py): the registry entry points of TensorRT
 * without TensorRT, built against one set of TensorRT headers as libnvinfer.so.<major> (that soname, like the real
 * library):
 *
 *   g++ -std=c++17 -shared -fPIC -I <TensorRT include> -I plugins -I plugins/tests plugins/tests/stubNvinfer.cpp \
 *       -Wl,-soname,libnvinfer.so.10 -o libnvinfer.so.10 -ldl
 *
 * Exports what frpt_runtime.plugin_library uses from a real libnvinfer: getInferLibVersion (the headers' version) and
 * getPluginRegistry, whose loadLibrary is recordingRegistry.h's (dlopen with local scope, setLoggerFinder,
 * getCreators, register). For the tests only: stubLoadLibrary (what the Python bindings' IPluginRegistry.load_library
 * calls), stubHasCreator, stubNbCreators, stubNbLoaded / stubLoadedPath.
 */
#include "recordingRegistry.h"

#include <NvInferRuntime.h>

#include <cstdint>
#include <cstdio>

namespace
{

//! Prints the plugin's error messages, as TensorRT's default logger would.
class StderrLogger final : public nvinfer1::ILogger
{
public:
    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override
    {
        if (severity <= Severity::kWARNING)
        {
            std::fprintf(stderr, "[stub libnvinfer] %s\n", msg);
        }
    }
};

class StderrLoggerFinder final : public nvinfer1::ILoggerFinder
{
public:
    nvinfer1::ILogger* findLogger() override
    {
        return &mLogger;
    }

private:
    StderrLogger mLogger;
};

StderrLoggerFinder gLoggerFinder;
frptTest::RecordingRegistry gRegistry(&gLoggerFinder);

} // namespace

extern "C" TENSORRTAPI int32_t getInferLibVersion() noexcept
{
    return NV_TENSORRT_VERSION;
}

extern "C" TENSORRTAPI nvinfer1::IPluginRegistry* getPluginRegistry() noexcept
{
    return &gRegistry;
}

extern "C"
{
    //! IPluginRegistry::loadLibrary(path) as the Python bindings' load_library calls it: the handle, or 0.
    intptr_t stubLoadLibrary(char const* path)
    {
        return reinterpret_cast<intptr_t>(gRegistry.loadLibrary(path));
    }

    //! 1 when a creator name / version / namespace is registered.
    int32_t stubHasCreator(char const* name, char const* version, char const* pluginNamespace)
    {
        return gRegistry.getCreator(name, version, pluginNamespace) != nullptr ? 1 : 0;
    }

    int32_t stubNbCreators()
    {
        int32_t nb = 0;
        gRegistry.getAllCreators(&nb);
        return nb;
    }

    //! How many times loadLibrary was called, and with which path.
    int32_t stubNbLoaded()
    {
        return static_cast<int32_t>(gRegistry.loadedPaths.size());
    }

    char const* stubLoadedPath(int32_t index)
    {
        bool const valid = index >= 0 && static_cast<size_t>(index) < gRegistry.loadedPaths.size();
        return valid ? gRegistry.loadedPaths[static_cast<size_t>(index)].c_str() : nullptr;
    }
}
