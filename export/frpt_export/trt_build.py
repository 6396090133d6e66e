"""ONNX -> serialised TensorRT engine (``.plan``) plus its sidecar ``<plan>.json`` (torch-free).

One code path for every builder: ``tensorrt`` (10.x, 11.x) when importable, else ``tensorrt_rtx``
(builds on a CPU-only machine; no plugins). The network is strongly typed (the flag is set where the
module has it; TensorRT 11.x and RTX are strongly typed only), so FP16 comes from the fp16 ONNX graph,
never from a builder flag. The ONNX parser's errors are printed in full and any error fails the build.
One optimisation profile spans the batch range on ``images``; a timing cache file is loaded and saved
back when given (TensorRT-RTX has none: its timing-cache calls are no-ops, so the option is ignored
there with a note). A plugin-lowered graph loads ``libfrpt_plugins`` first. Plan and sidecar are written
atomically (temp file, then rename).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from frpt import __version__
from frpt.errors import FrptError
from frpt_export.onnx_meta import read_graph_facts
from frpt_runtime.engine_sidecar import EngineSidecar, sha256_file, sidecar_path, write_sidecar
from frpt_runtime.manifest import atomic_write
from frpt_runtime.trt_module import import_tensorrt

__all__ = ["BuildReport", "build_engine"]

BUILDER_HINT = "pip install 'frpt-toolkit[tensorrt-rtx]' (a CPU-capable builder) or install TensorRT for your platform"


@dataclass(frozen=True)
class BuildReport:
    """What was built.

    Attributes:
        plan_path, sidecar_path: files written.
        trt_flavour, trt_version: the builder module and its version.
        precision, lowering: of the source graph.
        min_batch, opt_batch, max_batch: the profile.
        plan_bytes: serialised engine size.
        timing_cache: the cache file used, or ``None``.
        seconds: build wall time.
    """

    plan_path: str
    sidecar_path: str
    trt_flavour: str
    trt_version: str
    precision: str
    lowering: str
    min_batch: int
    opt_batch: int
    max_batch: int
    plan_bytes: int
    timing_cache: str | None
    seconds: float

    def __bool__(self) -> bool:
        return self.plan_bytes > 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BuildReport":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def _gpu() -> tuple[str | None, str | None]:
    """``(name, "major.minor")`` of CUDA device 0, or ``(None, None)`` on a machine without a usable GPU."""
    try:
        from frpt_runtime import cuda_memory

        return cuda_memory.device_name(0), cuda_memory.compute_capability(0)
    except (FrptError, ImportError, OSError, RuntimeError):
        return None, None


def _check_batches(min_batch: int, opt_batch: int, max_batch: int) -> None:
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise FrptError(
            f"batch range must satisfy 1 <= --min-batch <= --opt-batch <= --max-batch, "
            f"got {min_batch}/{opt_batch}/{max_batch}"
        )


def _parse(trt: ModuleType, builder, onnx_path: Path, logger):
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(onnx_path))
    errors = [parser.get_error(i) for i in range(parser.num_errors)]
    if errors or not ok:
        for i, err in enumerate(errors):
            print(
                f"[parser error {i + 1}/{len(errors)}] node {err.node()} {err.node_name()!r} "
                f"({err.node_operator()}): {err.desc()} [{err.file()}:{err.line()} {err.func()}]",
                file=sys.stderr,
            )
        first = errors[0].desc().splitlines()[0] if errors else "parser returned failure"
        first_node = f" at node {errors[0].node_name()!r} ({errors[0].node_operator()})" if errors else ""
        raise FrptError(f"TensorRT's ONNX parser rejected {onnx_path} with {len(errors)} error(s){first_node}: {first}")
    return network, parser


def build_engine(
    onnx_path: str | os.PathLike,
    plan_path: str | os.PathLike,
    min_batch: int = 1,
    opt_batch: int = 32,
    max_batch: int = 64,
    workspace_mib: int | None = None,
    timing_cache: str | os.PathLike | None = None,
    plugin_lib: str | os.PathLike | None = None,
) -> BuildReport:
    """Build a serialised engine from an exported FRPT graph.

    Args:
        onnx_path: graph written by ``frpt-export onnx`` (its metadata names precision and lowering).
        plan_path: the ``.plan`` to write; the sidecar goes to ``<plan>.json``.
        min_batch, opt_batch, max_batch: the optimisation profile on ``images``.
        workspace_mib: builder workspace limit in MiB (TensorRT's default when ``None``).
        timing_cache: file to load the timing cache from (if it exists) and save it back to.
        plugin_lib: ``libfrpt_plugins.so`` for a plugin-lowered graph (else ``FRPT_PLUGIN_LIB`` / default places).

    Returns:
        The :class:`BuildReport`.

    Raises:
        FrptError: no builder, bad batch range, unreadable graph, parser errors, plugin graph under
            TensorRT-RTX or without the library, or a failed build. Nothing is written at ``plan_path`` then.
    """
    start = time.perf_counter()
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    _check_batches(min_batch, opt_batch, max_batch)
    meta, plugin_required = read_graph_facts(onnx_path)
    model_config = json.loads(meta["frpt.config"])
    size = model_config["input_size"]
    trt, flavour = import_tensorrt(BUILDER_HINT)
    if plugin_required:
        if flavour == "tensorrt_rtx":
            raise FrptError(
                "TensorRT-RTX has no plugin support, so it cannot build the plugin-lowered graph: export with "
                "`frpt-export onnx --lowering standard`, or build on a box with full TensorRT"
            )
        from frpt_runtime.plugin_library import load_plugin_library

        load_plugin_library(None if plugin_lib is None else str(plugin_lib))

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, onnx_path, logger)
    config = builder.create_builder_config()
    if workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    profile = builder.create_optimization_profile()
    shape = (size, size, 3)
    profile.set_shape("images", (min_batch, *shape), (opt_batch, *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)

    cache_path = None if timing_cache is None else Path(timing_cache)
    if cache_path is not None and flavour == "tensorrt_rtx":
        print(f"note: TensorRT-RTX keeps no timing cache; ignoring --timing-cache {cache_path}", file=sys.stderr)
        cache_path = None
    if cache_path is not None:
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise FrptError(f"TensorRT could not build an engine from {onnx_path}: see the builder log above")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(plan_path, lambda handle: handle.write(memoryview(plan)))
    if cache_path is not None:
        timing = memoryview(config.get_timing_cache().serialize())
        atomic_write(cache_path, lambda handle: handle.write(timing))

    gpu_name, capability = _gpu()
    sidecar = EngineSidecar(
        config=model_config,
        precision=meta["frpt.precision"],
        lowering=meta["frpt.lowering"],
        trt_flavour=flavour,
        trt_version=trt.__version__,
        gpu_name=gpu_name,
        compute_capability=capability,
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        onnx_sha256=sha256_file(onnx_path),
        plan_sha256=sha256_file(plan_path),
        toolkit_version=__version__,
        plugin_required=plugin_required,
    )
    write_sidecar(plan_path, sidecar)
    return BuildReport(
        plan_path=str(plan_path),
        sidecar_path=str(sidecar_path(plan_path)),
        trt_flavour=flavour,
        trt_version=trt.__version__,
        precision=sidecar.precision,
        lowering=sidecar.lowering,
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        plan_bytes=plan_path.stat().st_size,
        timing_cache=None if cache_path is None else str(cache_path),
        seconds=time.perf_counter() - start,
    )
