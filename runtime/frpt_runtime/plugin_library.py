"""Locate and load the FRPT TensorRT plugin library (``libfrpt_plugins.so``); torch-free.

The library registers the ``InhomogeneousSample`` plugin (name ``InhomogeneousSample``, version ``1``,
namespace ``frpt``; ``plugins/README.md``) with TensorRT's plugin registry when it is loaded into the process
with ``RTLD_GLOBAL`` — the route every engine build or deserialisation of a plugin-lowered model needs.

Search order (first hit wins; an explicit choice that does not exist is an error, never silently skipped):

1. the ``path`` argument;
2. the environment variable ``FRPT_PLUGIN_LIB``;
3. the packaged location (``libfrpt_plugins.so`` beside this module), then a source checkout's
   ``plugins/build/libfrpt_plugins.so``.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from frpt_runtime.errors import FrptError

__all__ = ["ENV_VAR", "LIBRARY_NAME", "default_locations", "find_plugin_library", "load_plugin_library"]

ENV_VAR = "FRPT_PLUGIN_LIB"
LIBRARY_NAME = "libfrpt_plugins.so"
_ENTRY_POINT = "getCreators"
_REGISTERED = "frptPluginRegistered"
_BUILD_HINT = (
    "build it with `cmake -S plugins -B plugins/build && cmake --build plugins/build` "
    f"(see plugins/README.md) or set {ENV_VAR}=/path/to/{LIBRARY_NAME}"
)
_loaded: dict[Path, ctypes.CDLL] = {}


def default_locations() -> list[Path]:
    """Where the library is looked for when neither a path nor ``FRPT_PLUGIN_LIB`` is given, in order."""
    here = Path(__file__).resolve().parent
    return [here / LIBRARY_NAME, here.parents[1] / "plugins" / "build" / LIBRARY_NAME]


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


def load_plugin_library(path: str | os.PathLike | None = None) -> str:
    """Load the plugin library into the process (``RTLD_GLOBAL``) so TensorRT can find ``InhomogeneousSample``.

    Loading the same file again is a no-op.

    Args:
        path: explicit library file; else ``FRPT_PLUGIN_LIB``; else the default locations.

    Returns:
        The absolute path that was loaded.

    Raises:
        FrptError: no library found (the message lists every place tried), the file cannot be loaded
            (e.g. a missing ``libnvinfer`` or CUDA runtime), it is not the FRPT plugin library, or it loaded
            but found no TensorRT registry to register with (built without linking libnvinfer).
    """
    requested, how = _requested(path)
    lib = find_plugin_library(path)
    if lib is None:
        tried = [f"{requested} ({how})"] if requested is not None else [str(p) for p in default_locations()]
        raise FrptError(f"TensorRT plugin library {LIBRARY_NAME} not found (tried: {', '.join(tried)}); {_BUILD_HINT}")
    if lib not in _loaded:
        try:
            handle = ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
        except OSError as e:
            raise FrptError(
                f"cannot load TensorRT plugin library {lib}: {e}; check that TensorRT and the CUDA runtime it was "
                f"built against are on the library path, or rebuild it: {_BUILD_HINT}"
            ) from e
        missing = [name for name in (_ENTRY_POINT, _REGISTERED) if not hasattr(handle, name)]
        if missing:
            raise FrptError(
                f"{lib} is not the FRPT TensorRT plugin library (it exports no `{'`, `'.join(missing)}`); {_BUILD_HINT}"
            )
        registered = getattr(handle, _REGISTERED)
        registered.restype = ctypes.c_int32
        if registered() != 1:
            raise FrptError(
                f"{lib} loaded but could not register InhomogeneousSample with TensorRT: no libnvinfer was visible to "
                "it (it was built without linking libnvinfer); rebuild it where CMake finds libnvinfer "
                "(`-DTensorRT_ROOT=<TensorRT prefix>`, see plugins/README.md)"
            )
        _loaded[lib] = handle
    return str(lib)
