"""Locate the FRPT TensorRT plugin library (``libfrpt_plugins.so``) and register it with TensorRT; torch-free.

The library holds the ``InhomogeneousSample`` plugin (name ``InhomogeneousSample``, version ``1``, namespace
``frpt``; ``plugins/README.md``). It registers through TensorRT's documented route for plugin libraries: the plugin
registry loads it (``IPluginRegistry::loadLibrary``) and calls its exported ``getCreators``. It has no static
registration and needs no libnvinfer of its own, so it works however the process loaded TensorRT (NVIDIA's Python
wheels and bindings load libnvinfer with local scope).

Before that, the loader compares the TensorRT major the library was built against (its exported
``frptPluginTensorRTVersion``) with the running one and refuses a mismatch: the registry's and the plugin interfaces'
vtables differ between majors.

* With the TensorRT module (``trt=tensorrt``): its ``__version__``, then ``trt.get_plugin_registry().load_library``.
* Without it: the libnvinfer already in the process (else ``libnvinfer.so.<major>`` from the library path): its
  ``getInferLibVersion``, then ``getPluginRegistry()`` handed to the library's ``frptLoadIntoRegistry``, which calls
  ``loadLibrary`` on it.

Search order of the file (first hit wins; an explicit choice that does not exist is an error, never silently skipped):

1. the ``path`` argument;
2. the environment variable ``FRPT_PLUGIN_LIB``;
3. the packaged location (``libfrpt_plugins.so`` beside this module), then :func:`user_plugin_dir` (where
   ``frpt-export build-plugin`` builds it by default), then a source checkout's ``plugins/build/libfrpt_plugins.so``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
from pathlib import Path
from types import ModuleType

from frpt_runtime.contract import PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION
from frpt_runtime.errors import FrptError

__all__ = [
    "ENV_VAR",
    "LIBRARY_NAME",
    "default_locations",
    "find_plugin_library",
    "load_plugin_library",
    "user_plugin_dir",
]

ENV_VAR = "FRPT_PLUGIN_LIB"
LIBRARY_NAME = "libfrpt_plugins.so"
PLUGIN_ID = (PLUGIN_OP, PLUGIN_VERSION, PLUGIN_NAMESPACE)  # the registry's key: name, version, namespace
_EXPORTS = ("getCreators", "frptPluginRegistered", "frptPluginTensorRTVersion", "frptLoadIntoRegistry")
# frptLoadIntoRegistry's results (frpt::kLOAD_* in inhomogeneousSamplePlugin.h).
_LOAD_OK, _LOAD_FAILED, _LOAD_OTHER_COPY = 0, 1, 2
_BUILD_HINT = (
    "build it with `frpt-export build-plugin [--tensorrt-root DIR]` (or, in a checkout, `cmake -S plugins -B "
    f"plugins/build && cmake --build plugins/build`; see plugins/README.md) or set {ENV_VAR}=/path/to/{LIBRARY_NAME}"
)
_LIBNVINFER = re.compile(r"^libnvinfer\.so(\.\d+)*$")
_loaded: dict[Path, ctypes.CDLL] = {}


def user_plugin_dir() -> Path:
    """The folder ``frpt-export build-plugin`` builds into by default: ``$XDG_DATA_HOME/frpt-toolkit/plugins``
    (``~/.local/share/frpt-toolkit/plugins`` when ``XDG_DATA_HOME`` is unset or empty)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "frpt-toolkit" / "plugins"


def default_locations() -> list[Path]:
    """Where the library is looked for when neither a path nor ``FRPT_PLUGIN_LIB`` is given, in order."""
    here = Path(__file__).resolve().parent
    return [here / LIBRARY_NAME, user_plugin_dir() / LIBRARY_NAME, here.parents[1] / "plugins" / "build" / LIBRARY_NAME]


def _requested(path: str | os.PathLike | None) -> tuple[Path | None, str]:
    """The explicitly requested file (argument, else env var) and how it was requested."""
    if path is not None:
        return Path(path).expanduser(), "given path"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser(), f"${ENV_VAR}"
    return None, ""


