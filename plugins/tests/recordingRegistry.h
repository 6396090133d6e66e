/*
 * Test doubles of TensorRT's logger and plugin registry, shared by the contract harness (pluginContractTest.cpp) and
 * the stub libnvinfer (stubNvinfer.cpp). Built against the TensorRT headers under test, so their vtables are that
 * major's.
 *
 * RecordingRegistry keeps creators keyed by (name, version, namespace) as TensorRT's registry does (a duplicate is
 * refused) and implements loadLibrary the way TensorRT documents it: dlopen the file (local scope), hand it the
 * logger finder through its exported setLoggerFinder, call its exported getCreators and register each creator under
 * the creator's own namespace; any failure returns no handle.
 */
#ifndef FRPT_RECORDING_REGISTRY_H
#define FRPT_RECORDING_REGISTRY_H

#include <NvInferRuntime.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace frptTest
{

//! Keeps the last error-or-worse message.
class RecordingLogger final : public nvinfer1::ILogger
{
public:
    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override
    {
        if (severity <= Severity::kERROR)
        {
            lastError = msg;
        }
    }
    std::string lastError;
};

class RecordingLoggerFinder final : public nvinfer1::ILoggerFinder
{
public:
    nvinfer1::ILogger* findLogger() override
    {
        return &logger;
    }
    RecordingLogger logger;
};

//! The creator as an IPluginCreatorV3One, or nullptr when it is another kind.
inline nvinfer1::IPluginCreatorV3One* asV3One(nvinfer1::IPluginCreatorInterface* creator)
{
    bool const v3 = creator != nullptr && std::strcmp(creator->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0;
    return v3 ? static_cast<nvinfer1::IPluginCreatorV3One*>(creator) : nullptr;
}

class RecordingRegistry final : public nvinfer1::IPluginRegistry
{
public:
    using AsciiChar = nvinfer1::AsciiChar;
    using IPluginCreatorInterface = nvinfer1::IPluginCreatorInterface;

    explicit RecordingRegistry(nvinfer1::ILoggerFinder* loggerFinder)
        : mLoggerFinder(loggerFinder)
    {
    }

    bool registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const pluginNamespace) noexcept override
    {
        nvinfer1::IPluginCreatorV3One* c = asV3One(&creator);
        if (c == nullptr || find(c->getPluginName(), c->getPluginVersion(), pluginNamespace) != mCreators.end())
        {
            return false;
        }
        mCreators.push_back(&creator);
        mNamespaces.emplace_back(pluginNamespace);
        return true;
    }
    IPluginCreatorInterface* const* getAllCreators(int32_t* const numCreators) const noexcept override
    {
        *numCreators = static_cast<int32_t>(mCreators.size());
        return mCreators.empty() ? nullptr : mCreators.data();
    }
    IPluginCreatorInterface* getCreator(AsciiChar const* const name, AsciiChar const* const version,
        AsciiChar const* const pluginNamespace) noexcept override
    {
        auto it = find(name, version, pluginNamespace);
        return it == mCreators.end() ? nullptr : *it;
    }
    bool deregisterCreator(IPluginCreatorInterface const& creator) noexcept override
    {
        auto it = std::find(mCreators.begin(), mCreators.end(), &creator);
        if (it == mCreators.end())
        {
            return false;
        }
        mNamespaces.erase(mNamespaces.begin() + (it - mCreators.begin()));
        mCreators.erase(it);
        return true;
    }
    PluginLibraryHandle loadLibrary(AsciiChar const* pluginPath) noexcept override
    {
        loadedPaths.emplace_back(pluginPath != nullptr ? pluginPath : "");
        void* handle = pluginPath != nullptr ? dlopen(pluginPath, RTLD_LAZY | RTLD_LOCAL) : nullptr;
        using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
        using SetLoggerFinder = void (*)(nvinfer1::ILoggerFinder*);
        auto getCreators = handle ? reinterpret_cast<GetCreators>(dlsym(handle, "getCreators")) : nullptr;
        auto setLoggerFinder = handle ? reinterpret_cast<SetLoggerFinder>(dlsym(handle, "setLoggerFinder")) : nullptr;
        if (getCreators == nullptr || setLoggerFinder == nullptr)
        {
            return nullptr;
        }
        setLoggerFinder(mLoggerFinder);
        int32_t nb = 0;
        IPluginCreatorInterface* const* creators = getCreators(nb);
        for (int32_t i = 0; i < nb; ++i)
        {
            nvinfer1::IPluginCreatorV3One* c = asV3One(creators[i]);
            if (c == nullptr || !registerCreator(*creators[i], c->getPluginNamespace()))
            {
                return nullptr;
            }
        }
        return handle;
    }
    void deregisterLibrary(PluginLibraryHandle) noexcept override {}
    void setErrorRecorder(nvinfer1::IErrorRecorder* const) noexcept override {}
    nvinfer1::IErrorRecorder* getErrorRecorder() const noexcept override
    {
        return nullptr;
    }
    bool isParentSearchEnabled() const override
    {
        return false;
    }
    void setParentSearchEnabled(bool const) override {}
    nvinfer1::IPluginResource* acquirePluginResource(AsciiChar const*, nvinfer1::IPluginResource*) noexcept override
    {
        return nullptr;
    }
    int32_t releasePluginResource(AsciiChar const*) noexcept override
    {
        return -1;
    }
#if NV_TENSORRT_MAJOR >= 11
    IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const numCreators) noexcept override
    {
        return getAllCreators(numCreators);
    }
#else
// TensorRT 10's registry still declares the deprecated IPluginCreator (V1) methods pure virtual.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    bool registerCreator(nvinfer1::IPluginCreator&, AsciiChar const* const) noexcept override
    {
        return false;
    }
    nvinfer1::IPluginCreator* const* getPluginCreatorList(int32_t* const numCreators) const noexcept override
    {
        *numCreators = 0;
        return nullptr;
    }
    nvinfer1::IPluginCreator* getPluginCreator(
        AsciiChar const* const, AsciiChar const* const, AsciiChar const* const) noexcept override
    {
        return nullptr;
    }
    bool deregisterCreator(nvinfer1::IPluginCreator const&) noexcept override
    {
        return false;
    }
#pragma GCC diagnostic pop
#endif

    //! Every path loadLibrary was asked to load, in order.
    std::vector<std::string> loadedPaths;

private:
    std::vector<IPluginCreatorInterface*>::iterator find(char const* name, char const* version, char const* ns)
    {
        for (size_t i = 0; i < mCreators.size(); ++i)
        {
            nvinfer1::IPluginCreatorV3One* c = asV3One(mCreators[i]);
            if (std::strcmp(c->getPluginName(), name) == 0 && std::strcmp(c->getPluginVersion(), version) == 0
                && mNamespaces[i] == ns)
            {
                return mCreators.begin() + static_cast<std::ptrdiff_t>(i);
            }
        }
        return mCreators.end();
    }
    nvinfer1::ILoggerFinder* mLoggerFinder;
    std::vector<IPluginCreatorInterface*> mCreators;
    std::vector<std::string> mNamespaces;
};

} // namespace frptTest

#endif // FRPT_RECORDING_REGISTRY_H
