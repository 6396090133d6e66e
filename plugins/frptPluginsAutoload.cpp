/*
 * libfrpt_plugins_autoload.so: registers libfrpt_plugins.so (beside it) with TensorRT's plugin registry when it is
 * loaded; see frptPluginsAutoload.h for the contract and plugins/README.md (Loading) for the hosts.
 *
 * Why it finds libnvinfer at run time instead of linking it: Triton loads its TensorRT backend, and so libnvinfer,
 * with RTLD_LOCAL, so getPluginRegistry is not in the global scope there (dlsym(RTLD_DEFAULT) would miss it); the
 * Python bindings load libnvinfer locally too. Every loaded object is visible to dl_iterate_phdr whatever its
 * scope, and dlopen(its path, RTLD_NOLOAD) returns it. A NEEDED libnvinfer would make a missing TensorRT a failed
 * dlopen (fatal for every process under LD_PRELOAD) and would load a second libnvinfer beside one of another major;
 * loading libnvinfer.so.<major> ourselves only when none is mapped does what NEEDED would, with a reported failure.
 */
#include "frptPluginsAutoload.h"

#include "inhomogeneousSamplePlugin.h"

#include <NvInferRuntime.h>
#include <dlfcn.h>
#include <link.h>

#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

using namespace nvinfer1;

