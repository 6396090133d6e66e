"""ONNX -> serialised TensorRT engine (``.plan``) plus its sidecar ``<plan>.json`` (torch-free).

One code path for every builder: ``tensorrt`` (10.x, 11.x) when importable, else ``tensorrt_rtx``
(builds on a CPU-only machine; no plugins). The network is strongly typed (the flag is set where the
module has it; TensorRT 11.x and RTX are strongly typed only), so FP16 comes from the fp16 ONNX graph,
never from a builder flag. The ONNX parser's errors are printed in full and any error fails the build.
One optimisation profile spans the batch range on ``images``; a timing cache file is loaded and saved
back when given (TensorRT-RTX has none: its timing-cache calls are no-ops, so the option is ignored
there with a note). A plugin-lowered graph loads ``libfrpt_plugins`` first. The graph's external data locations
are checked before the parser sees it (:func:`frpt_export.onnx_meta.read_graph_facts`). Plan and sidecar are
written atomically (temp file, then rename); the sidecar links plan -> ONNX model hash (external data included)
-> the reference bundle made for that model.
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

from frpt_export.onnx_meta import GraphFacts, read_graph_facts
from frpt_runtime import __version__
from frpt_runtime.atomic import atomic_write
from frpt_runtime.bundle import load_bundle
from frpt_runtime.contract import INPUT_NAME, bundle_path_for, sidecar_path_for
from frpt_runtime.digests import sha256_file
from frpt_runtime.engine_sidecar import EngineSidecar, write_sidecar
from frpt_runtime.errors import FrptError
from frpt_runtime.trt_module import import_tensorrt

__all__ = ["BatchProfile", "BuildReport", "build_engine"]

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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def format(self) -> str:
        """Two human lines: the engine and its sidecar."""
        return (
            f"engine  {self.plan_path}: {self.plan_bytes / 2**20:.1f} MiB, {self.precision}, {self.lowering} lowering, "
            f"{self.trt_flavour} {self.trt_version}, batch {self.min_batch}/{self.opt_batch}/{self.max_batch} "
            f"({self.seconds:.1f} s)\nsidecar {self.sidecar_path}"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildReport:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def _gpu() -> tuple[str | None, str | None]:
    """``(name, "major.minor")`` of CUDA device 0, or ``(None, None)`` on a machine without a usable GPU."""
    try:
        from frpt_runtime import cuda_memory

        return cuda_memory.device_name(0), cuda_memory.compute_capability(0)
    except (FrptError, ImportError, OSError, RuntimeError):
        return None, None


@dataclass(frozen=True)
class BatchProfile:
    """The optimisation profile on ``images``: smallest, tuned-for and largest batch."""

    min_batch: int = 1
    opt_batch: int = 32
    max_batch: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise FrptError(
                f"batch range must satisfy 1 <= --min-batch <= --opt-batch <= --max-batch, "
                f"got {self.min_batch}/{self.opt_batch}/{self.max_batch}"
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


def _load_plugin_if_needed(
    facts: GraphFacts, trt: ModuleType, flavour: str, plugin_lib: str | os.PathLike | None
) -> None:
    if not facts.plugin_required:
        return
    if flavour == "tensorrt_rtx":
        raise FrptError(
            "TensorRT-RTX has no plugin support, so it cannot build the plugin-lowered graph: export with "
            "`frpt-export onnx --lowering standard`, or build on a box with full TensorRT"
        )
    from frpt_runtime.plugin_library import load_plugin_library

    load_plugin_library(plugin_lib, trt=trt)  # through this TensorRT's registry, version-checked


def _timing_cache(flavour: str, timing_cache: str | os.PathLike | None) -> Path | None:
    """The timing cache file to use (TensorRT-RTX keeps none: a given file is ignored with a note)."""
    if timing_cache is None:
        return None
    if flavour == "tensorrt_rtx":
        print(f"note: TensorRT-RTX keeps no timing cache; ignoring --timing-cache {timing_cache}", file=sys.stderr)
        return None
    return Path(timing_cache)


def _builder_config(trt: ModuleType, builder, size: int, profile: BatchProfile, workspace_mib, cache_path):
    config = builder.create_builder_config()
    if workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    shapes = builder.create_optimization_profile()
    shape = (size, size, 3)
    shapes.set_shape(INPUT_NAME, (profile.min_batch, *shape), (profile.opt_batch, *shape), (profile.max_batch, *shape))
    config.add_optimization_profile(shapes)
    if cache_path is not None:
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return config


def _linked_bundle(onnx_path: Path, onnx_sha256: str) -> str | None:
    """SHA-256 of the reference bundle beside ``onnx_path`` when it was made for that model, else ``None``."""
    path = bundle_path_for(onnx_path)
    try:
        bundle = load_bundle(path)
    except FrptError:
        return None
    return sha256_file(path) if bundle.model_sha256 == onnx_sha256 else None


def _sidecar(facts: GraphFacts, flavour: str, trt: ModuleType, profile: BatchProfile, onnx_path: Path, plan_path: Path):
    gpu_name, capability = _gpu()
    return EngineSidecar(
        onnx_metadata=facts.props,
        trt_flavour=flavour,
        trt_version=trt.__version__,
        gpu_name=gpu_name,
        compute_capability=capability,
        min_batch=profile.min_batch,
        opt_batch=profile.opt_batch,
        max_batch=profile.max_batch,
        onnx_sha256=facts.sha256,
        bundle_sha256=_linked_bundle(onnx_path, facts.sha256),
        plan_sha256=sha256_file(plan_path),
        toolkit_version=__version__,
        plugin_required=facts.plugin_required,
    )


def build_engine(
    onnx_path: str | os.PathLike,
    plan_path: str | os.PathLike,
    profile: BatchProfile = BatchProfile(),
    workspace_mib: int | None = None,
    timing_cache: str | os.PathLike | None = None,
    plugin_lib: str | os.PathLike | None = None,
) -> BuildReport:
    """Build a serialised engine from an exported graph.

    Args:
        onnx_path: graph written by ``frpt-export onnx`` (its metadata names precision and lowering).
        plan_path: the ``.plan`` to write; the sidecar goes to ``<plan>.json``.
        profile: the optimisation profile on ``images``.
        workspace_mib: builder workspace limit in MiB (TensorRT's default when ``None``).
        timing_cache: file to load the timing cache from (if it exists) and save it back to.
        plugin_lib: ``libfrpt_plugins.so`` for a plugin-lowered graph (else ``FRPT_PLUGIN_LIB`` / default places).

    Returns:
        The :class:`BuildReport`.

    Raises:
        FrptError: no builder, unreadable graph, parser errors, plugin graph under TensorRT-RTX or without the
            library, or a failed build. Nothing is written at ``plan_path`` then.
    """
    start = time.perf_counter()
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    facts = read_graph_facts(onnx_path)
    trt, flavour = import_tensorrt(BUILDER_HINT)
    _load_plugin_if_needed(facts, trt, flavour, plugin_lib)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, onnx_path, logger)
    cache_path = _timing_cache(flavour, timing_cache)
    config = _builder_config(trt, builder, facts.metadata.config.input_size, profile, workspace_mib, cache_path)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise FrptError(f"TensorRT could not build an engine from {onnx_path}: see the builder log above")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(plan_path, lambda handle: handle.write(memoryview(plan)))
    if cache_path is not None:
        timing = memoryview(config.get_timing_cache().serialize())
        atomic_write(cache_path, lambda handle: handle.write(timing))
    sidecar = _sidecar(facts, flavour, trt, profile, onnx_path, plan_path)
    write_sidecar(plan_path, sidecar)
    return BuildReport(
        plan_path=str(plan_path),
        sidecar_path=str(sidecar_path_for(plan_path)),
        trt_flavour=flavour,
        trt_version=trt.__version__,
        precision=facts.metadata.precision.value,
        lowering=facts.metadata.lowering.value,
        min_batch=profile.min_batch,
        opt_batch=profile.opt_batch,
        max_batch=profile.max_batch,
        plan_bytes=plan_path.stat().st_size,
        timing_cache=None if cache_path is None else str(cache_path),
        seconds=time.perf_counter() - start,
    )
