"""Build hook (all other metadata is in pyproject.toml): the TensorRT plugin's CMake project goes into the wheel.

``plugins/`` stays a top-level folder of the repository (DESIGN: the plugin is its own part, built with CMake);
a wheel carries the part a user needs to build it where it runs, as ``frpt_export/plugin_sources/``, which
``frpt-export build-plugin`` configures and builds: the CMake project, the sources and linker version scripts it
compiles, its README, and the C++ contract harness it builds by default (``tests/pluginContractTest.cpp`` and
its two headers, to check the plugin on the target). The CPU emulation harness and the stub libnvinfer stay in
the sdist: only the pytest suite drives them. An editable install builds from ``plugins/`` itself.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PLUGIN_DIR = Path("plugins")
WHEEL_DIR = Path("frpt_export", "plugin_sources")
SHIPPED = ("CMakeLists.txt", "README.md", "*.h", "*.cpp", "*.cu", "*.map", "tests/pluginContractTest.cpp")
SHIPPED += ("tests/recordingRegistry.h", "tests/sampleTestInputs.h")


class BuildPyWithPluginSources(build_py):
    """``build_py`` that also copies the shipped plugin files into the package being built."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for source in sorted({path for pattern in SHIPPED for path in PLUGIN_DIR.glob(pattern)}):
            target = Path(self.build_lib) / WHEEL_DIR / source.relative_to(PLUGIN_DIR)
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildPyWithPluginSources})
