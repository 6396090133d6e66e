/*
 * A stub libnvinfer for the plugin loader tests (tests/test_plugin_contract.py): the registry entry points of TensorRT
 * without TensorRT, built against one set of TensorRT headers as libnvinfer.so.<major> (that soname, like the real
 * library):
 *
 *   g++ -std=c++17 -shared -fPIC -I <TensorRT include> -I plugins -I plugins/tests plugins/tests/stubNvinfer.cpp \
 *       -Wl,-soname,libnvinfer.so.10 -o libnvinfer.so.10 -ldl
 *
 * Exports what frpt_runtime.plugin_library and libfrpt_plugins_autoload.so use from a real libnvinfer:
 * getInferLibVersion (the headers' version), getPluginRegistry, whose loadLibrary is recordingRegistry.h's (dlopen
 * with local scope, setLoggerFinder, getCreators, register), and getLogger (the logger the registry's finder also
 * returns: it records every message and prints warnings and errors to stderr). For the tests only: stubLoadLibrary
 * (what the Python bindings' IPluginRegistry.load_library calls), stubHasCreator, stubNbCreators, stubNbLoaded /
 * stubLoadedPath, stubNbLogged / stubLogged.
 */
#include "recordingRegistry.h"

#include <NvInferRuntime.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace
{

//! Records every message and prints warnings and errors, as TensorRT's default logger would.
class StderrLogger final : public nvinfer1::ILogger
{
public:
    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override
    {
        try
        {
            logged.emplace_back(msg);
        }
        catch (...)
        {
        }
        if (severity <= Severity::kWARNING)
        {
            std::fprintf(stderr, "[stub libnvinfer] %s\n", msg);
        }
    }
    std::vector<std::string> logged;
};

class StderrLoggerFinder final : public nvinfer1::ILoggerFinder
{
public:
    nvinfer1::ILogger* findLogger() override
    {
        return &logger;
    }
    StderrLogger logger;
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

extern "C" TENSORRTAPI nvinfer1::ILogger* getLogger() noexcept
{
    return &gLoggerFinder.logger;
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

    //! How many messages the logger received, and each one.
    int32_t stubNbLogged()
    {
        return static_cast<int32_t>(gLoggerFinder.logger.logged.size());
    }

    char const* stubLogged(int32_t index)
    {
        std::vector<std::string> const& logged = gLoggerFinder.logger.logged;
        bool const valid = index >= 0 && static_cast<size_t>(index) < logged.size();
        return valid ? logged[static_cast<size_t>(index)].c_str() : nullptr;
    }
}