def find_plugin_library(path: str | os.PathLike | None = None) -> Path | None:
    """Return the plugin library that :func:`load_plugin_library` would load, or ``None`` if there is none.

    Args:
        path: explicit library file; when given (or ``FRPT_PLUGIN_LIB`` is set) only that file is considered.

    Returns:
        Absolute path of an existing file, or ``None``.
    """
    requested, _ = _requested(path)
    candidates = [requested] if requested is not None else default_locations()
    return next((p.resolve() for p in candidates if p.is_file()), None)


def _decode_version(value: int) -> tuple[int, int]:
    """(major, minor) of a TensorRT version integer: major*10000 + minor*100 + patch (10+), major*1000 + ... (8.x)."""
    return (value // 10000, value // 100 % 100) if value >= 100000 else (value // 1000, value // 100 % 10)


def _module_version(trt: ModuleType) -> tuple[int, int]:
    version = getattr(trt, "__version__", None)
    match = re.match(r"(\d+)\.(\d+)", str(version))
    if match is None:
        raise FrptError(f"cannot read the TensorRT version of module {trt.__name__!r} (__version__ = {version!r})")
    return int(match.group(1)), int(match.group(2))


def _process_libnvinfer() -> Path | None:
    """A libnvinfer already mapped into this process (whatever scope it was loaded with), if any."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    fields = (line.split(maxsplit=5) for line in maps)  # address perms offset device inode [path]
    paths = (Path(f[5]) for f in fields if len(f) == 6 and f[5].startswith("/"))
    return next((p for p in paths if _LIBNVINFER.match(p.name)), None)


def _open_libnvinfer(major: int) -> tuple[ctypes.CDLL, str]:
    """The running libnvinfer: the one in the process, else ``libnvinfer.so.<major>``, else any on the library path."""
    names = [str(p) for p in [_process_libnvinfer()] if p is not None]
    names += [f"libnvinfer.so.{major}", *filter(None, [ctypes.util.find_library("nvinfer")])]
    for name in names:
        try:
            return ctypes.CDLL(name), name
        except OSError:
            continue
    raise FrptError(
        f"no TensorRT in this process and no libnvinfer.so.{major} on the library path: install TensorRT {major}.x, or "
        "import tensorrt first and pass it (`load_plugin_library(trt=tensorrt)`)"
    )


def _check_abi(lib: Path, built: tuple[int, int], running: tuple[int, int], where: str) -> None:
    if built[0] != running[0]:
        raise FrptError(
            f"{lib} was built against TensorRT {built[0]}.{built[1]} but this process runs TensorRT "
            f"{running[0]}.{running[1]} ({where}); plugin interfaces differ between TensorRT majors: rebuild it "
            f"against TensorRT {running[0]}: `frpt-export build-plugin --tensorrt-root <TensorRT {running[0]}.x "
            f"prefix>`, or in a checkout `cmake -S plugins -B plugins/build -DTensorRT_ROOT=<TensorRT "
            f"{running[0]}.x prefix> && cmake --build plugins/build`"
        )


def _other_copy_error(lib: Path, where: str) -> FrptError:
    return FrptError(
        f"cannot register {lib}: {'/'.join(PLUGIN_ID)} is already registered with TensorRT by another copy of the "
        f"plugin library ({where}); load one library per process (the same path, or unset {ENV_VAR})"
    )


def _register_with_module(trt: ModuleType, lib: Path, handle: ctypes.CDLL, built: tuple[int, int]) -> None:
    """TensorRT's Python route: ``trt.get_plugin_registry().load_library(path)``."""
    if not hasattr(trt, "get_plugin_registry"):
        raise FrptError(f"module {trt.__name__!r} has no plugin registry (TensorRT-RTX has no plugins): use TensorRT")
    _check_abi(lib, built, _module_version(trt), f"{trt.__name__} {trt.__version__}")
    registry = trt.get_plugin_registry()
    if handle.frptPluginRegistered() != 1 and registry.get_creator(*PLUGIN_ID) is not None:
        raise _other_copy_error(lib, "found in trt.get_plugin_registry()")
    try:
        library = registry.load_library(str(lib))
    except RuntimeError as e:
        raise FrptError(f"TensorRT's plugin registry did not register {lib}: {e}") from e
    if library is None or handle.frptPluginRegistered() != 1:
        raise FrptError(f"TensorRT's plugin registry did not register {lib} (load_library failed; see TensorRT's log)")


def _register_with_libnvinfer(lib: Path, handle: ctypes.CDLL, built: tuple[int, int]) -> None:
    """The same route without the Python bindings: libnvinfer's registry, its loadLibrary called by the library."""
    nvinfer, name = _open_libnvinfer(built[0])
    nvinfer.getInferLibVersion.restype = ctypes.c_int32
    _check_abi(lib, built, _decode_version(nvinfer.getInferLibVersion()), name)
    nvinfer.getPluginRegistry.restype = ctypes.c_void_p
    registry = nvinfer.getPluginRegistry()
    handle.frptLoadIntoRegistry.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    handle.frptLoadIntoRegistry.restype = ctypes.c_int32
    status = _LOAD_FAILED if registry is None else handle.frptLoadIntoRegistry(registry, os.fsencode(lib))
    if status == _LOAD_OTHER_COPY:
        raise _other_copy_error(lib, f"found in {name}'s registry")
    if status != _LOAD_OK:
        raise FrptError(f"TensorRT's plugin registry ({name}) did not register {lib} (loadLibrary failed; see its log)")


def load_plugin_library(path: str | os.PathLike | None = None, *, trt: ModuleType | None = None) -> str:
    """Register ``InhomogeneousSample`` with TensorRT's plugin registry from the plugin library file.

    Loading the same file again is a no-op.

    Args:
        path: explicit library file; else ``FRPT_PLUGIN_LIB``; else the default locations.
        trt: the imported TensorRT module (``import tensorrt``), whose version and registry are then used; without
            it, libnvinfer's own (see the module docstring).

    Returns:
        The absolute path that was registered.

    Raises:
        FrptError: no library found (the message lists every place tried); the file cannot be loaded or is not the
            FRPT plugin library; it was built for another TensorRT major than the running one; another copy already
            registered the plugin in this process; no TensorRT to register with; or the registry refused it.
    """
    requested, how = _requested(path)
    lib = find_plugin_library(path)
    if lib is None:
        tried = [f"{requested} ({how})"] if requested is not None else [str(p) for p in default_locations()]
        raise FrptError(f"TensorRT plugin library {LIBRARY_NAME} not found (tried: {', '.join(tried)}); {_BUILD_HINT}")
    if lib in _loaded:
        return str(lib)
    if _loaded:
        raise _other_copy_error(lib, f"{next(iter(_loaded))} was registered first")
    try:
        handle = ctypes.CDLL(str(lib))  # local scope: only to read its exports; the registry loads it again
    except OSError as e:
        raise FrptError(
            f"cannot load TensorRT plugin library {lib}: {e}; check that the CUDA runtime it was built against is on "
            f"the library path, or rebuild it: {_BUILD_HINT}"
        ) from e
    missing = [name for name in _EXPORTS if not hasattr(handle, name)]
    if missing:
        raise FrptError(
            f"{lib} is not the FRPT TensorRT plugin library of this toolkit (it exports no `{'`, `'.join(missing)}`); "
            f"{_BUILD_HINT}"
        )
    handle.frptPluginRegistered.restype = ctypes.c_int32
    handle.frptPluginTensorRTVersion.restype = ctypes.c_int32
    built = _decode_version(handle.frptPluginTensorRTVersion())
    if trt is not None:
        _register_with_module(trt, lib, handle, built)
    else:
        _register_with_libnvinfer(lib, handle, built)
    _loaded[lib] = handle
    return str(lib)
