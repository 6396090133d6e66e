"""The DPP picture: original image | saliency map overlay | DPP-perturbed image, one row per image.

As in the FRPT paper's Fig. 1/4: where the saliency is high the inhomogeneous sampling magnifies the
image. Input uint8 ``[N, S, S, 3]``; output an RGB PNG ``(3 S) x ((N + 1/4) S)`` approximately.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from frpt.model import FRPT

__all__ = ["save_warp_grid", "warp_grid", "warp_panels"]

COLUMNS = ("original", "saliency", "DPP-perturbed")


@torch.no_grad()
def warp_panels(model: FRPT, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compute the three panels for a batch.

    Args:
        model: an FRPT model (any mode; run in eval here and restored).
        images: uint8 ``[N, S, S, 3]``.

    Returns:
        ``(original, overlay, warped)``, each uint8 ``[N, S, S, 3]``.
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        x = model.prepare(images.to(device))
        saliency, warped = model.perturb(x)
    finally:
        model.train(was_training)
    rgb = (warped * model.pixel_std + model.pixel_mean).clamp(0, 1).permute(0, 2, 3, 1)
    heat = F.interpolate(saliency, size=tuple(images.shape[1:3]), mode="bilinear", align_corners=True)[:, 0]
    lo = heat.amin(dim=(1, 2), keepdim=True)
    hi = heat.amax(dim=(1, 2), keepdim=True)
    a = ((heat - lo) / (hi - lo).clamp(min=1e-12)).unsqueeze(-1)
    colour = torch.cat((a, a * a, 0.3 * (1 - a)), dim=-1)  # dark blue -> red -> yellow
    original = images.float().cpu() / 255.0
    overlay = 0.45 * original + 0.55 * colour.cpu()

    def to_u8(t: torch.Tensor) -> np.ndarray:
        return (t.cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)

    return images.cpu().numpy().astype(np.uint8), to_u8(overlay), to_u8(rgb)


def warp_grid(model: FRPT, images: torch.Tensor) -> Image.Image:
    """A labelled grid: one row per image, columns :data:`COLUMNS`."""
    panels = warp_panels(model, images)
    n, s = images.shape[0], images.shape[1]
    header = max(14, s // 8)
    canvas = Image.new("RGB", (3 * s, header + n * s), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for col, title in enumerate(COLUMNS):
        draw.text((col * s + 4, 2), title, fill=(0, 0, 0))
        for row in range(n):
            canvas.paste(Image.fromarray(panels[col][row]), (col * s, header + row * s))
    return canvas


def save_warp_grid(model: FRPT, images: torch.Tensor, path: str | Path) -> Path:
    """Write :func:`warp_grid` as a PNG (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    warp_grid(model, images).save(path)
    return path
