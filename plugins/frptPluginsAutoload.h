/*
 * libfrpt_plugins_autoload.so: the self-registering loader of libfrpt_plugins.so, for hosts that only dlopen a
 * plugin library and rely on it registering itself — Triton's TensorRT backend (`--backend-config=tensorrt,
 * plugins=...`, or LD_PRELOAD), Polygraphy's `--plugins` (ctypes.CDLL) and DeepStream's `custom-lib-path`.
 *
 * When the library is loaded, its static initialiser registers libfrpt_plugins.so — the file of that name in the
 * folder this library's own file is in (dladdr, symlinks resolved) — with TensorRT's plugin registry, through the
 * plugin library's one route: its frptLoadIntoRegistry, which calls IPluginRegistry::loadLibrary. Before any
 * registry call it checks that this library and the plugin library were built against the running TensorRT's major
 * (getInferLibVersion). The running TensorRT is the libnvinfer already mapped into the process, whatever scope it
 * was loaded with (Triton's backend, `import tensorrt`, DeepStream's nvinfer); with none (LD_PRELOAD, or a tool that
 * loads plugins before TensorRT) it loads libnvinfer.so.<its major> itself from the library path, which later loads
 * of that soname share. It has no NEEDED libnvinfer: a missing TensorRT is a reported status, not a failed load.
 *
 * Every outcome is one line: TensorRT's logger (getLogger) when the running major is this library's, else stderr;
 * success is logged at kINFO only (silent on stderr). Nothing throws out of the initialiser. The query below says
 * what happened, for tests and loaders.
 */
#ifndef FRPT_PLUGINS_AUTOLOAD_H
#define FRPT_PLUGINS_AUTOLOAD_H

#include <cstdint>

namespace frpt
{
//! Results of frptAutoloadStatus.
constexpr int32_t kAUTOLOAD_REGISTERED{0};  //!< InhomogeneousSample / 1 / frpt registered from the library beside it
constexpr int32_t kAUTOLOAD_NO_TENSORRT{1}; //!< no libnvinfer in the process nor loadable, or not TensorRT's
constexpr int32_t kAUTOLOAD_NO_PLUGIN_LIBRARY{2}; //!< libfrpt_plugins.so missing beside it, unloadable or not FRPT's
constexpr int32_t kAUTOLOAD_TENSORRT_MISMATCH{3}; //!< this library or the plugin library built for another major
constexpr int32_t kAUTOLOAD_OTHER_COPY{4};        //!< another copy of the plugin library registered the plugin first
constexpr int32_t kAUTOLOAD_REGISTRY_FAILED{5};   //!< TensorRT's registry did not register it (loadLibrary failed)
constexpr int32_t kAUTOLOAD_INTERNAL_ERROR{6};    //!< its own file not found (dladdr), or an unexpected exception
} // namespace frpt

//! What the initialiser did: one of frpt::kAUTOLOAD_*.
extern "C" __attribute__((visibility("default"))) int32_t frptAutoloadStatus();

//! The one line it reported (also on success), starting with "frpt_plugins_autoload: ".
extern "C" __attribute__((visibility("default"))) char const* frptAutoloadMessage();

#endif // FRPT_PLUGINS_AUTOLOAD_H
