"""ONNX Runtime backend: CPU by default, CUDA / TensorRT execution providers when present and asked for.

Configures itself from the ONNX file alone: its ``metadata_props``, parsed by the contract's one reader
(:class:`~frpt_runtime.contract.ExportMetadata`). Consumes uint8 ``[N, S, S, 3]`` ``images``, returns float32
``[N, D]`` ``embedding``, through IO binding (inputs bound from host memory, output copied to the host once per
batch).

A plugin-lowered graph holds the custom node ``frpt::InhomogeneousSample``; ONNX Runtime runs it through the
numpy op of :mod:`frpt_runtime.custom_ops` (onnxruntime-extensions), registered only when the session needs it.

Memory on the CPU provider: ONNX Runtime's memory-pattern planner is off and a batch runs in consecutive runs of
at most :data:`CPU_RUN_PIXELS` input pixels (8 images at 224 px). Activations then peak at a quarter of what one
batch-32 run plans (Lite0 FRPT at 224 px: ~0.28 instead of ~1.4 GiB of peak RSS), at the same throughput
(measured: a CPU gains nothing past a few images per run); GPU providers run the whole batch at once.

Devices (:mod:`frpt_runtime.devices`): ``auto``/``cpu`` run the CPU provider unless ``--providers`` names
others; ``cuda[:N]`` defaults the providers to CUDA on GPU ``N``; a GPU device with only the CPU provider, or
``cpu`` with a GPU provider, is refused, and so is a GPU ordinal this box does not have (where cuda-python can
count the GPUs; elsewhere ONNX Runtime's own error is passed on in one line).

Before the session sees the file, its external data is checked and hashed with it
(:func:`frpt_runtime.onnx_files.model_sha256`). The batch is capped at :func:`max_batch_for` images: a batch
holds ``batch x S x S`` input pixels and the activations grow with it, while a CPU gains nothing from batches
past a few dozen (``--batch-size 5000`` was killed by the OOM killer at 23 GB).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from frpt_runtime.backends.base import Backend, ModelInfo, Pending
from frpt_runtime.contract import INPUT_NAME, OUTPUT_NAME, ExportMetadata
from frpt_runtime.custom_ops import CUSTOM_OP_NAME, register_custom_ops, take_op_error
from frpt_runtime.devices import PROVIDER_NAMES, Device, parse_device
from frpt_runtime.errors import FrptError
from frpt_runtime.onnx_files import model_sha256

__all__ = [
    "BATCH_PIXEL_BUDGET",
    "CPU_RUN_PIXELS",
    "PROVIDER_ALIASES",
    "OnnxRuntimeBackend",
    "max_batch_for",
    "resolve_providers",
]

# Input pixels per ONNX Runtime run on the CPU provider: 8 images at 224 px (24 at 128 px, 2 at 448 px).
CPU_RUN_PIXELS = 8 * 224 * 224

# Input pixels per batch: 256 images at 224 px (64 at 448 px, 3136 at 64 px).
BATCH_PIXEL_BUDGET = 256 * 224 * 224

_FULL_NAMES = (
    "CPUExecutionProvider",
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "TensorrtExecutionProvider",
)
PROVIDER_ALIASES = dict(zip(PROVIDER_NAMES, _FULL_NAMES, strict=True))
_GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def max_batch_for(input_size: int) -> int:
    """The largest batch the ONNX Runtime backend takes for ``S = input_size``: ``BATCH_PIXEL_BUDGET // S**2``."""
    return max(1, BATCH_PIXEL_BUDGET // (input_size * input_size))


def _check_gpu_ordinal(device: Device, providers: list[Any]) -> None:
    """Refuse ``cuda:N`` past the GPUs present, when a GPU provider is used and cuda-python can count them."""
    if not any(isinstance(item, tuple) for item in providers):
        return
    from frpt_runtime import cuda_memory

    try:
        count = cuda_memory.device_count()
    except FrptError:  # no cuda-python or no driver here: ONNX Runtime reports the device itself
        return
    if device.ordinal >= count:
        raise FrptError(
            f"--device {device}: CUDA device {device.ordinal} does not exist ({count} present): "
            f"pass --device cuda:0..{count - 1}"
        )


def _import_onnxruntime() -> Any:
    return importlib.import_module("onnxruntime")  # a missing module names its extra (cli_common.run_command)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def resolve_providers(names: Sequence[str], available: Sequence[str], device: Device) -> list[Any]:
    """Map user provider names (``cpu``, ``cuda``, ``tensorrt`` or full ORT names) to ORT's list.

    Args:
        names: requested providers in priority order; empty means CUDA for a ``cuda[:N]`` device, else CPU.
        available: ``onnxruntime.get_available_providers()``.
        device: the parsed ``--device``.

    Returns:
        ORT ``providers`` argument: names, or ``(name, options)`` pairs for GPU providers on ``device.ordinal``.

    Raises:
        FrptError: an unknown provider, one this onnxruntime build lacks, or providers that contradict the device.
    """
    requested = list(names) or (["cuda"] if device.kind == "cuda" else ["cpu"])
    full = [PROVIDER_ALIASES.get(raw.strip().lower(), raw.strip()) for raw in requested]
    for raw, name in zip(requested, full, strict=True):
        if name not in available:
            raise FrptError(
                f"ONNX Runtime execution provider {raw!r} is not available here (available: {', '.join(available)}); "
                "install onnxruntime-gpu for cuda/tensorrt or pass --providers cpu"
            )
    gpu = [name for name in full if name in _GPU_PROVIDERS]
    if device.kind == "cpu" and gpu:
        raise FrptError(f"--device cpu contradicts --providers {','.join(requested)}: drop one of them")
    if device.kind == "cuda" and not gpu:
        raise FrptError(f"--device {device} needs a GPU provider, but --providers is {','.join(requested)}")
    return [(name, {"device_id": str(device.ordinal)}) if name in _GPU_PROVIDERS else name for name in full]


class OnnxRuntimeBackend(Backend):
    """An ``InferenceSession`` over one exported ONNX file.

    Args:
        path: the ``.onnx`` file.
        providers: provider names in priority order; see :func:`resolve_providers`.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        threads: intra-op threads (None: ONNX Runtime's default, one per physical core).
    """

    name = "onnxruntime"

    def __init__(
        self, path: str | Path, *, providers: Sequence[str] = (), device: str = "auto", threads: int | None = None
    ) -> None:
        super().__init__(path)
        self.providers = list(providers)
        self.device = parse_device(device)
        self.threads = threads
        self._session: Any = None
        self._run_images = 0  # images per run; 0: the whole batch at once (GPU providers)

    def _activate(self) -> ModelInfo:
        ort = _import_onnxruntime()
        providers = resolve_providers(self.providers, ort.get_available_providers(), self.device)
        _check_gpu_ordinal(self.device, providers)
        digest = model_sha256(self.path)  # checks the external data before ONNX Runtime opens any of it
        self._session = self._create_session(ort, providers)
        metadata = ExportMetadata.from_props(dict(self._session.get_modelmeta().custom_metadata_map), self.path)
        size = metadata.config.input_size
        if self._session.get_providers()[0] == "CPUExecutionProvider":
            self._run_images = max(1, CPU_RUN_PIXELS // size**2)
        return ModelInfo(
            path=self.path,
            sha256=digest,
            backend=self.name,
            metadata=metadata,
            embedding_dim=self._embedding_dim(size),
            max_batch=max_batch_for(size),
            detail=(("providers", ",".join(self._session.get_providers())), ("onnxruntime", ort.__version__)),
            batch_hint=f" (the ONNX Runtime cap at {size} px: larger batches gain nothing and can exhaust memory)",
        )

    def _embedding_dim(self, size: int) -> int:
        """Check the graph's I/O against the contract and the metadata; return ``D`` (probed if symbolic)."""
        inputs = {arg.name: arg for arg in self._session.get_inputs()}
        outputs = {arg.name: arg for arg in self._session.get_outputs()}
        if INPUT_NAME not in inputs or inputs[INPUT_NAME].type != "tensor(uint8)" or OUTPUT_NAME not in outputs:
            raise FrptError(
                f"{self.path}: expected input '{INPUT_NAME}' uint8 and output '{OUTPUT_NAME}': "
                "re-export with frpt-export"
            )
        shape = list(inputs[INPUT_NAME].shape)
        if len(shape) != 4 or any(
            isinstance(d, int) and d != w for d, w in zip(shape[1:], (size, size, 3), strict=True)
        ):
            raise FrptError(
                f"{self.path}: graph input '{INPUT_NAME}' is {shape} but its metadata says [N, {size}, {size}, 3] "
                "(edited metadata?): re-export with frpt-export"
            )
        dim = outputs[OUTPUT_NAME].shape[-1]
        if isinstance(dim, int):
            return dim
        probe = self._session.run([OUTPUT_NAME], {INPUT_NAME: np.zeros((1, size, size, 3), np.uint8)})[0]
        return int(probe.shape[-1])

    def _create_session(self, ort: Any, providers: list[Any]) -> Any:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT's graph-optimiser warnings are not the user's business
        options.enable_mem_pattern = False  # see the module docstring: same speed, a fraction of the peak memory
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        # decode threads share the cores: idle ORT workers must sleep, not spin
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind types (Fail, InvalidGraph, ...)
            if CUSTOM_OP_NAME not in str(exc):
                raise FrptError(f"ONNX Runtime cannot load {self.path}: {_one_line(exc)}") from None
        register_custom_ops(options, self.path)
        try:
            return ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - as above, now with the custom op known
            raise FrptError(f"ONNX Runtime cannot load {self.path}: {_one_line(exc)}") from None

    def _submit(self, images: np.ndarray) -> Pending:
        step = self._run_images or len(images)
        return Pending.done(np.concatenate([self._run(images[i : i + step]) for i in range(0, len(images), step)]))

    def _run(self, images: np.ndarray) -> np.ndarray:
        binding = self._session.io_binding()
        binding.bind_cpu_input(INPUT_NAME, np.ascontiguousarray(images))
        binding.bind_output(OUTPUT_NAME, "cpu")
        try:
            self._session.run_with_iobinding(binding)
        except Exception as exc:  # noqa: BLE001 - ORT's pybind error types: a graph that cannot run these inputs
            raise FrptError(f"ONNX Runtime failed to run {self.path.name}: {_one_line(exc)}") from None
        problem = take_op_error()
        if problem is not None:
            raise FrptError(f"{self.path.name}: {problem}: re-export the model with frpt-export")
        return binding.copy_outputs_to_cpu()[0]

    def _close(self) -> None:
        self._session = None
