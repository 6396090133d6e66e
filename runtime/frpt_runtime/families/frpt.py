"""The FRPT family's model configuration as data: one frozen dataclass, saved as JSON beside checkpoints, ONNX
files and engines (the metadata key ``frpt.config``).

Torch-free on purpose: the runtime (no torch on an edge box) configures itself from this JSON. The names the
choices may take (backbones with the pixel statistics their weights expect, DPP variants, poolings) and the
input-size limit live here once; the model package registers one factory per backbone name listed here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from frpt_runtime.families.record import ConfigRecord
from frpt_runtime.fields import FieldError, check_fields, choice, integer, number, sequence, string

__all__ = [
    "BACKBONES",
    "BACKBONE_PIXEL_STATS",
    "DECODERS",
    "DPP_TAP_STRIDE",
    "DPP_VARIANTS",
    "MAX_INPUT_SIZE",
    "MIN_INPUT_SIZE",
    "POOLINGS",
    "FRPTConfig",
]

# Backbone name -> (mean, std) over [0, 1] RGB that its pretrained weights expect.
BACKBONE_PIXEL_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "efficientnet_lite0": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "resnet50": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
BACKBONES = tuple(BACKBONE_PIXEL_STATS)
# DPP variant -> the output stride of the backbone tap its content parser reads.
DPP_TAP_STRIDE = {"released": 16, "paper": 4}
DPP_VARIANTS = tuple(DPP_TAP_STRIDE)
POOLINGS = ("avg", "gem")
# How images are decoded to the model input (frpt_runtime.images.load_image): "exact" = torchvision's
# Resize + CenterCrop of the fully decoded image; "fast" = JPEG DCT-domain draft to >= 2x the resize target, then
# only the crop box resized. Files written before the field existed were decoded "exact" and are read so.
DECODERS = ("exact", "fast")
# Smallest input side of a NEW model (frpt-train): the stride-32 backbones leave a 1x1 final map at 32 px, whose
# InstanceNorm normalises to zeros (CAH loses its second branch) and which the ONNX export cannot trace; 64 px
# keeps 2x2. Reading a config accepts any positive size, so files made before this limit keep working.
MIN_INPUT_SIZE = 64
# Largest model input side: a config read from a file may not make the runtime allocate unbounded batches.
MAX_INPUT_SIZE = 4096


@dataclass(frozen=True)
class FRPTConfig(ConfigRecord):
    """Everything needed to rebuild an FRPT model (weights aside) and to feed it.

    Attributes:
        backbone: registry name of the frozen backbone (``efficientnet_lite0`` | ``resnet50``).
        input_size: square model input side in pixels (the runtime resizes + centre-crops to it).
        crop_pct: centre-crop fraction: resize the shorter side to ``input_size / crop_pct``, then crop.
        decoder: ``fast`` (default; JPEG draft + crop-box resize) or ``exact`` (torchvision's pixels); training,
            the reference bundle and every runtime decode with it (:data:`DECODERS`).
        pixel_mean, pixel_std: per-channel normalisation of ``[0, 1]`` RGB, applied inside the model.
        dpp_variant: ``released`` (tap after stage 3 / stride 16, ReLU, 1x1 conv; default, cheap) or
            ``paper`` (tap after block 1 / stride 4, sigma x sigma content-aware conv, sigma = 31).
        grid: saliency grid side ``g``.
        pad: replication padding ``p`` (Gaussian support ``2p+1``).
        fwhm: Gaussian full width at half maximum, in grid cells.
        paper_kernel: sigma of the paper variant's content-aware kernel.
        cah_reduction: SE reduction ratio ``r`` of the category-specific awareness head (paper 8).
        pooling: ``avg`` (paper) or ``gem`` (released code, with a BN neck).
        gem_p: initial GeM exponent.
        embedding_dim: width ``D`` of an optional trainable linear projection after pooling; 0 (paper)
            means none, ``D`` = the backbone's feature channels.
        num_classes: classifier outputs.
        class_names: training class names (may be empty).
        label_smoothing: cross-entropy label smoothing.
    """

    family: ClassVar[str] = "frpt"

    backbone: str = "efficientnet_lite0"
    input_size: int = 224
    crop_pct: float = 0.875
    decoder: str = "fast"
    pixel_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    pixel_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    dpp_variant: str = "released"
    grid: int = 31
    pad: int = 30
    fwhm: float = 13.0
    paper_kernel: int = 31
    cah_reduction: int = 8
    pooling: str = "avg"
    gem_p: float = 3.0
    embedding_dim: int = 0
    num_classes: int = 100
    class_names: tuple[str, ...] = field(default_factory=tuple)
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        try:
            check_fields(dataclasses.asdict(self), _SPEC)
        except FieldError as exc:
            raise ValueError(str(exc)) from None


# The type and range of every field, checked on construction (so also on every config read from a file).
_SPEC = {
    "backbone": choice(BACKBONES),
    "input_size": integer(1, MAX_INPUT_SIZE),  # MIN_INPUT_SIZE binds new models only (frpt.train)
    "crop_pct": number(0, 1, low_open=True),
    "decoder": choice(DECODERS),
    "pixel_mean": sequence(number(), length=3),
    "pixel_std": sequence(number(0, low_open=True), length=3),
    "dpp_variant": choice(DPP_VARIANTS),
    "grid": integer(2, 1024),
    "pad": integer(0, 1024),
    "fwhm": number(0, low_open=True),
    "paper_kernel": integer(1, 1024),
    "cah_reduction": integer(1),
    "pooling": choice(POOLINGS),
    "gem_p": number(0, low_open=True),
    "embedding_dim": integer(0, 65536),
    "num_classes": integer(1),
    "class_names": sequence(string()),
    "label_smoothing": number(0, 1, high_open=True),
}