namespace
{

constexpr char const* kPLUGIN_LIBRARY{"libfrpt_plugins.so"};
constexpr char const* kPREFIX{"frpt_plugins_autoload: "};
constexpr size_t kMESSAGE_BYTES{2048};

struct Outcome
{
    int32_t status;
    char message[kMESSAGE_BYTES];
};

// Constant-initialised, so it holds a valid state before any dynamic initialiser (ours included) runs.
Outcome gOutcome{frpt::kAUTOLOAD_INTERNAL_ERROR, "frpt_plugins_autoload: the initialiser did not run"};

//! The running TensorRT: its libnvinfer's path, version, registry and (same major only) logger.
struct Tensorrt
{
    char path[PATH_MAX];
    int32_t version;
    void* handle;
    ILogger* logger;
};

//! (major, minor) of a TensorRT version integer: major*10000 + minor*100 + patch (10+), major*1000 + ... (8.x).
int32_t majorOf(int32_t version) noexcept
{
    return version >= 100000 ? version / 10000 : version / 1000;
}

int32_t minorOf(int32_t version) noexcept
{
    return version >= 100000 ? version / 100 % 100 : version / 100 % 10;
}

//! Record the outcome as one line and report it: TensorRT's logger (kINFO on success, kERROR otherwise) when
//! `logger` is given, else stderr for failures only.
__attribute__((format(printf, 3, 4))) void finish(int32_t status, ILogger* logger, char const* format, ...) noexcept
{
    size_t const prefix = std::strlen(kPREFIX);
    std::memcpy(gOutcome.message, kPREFIX, prefix + 1);
    va_list args;
    va_start(args, format);
    std::vsnprintf(gOutcome.message + prefix, kMESSAGE_BYTES - prefix, format, args);
    va_end(args);
    for (char* c = gOutcome.message; *c != '\0'; ++c)
    {
        *c = (*c == '\n' || *c == '\r') ? ' ' : *c; // dlerror() text stays on the one line
    }
    gOutcome.status = status;
    bool const ok = status == frpt::kAUTOLOAD_REGISTERED;
    if (logger != nullptr)
    {
        logger->log(ok ? ILogger::Severity::kINFO : ILogger::Severity::kERROR, gOutcome.message);
    }
    else if (!ok)
    {
        std::fprintf(stderr, "%s\n", gOutcome.message);
    }
}

//! The folder of this library's file (symlinks resolved), into `folder`.
bool ownFolder(char (&folder)[PATH_MAX]) noexcept
{
    Dl_info info{};
    if (dladdr(reinterpret_cast<void const*>(&gOutcome), &info) == 0 || info.dli_fname == nullptr
        || realpath(info.dli_fname, folder) == nullptr)
    {
        return false;
    }
    char* slash = std::strrchr(folder, '/');
    if (slash == nullptr)
    {
        return false;
    }
    *slash = '\0';
    return true;
}

//! Whether the file name of `path` is libnvinfer.so[.N[.N...]] (not libnvinfer_plugin, _lean, _dispatch, ...).
bool isLibnvinfer(char const* path) noexcept
{
    char const* slash = std::strrchr(path, '/');
    char const* c = slash != nullptr ? slash + 1 : path;
    constexpr char kNAME[]{"libnvinfer.so"};
    if (std::strncmp(c, kNAME, sizeof(kNAME) - 1) != 0)
    {
        return false;
    }
    for (c += sizeof(kNAME) - 1; *c == '.';)
    {
        char const* digits = ++c;
        while (*c >= '0' && *c <= '9')
        {
            ++c;
        }
        if (c == digits)
        {
            return false;
        }
    }
    return *c == '\0';
}

int mappedLibnvinfer(dl_phdr_info* info, size_t /* size */, void* found) noexcept
{
    if (info->dlpi_name == nullptr || !isLibnvinfer(info->dlpi_name))
    {
        return 0;
    }
    std::snprintf(static_cast<char*>(found), PATH_MAX, "%s", info->dlpi_name);
    return 1;
}

//! The libnvinfer mapped into the process (any scope), else libnvinfer.so.<our major> loaded from the library
//! path; nullptr after reporting when there is neither.
void* openLibnvinfer(char (&path)[PATH_MAX]) noexcept
{
    path[0] = '\0';
    dl_iterate_phdr(mappedLibnvinfer, path); // dlopen is not allowed inside the callback: only the path is kept
    if (path[0] != '\0')
    {
        void* mapped = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
        char resolved[PATH_MAX];
        if (mapped == nullptr)
        {
            finish(
                frpt::kAUTOLOAD_NO_TENSORRT, nullptr, "cannot open %s, mapped in this process (%s)", path, dlerror());
        }
        else if (realpath(path, resolved) != nullptr)
        {
            std::memcpy(path, resolved, sizeof(resolved)); // the messages name the file, not the name it was loaded by
        }
        return mapped;
    }
    char soname[32];
    std::snprintf(soname, sizeof(soname), "libnvinfer.so.%d", NV_TENSORRT_MAJOR);
    void* handle = dlopen(soname, RTLD_LAZY | RTLD_LOCAL);
    link_map* map = nullptr;
    if (handle == nullptr || dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr)
    {
        finish(frpt::kAUTOLOAD_NO_TENSORRT, nullptr,
            "no libnvinfer in this process and %s is not on the library path (%s): load this library where TensorRT "
            "%d is loaded (Triton's --backend-config=tensorrt,plugins=..., after `import tensorrt`), or add TensorRT "
            "%d's lib/ folder (pip wheels: site-packages/tensorrt_libs) to LD_LIBRARY_PATH",
            soname, handle == nullptr ? dlerror() : "no link map", NV_TENSORRT_MAJOR, NV_TENSORRT_MAJOR);
        return nullptr;
    }
    std::snprintf(path, PATH_MAX, "%s", map->l_name);
    return handle;
}

//! Find the running TensorRT and check its major against ours; reports and returns false on failure.
bool findTensorrt(Tensorrt& trt) noexcept
{
    trt.handle = openLibnvinfer(trt.path);
    if (trt.handle == nullptr)
    {
        return false;
    }
    auto getVersion = reinterpret_cast<decltype(&getInferLibVersion)>(dlsym(trt.handle, "getInferLibVersion"));
    if (getVersion == nullptr || dlsym(trt.handle, "getPluginRegistry") == nullptr)
    {
        finish(frpt::kAUTOLOAD_NO_TENSORRT, nullptr,
            "%s exports no getInferLibVersion / getPluginRegistry: not TensorRT's libnvinfer", trt.path);
        return false;
    }
    trt.version = getVersion();
    if (majorOf(trt.version) != NV_TENSORRT_MAJOR)
    {
        // Another major's ILogger has another vtable (11 derives it from IVersionedInterface): stderr only.
        finish(frpt::kAUTOLOAD_TENSORRT_MISMATCH, nullptr,
            "libfrpt_plugins_autoload.so was built against TensorRT %d.%d but this process runs TensorRT %d.%d (%s): "
            "rebuild both libraries against TensorRT %d: frpt-export build-plugin --tensorrt-root <TensorRT %d.x "
            "prefix>",
            NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR, majorOf(trt.version), minorOf(trt.version), trt.path,
            majorOf(trt.version), majorOf(trt.version));
        return false;
    }
    auto getTrtLogger = reinterpret_cast<decltype(&getLogger)>(dlsym(trt.handle, "getLogger"));
    trt.logger = getTrtLogger != nullptr ? getTrtLogger() : nullptr;
    return true;
}

//! The plugin library's frptLoadIntoRegistry, after checking its major; reports and returns nullptr on failure.
decltype(&frptLoadIntoRegistry) openPluginLibrary(char const* plugin, Tensorrt const& trt) noexcept
{
    void* handle = dlopen(plugin, RTLD_NOW | RTLD_LOCAL); // the registry's loadLibrary opens this same object
    if (handle == nullptr)
    {
        finish(frpt::kAUTOLOAD_NO_PLUGIN_LIBRARY, trt.logger,
            "cannot load %s beside it (%s): build both libraries into one folder with `frpt-export build-plugin`",
            kPLUGIN_LIBRARY, dlerror());
        return nullptr;
    }
    auto builtVersion
        = reinterpret_cast<decltype(&frptPluginTensorRTVersion)>(dlsym(handle, "frptPluginTensorRTVersion"));
    auto load = reinterpret_cast<decltype(&frptLoadIntoRegistry)>(dlsym(handle, "frptLoadIntoRegistry"));
    if (builtVersion == nullptr || load == nullptr)
    {
        finish(frpt::kAUTOLOAD_NO_PLUGIN_LIBRARY, trt.logger,
            "%s is not the FRPT TensorRT plugin library (it exports no frptLoadIntoRegistry / "
            "frptPluginTensorRTVersion): rebuild it with `frpt-export build-plugin`",
            plugin);
        dlclose(handle);
        return nullptr;
    }
    int32_t const built = builtVersion();
    if (majorOf(built) != majorOf(trt.version))
    {
        finish(frpt::kAUTOLOAD_TENSORRT_MISMATCH, trt.logger,
            "%s was built against TensorRT %d.%d but this process runs TensorRT %d.%d (%s): rebuild it against "
            "TensorRT %d: frpt-export build-plugin --tensorrt-root <TensorRT %d.x prefix>",
            plugin, majorOf(built), minorOf(built), majorOf(trt.version), minorOf(trt.version), trt.path,
            majorOf(trt.version), majorOf(trt.version));
        dlclose(handle);
        return nullptr;
    }
    return load;
}

//! The whole autoload: its folder, the running TensorRT, the plugin library beside it, the registry route.
void registerBesideUs() noexcept
{
    char folder[PATH_MAX];
    if (!ownFolder(folder))
    {
        finish(frpt::kAUTOLOAD_INTERNAL_ERROR, nullptr, "cannot tell which file it was loaded from (dladdr)");
        return;
    }
    char plugin[PATH_MAX + 32];
    std::snprintf(plugin, sizeof(plugin), "%s/%s", folder, kPLUGIN_LIBRARY);
    Tensorrt trt{};
    decltype(&frptLoadIntoRegistry) load = findTensorrt(trt) ? openPluginLibrary(plugin, trt) : nullptr;
    if (load == nullptr)
    {
        return;
    }
    auto getRegistry = reinterpret_cast<decltype(&getPluginRegistry)>(dlsym(trt.handle, "getPluginRegistry"));
    int32_t const result = load(getRegistry(), plugin);
    int32_t const major = majorOf(trt.version);
    int32_t const minor = minorOf(trt.version);
    if (result == frpt::kLOAD_OK)
    {
        finish(frpt::kAUTOLOAD_REGISTERED, trt.logger, "registered %s/%s/%s from %s with TensorRT %d.%d (%s)",
            frpt::kPLUGIN_NAME, frpt::kPLUGIN_VERSION, frpt::kPLUGIN_NAMESPACE, plugin, major, minor, trt.path);
    }
    else if (result == frpt::kLOAD_OTHER_COPY)
    {
        finish(frpt::kAUTOLOAD_OTHER_COPY, trt.logger,
            "%s/%s/%s is already registered with TensorRT by another copy of the plugin library; %s was not "
            "registered: load one copy per process",
            frpt::kPLUGIN_NAME, frpt::kPLUGIN_VERSION, frpt::kPLUGIN_NAMESPACE, plugin);
    }
    else
    {
        finish(frpt::kAUTOLOAD_REGISTRY_FAILED, trt.logger,
            "TensorRT's plugin registry (%s) did not register %s (loadLibrary failed, code %d; see TensorRT's log)",
            trt.path, plugin, result);
    }
}

//! The static initialiser: runs when the library is loaded; nothing leaves it.
struct Autoload
{
    Autoload() noexcept
    {
        try
        {
            registerBesideUs();
        }
        catch (std::exception const& e)
        {
            finish(frpt::kAUTOLOAD_INTERNAL_ERROR, nullptr, "unexpected exception: %s", e.what());
        }
        catch (...)
        {
            finish(frpt::kAUTOLOAD_INTERNAL_ERROR, nullptr, "unexpected exception");
        }
    }
};

Autoload const gAutoload;

} // namespace

extern "C" int32_t frptAutoloadStatus()
{
    return gOutcome.status;
}

extern "C" char const* frptAutoloadMessage()
{
    return gOutcome.message;
}
