"""ONNX Runtime backend: CPU by default, CUDA / TensorRT execution providers when present and asked for.

Configures itself from the ONNX file alone: ``metadata_props`` ``frpt.config`` (FRPTConfig JSON),
``frpt.precision`` and ``frpt.lowering``. Consumes uint8 ``[N, S, S, 3]`` ``images``, returns float32
``[N, D]`` ``embedding``, through IO binding (inputs bound from host memory, output copied to the host
once per batch).

A plugin-lowered graph holds the custom node ``frpt::InhomogeneousSample``; ONNX Runtime runs it only
through ``frpt_export.ort_custom_op`` (onnxruntime-extensions + torch). Without torch that is a one-line
error naming the alternatives (the standard lowering, or TensorRT with the plugin library).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np

from frpt.config import FRPTConfig
from frpt.errors import FrptError
from frpt_runtime.backends.base import Backend, ModelInfo, Pending
from frpt_runtime.engine_sidecar import sha256_file

__all__ = ["OnnxRuntimeBackend", "PROVIDER_ALIASES", "metadata_facts", "resolve_providers"]

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
_CUSTOM_OP = "frpt:InhomogeneousSample"
_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def _import_onnxruntime() -> Any:
    try:
        return importlib.import_module("onnxruntime")
    except ImportError:
        raise FrptError("onnxruntime is not installed: pip install 'frpt-toolkit[onnxruntime]'") from None


def resolve_providers(names: Sequence[str], available: Sequence[str], device: int) -> list[Any]:
    """Map user provider names (``cpu``, ``cuda``, ``tensorrt`` or full ORT names) to ORT's list.

    Args:
        names: requested providers in priority order; empty means ``["cpu"]``.
        available: ``onnxruntime.get_available_providers()``.
        device: CUDA device ordinal for GPU providers.

    Returns:
        ORT ``providers`` argument: names, or ``(name, options)`` pairs for GPU providers.

    Raises:
        FrptError: an unknown provider, or one this onnxruntime build lacks.
    """
    resolved: list[Any] = []
    for raw in names or ["cpu"]:
        name = PROVIDER_ALIASES.get(raw.strip().lower(), raw.strip())
        if name not in available:
            raise FrptError(
                f"ONNX Runtime execution provider {raw!r} is not available here (available: {', '.join(available)}); "
                "install onnxruntime-gpu for cuda/tensorrt or pass --providers cpu"
            )
        resolved.append((name, {"device_id": str(device)}) if name in _GPU_PROVIDERS else name)
    return resolved


def metadata_facts(meta: dict[str, str], source: Path) -> tuple[FRPTConfig, str, str]:
    """Read ``(config, precision, lowering)`` from an ONNX export's ``metadata_props``.

    Raises:
        FrptError: a key is missing or the config does not parse (not an ``frpt-export`` file).
    """
    missing = [key for key in ("frpt.config", "frpt.precision", "frpt.lowering") if key not in meta]
    if missing:
        raise FrptError(f"{source}: no {', '.join(missing)} metadata: not written by frpt-export; re-export it")
    try:
        config = FRPTConfig.from_json(meta["frpt.config"])
    except (ValueError, TypeError) as exc:
        raise FrptError(f"{source}: unreadable frpt.config metadata ({exc}); re-export with this toolkit") from None
    return config, meta["frpt.precision"], meta["frpt.lowering"]


class OnnxRuntimeBackend(Backend):
    """An ``InferenceSession`` over one FRPT ONNX file.

    Args:
        path: the ``.onnx`` file.
        providers: provider names in priority order (default CPU); see :func:`resolve_providers`.
        device: CUDA device ordinal for GPU providers.
        threads: intra-op threads (None: ONNX Runtime's default, one per physical core).
    """

    name = "onnxruntime"

    def __init__(
        self, path: str | Path, *, providers: Sequence[str] = (), device: int = 0, threads: int | None = None
    ) -> None:
        super().__init__(path)
        self.providers = list(providers)
        self.device = device
        self.threads = threads
        self._session: Any = None

    def _activate(self) -> ModelInfo:
        ort = _import_onnxruntime()
        providers = resolve_providers(self.providers, ort.get_available_providers(), self.device)
        self._session = self._create_session(ort, providers)
        meta = dict(self._session.get_modelmeta().custom_metadata_map)
        config, precision, lowering = metadata_facts(meta, self.path)
        inputs = {arg.name: arg for arg in self._session.get_inputs()}
        outputs = {arg.name: arg for arg in self._session.get_outputs()}
        if "images" not in inputs or inputs["images"].type != "tensor(uint8)" or "embedding" not in outputs:
            raise FrptError(
                f"{self.path}: expected input 'images' uint8 and output 'embedding': re-export with frpt-export"
            )
        shape, size = list(inputs["images"].shape), config.input_size
        if len(shape) != 4 or any(isinstance(d, int) and d != w for d, w in zip(shape[1:], (size, size, 3))):
            raise FrptError(
                f"{self.path}: graph input 'images' is {shape} but its frpt.config metadata says "
                f"[N, {size}, {size}, 3] (edited metadata?): re-export with frpt-export"
            )
        dim = outputs["embedding"].shape[-1]
        if not isinstance(dim, int):
            dim = self._probe_dim(config.input_size)
        return ModelInfo(
            path=self.path,
            sha256=sha256_file(self.path),
            backend=self.name,
            config=config,
            precision=precision,
            lowering=lowering,
            embedding_dim=dim,
            detail=(("providers", ",".join(self._session.get_providers())), ("onnxruntime", ort.__version__)),
        )

    def _create_session(self, ort: Any, providers: list[Any]) -> Any:
        options = ort.SessionOptions()
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        # decode threads share the cores: idle ORT workers must sleep, not spin
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind types (Fail, InvalidGraph, ...)
            if _CUSTOM_OP not in str(exc):
                raise FrptError(f"ONNX Runtime cannot load {self.path}: {' '.join(str(exc).split())}") from None
        _register_custom_op(options, self.path)
        return ort.InferenceSession(str(self.path), options, providers=providers)

    def _probe_dim(self, size: int) -> int:
        out = self._session.run(["embedding"], {"images": np.zeros((1, size, size, 3), np.uint8)})[0]
        return int(out.shape[-1])

    def _submit(self, images: np.ndarray) -> Pending:
        binding = self._session.io_binding()
        binding.bind_cpu_input("images", images)
        binding.bind_output("embedding", "cpu")
        self._session.run_with_iobinding(binding)
        return Pending.done(binding.copy_outputs_to_cpu()[0])

    def _close(self) -> None:
        self._session = None


def _register_custom_op(options: Any, path: Path) -> None:
    """Make ``frpt::InhomogeneousSample`` known to ONNX Runtime through the exporter's onnxruntime-extensions op."""
    try:
        custom = importlib.import_module("frpt_export.ort_custom_op")
        custom.register_custom_op()
        extensions = importlib.import_module("onnxruntime_extensions")
    except ImportError as exc:
        raise FrptError(
            f"{path} uses the plugin lowering (custom op frpt::InhomogeneousSample), which ONNX Runtime runs only "
            f"with frpt_export + torch + onnxruntime-extensions ({exc.name or exc} is missing here): export with the "
            "standard lowering, or run the engine with TensorRT and the plugin library"
        ) from None
    options.register_custom_ops_library(extensions.get_library_path())
