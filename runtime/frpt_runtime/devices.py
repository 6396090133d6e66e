"""The one ``--device`` scheme every command accepts: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (torch-free).

* ``frpt-train`` / ``frpt-eval``: ``auto`` is CUDA when torch sees a GPU, else the CPU.
* ``frpt-embed`` / ``frpt-verify`` with ``--onnx``: ``auto`` and ``cpu`` run ONNX Runtime's CPU provider (unless
  ``--providers`` says otherwise); ``cuda[:N]`` selects the CUDA provider on GPU ``N`` (default 0).
* with ``--engine`` (TensorRT): ``auto`` and ``cuda`` mean GPU 0, ``cuda:N`` GPU ``N``; ``cpu`` is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from frpt_runtime.errors import FrptError

__all__ = ["DEVICE_HELP", "PROVIDER_NAMES", "Device", "parse_device"]

DEVICE_HELP = "auto, cpu, cuda or cuda:N (GPU N)."
PROVIDER_NAMES = ("cpu", "cuda", "tensorrt", "trt")  # --providers short names (ONNX Runtime execution providers)
_PATTERN = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


@dataclass(frozen=True)
class Device:
    """A parsed ``--device``.

    Attributes:
        kind: ``auto``, ``cpu`` or ``cuda``.
        index: the GPU ordinal given with ``cuda:N``; ``None`` when none was given.
    """

    kind: str
    index: int | None = None

    @property
    def ordinal(self) -> int:
        """The GPU ordinal to use when this device means a GPU (0 unless ``cuda:N`` said otherwise)."""
        return 0 if self.index is None else self.index

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


def parse_device(text: str) -> Device:
    """Parse a ``--device`` value.

    Raises:
        FrptError: anything but ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` with N >= 0.
    """
    match = _PATTERN.match(text.strip().lower())
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise FrptError(f"--device {text!r} is not one of auto, cpu, cuda, cuda:N")
    index = match.group(2)
    return Device(match.group(1), None if index is None else int(index))
