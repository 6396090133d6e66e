"""Plugin engines in a Triton model repository: the plugin library and its dlopen loader, beside the model.

Triton's TensorRT backend loads plugin libraries with a plain ``dlopen`` -- ``--backend-config=tensorrt,plugins=A.so;
B.so`` or ``LD_PRELOAD`` -- and expects each to register its plugins on load; ``config.pbtxt`` cannot name them.
``libfrpt_plugins.so`` registers only through TensorRT's registry (``IPluginRegistry::loadLibrary``), so the library
Triton is given is ``libfrpt_plugins_autoload.so`` (``plugins/frptPluginsAutoload.h``): on load it checks the running
TensorRT's major against both libraries' and registers ``libfrpt_plugins.so`` -- the file beside it -- through the
registry. Both are copied into the model folder (files, not a folder: Triton warns about non-numeric folders there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from frpt_runtime.errors import FrptError
from frpt_runtime.plugin_library import AUTOLOAD_NAME, LIBRARY_NAME, built_tensorrt_version, find_plugin_library

__all__ = ["CONTAINER_ROOT", "TritonPlugin", "backend_config", "find_triton_plugin", "ld_preload"]

CONTAINER_ROOT = "/models"  # where the serve command mounts the repository
_REBUILD = "frpt-export build-plugin --tensorrt-root <TensorRT {major}.x prefix>"


@dataclass(frozen=True)
class TritonPlugin:
    """The two libraries a plugin engine needs in Triton.

    Attributes:
        library: ``libfrpt_plugins.so`` (the plugin).
        autoload: ``libfrpt_plugins_autoload.so`` beside it (what Triton loads).
        built: the TensorRT (major, minor) the plugin library was built against.
    """

    library: Path
    autoload: Path
    built: tuple[int, int]


def find_triton_plugin(plugin_lib: Path | None, plan: Path, plan_trt_version: str) -> TritonPlugin:
    """The plugin library (``--plugin-lib``, ``$FRPT_PLUGIN_LIB``, the default search) with its autoload library,
    checked against the TensorRT major that built the plan.

    Raises:
        FrptError: no plugin library, no autoload library beside it, not the FRPT plugin library, or built for
            another TensorRT major than the plan -- one line each.
    """
    library = find_plugin_library(plugin_lib)
    major = re.match(r"\d+", plan_trt_version)
    plan_major = int(major.group()) if major else 0
    if library is None:
        raise FrptError(
            f"{plan} needs the FRPT TensorRT plugin and no {LIBRARY_NAME} was found (--plugin-lib, $FRPT_PLUGIN_LIB, "
            f"then the default search): build it with `{_REBUILD.format(major=plan_major)}` or pass --plugin-lib"
        )
    autoload = library.parent / AUTOLOAD_NAME
    if not autoload.is_file():
        raise FrptError(
            f"{autoload} is missing: Triton only dlopens plugin libraries, and {AUTOLOAD_NAME} (built beside "
            f"{LIBRARY_NAME} by frpt-export build-plugin) is what registers the plugin there; rebuild with "
            f"`{_REBUILD.format(major=plan_major)}`"
        )
    built = built_tensorrt_version(library)
    if built[0] != plan_major:
        raise FrptError(
            f"{library} was built against TensorRT {built[0]}.{built[1]} but {plan} was built with TensorRT "
            f"{plan_trt_version}; plugin interfaces differ between TensorRT majors: rebuild it with "
            f"`{_REBUILD.format(major=plan_major)}`"
        )
    return TritonPlugin(library, autoload, built)


def backend_config(model_name: str) -> str:
    """``tritonserver``'s option that loads the autoload library copied into the model folder."""
    return f"--backend-config=tensorrt,plugins={CONTAINER_ROOT}/{model_name}/{AUTOLOAD_NAME}"


def ld_preload(model_name: str) -> str:
    """The ``LD_PRELOAD`` alternative, as a prefix of the ``tritonserver`` command (``env ...``: only tritonserver
    gets it, not every process of the container as ``docker run -e`` would)."""
    return f"env LD_PRELOAD={CONTAINER_ROOT}/{model_name}/{AUTOLOAD_NAME}"
