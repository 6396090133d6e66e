"""The standard lowering's grid at every clamp, and the plugin graph's custom domain (issue 15, mutation part).

A saliency peak in each corner of the ``g x g`` lattice drives both grid channels to both clamps (-1 and +1);
the MatMul form must agree with the PyTorch reference there too, not only where the clamp is inactive.
"""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from frpt.sampling import coarse_grid, upsample_grid
from frpt_export.lowering import PluginSampler, make_sampler
from frpt_export.onnx_export import _trace
from frpt_runtime.contract import Lowering

G, PAD, FWHM, H, W = 11, 10, 5.0, 24, 20
CORNERS = [(0, 0), (0, G - 1), (G - 1, 0), (G - 1, G - 1)]


def _corner_saliency() -> torch.Tensor:
    logits = torch.zeros(len(CORNERS), G * G, dtype=torch.float64)
    for n, (i, j) in enumerate(CORNERS):
        logits[n, i * G + j] = 14.0
    return torch.softmax(logits, dim=1).view(-1, 1, G, G)


def test_matmul_grid_matches_the_reference_at_both_clamps_of_both_channels():
    sal = _corner_saliency()
    exact = upsample_grid(coarse_grid(sal, PAD, FWHM), (H, W))
    grid = make_sampler(Lowering.standard, G, PAD, FWHM, (H, W)).grid(sal.float()).double()
    assert (grid - exact).abs().max().item() <= 1e-6
    for channel in (0, 1):  # x, y: each reaches -1 and +1 somewhere (the clamp is active)
        assert exact[..., channel].max().item() == 1.0 and exact[..., channel].min().item() == -1.0
        assert grid[..., channel].max().item() == 1.0 and grid[..., channel].min().item() == -1.0


class _PluginGraph(nn.Module):
    """uint8 ``[N, S, S, 3]`` -> ``[N, 3 * S * S]``: the plugin sampler on a uniform saliency (a traceable toy)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.sampler = PluginSampler(2, 3.0, (size, size))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0
        saliency = torch.full((x.shape[0], 1, 4, 4), 1.0 / 16.0)
        return self.sampler(x, saliency).flatten(1)


@pytest.mark.filterwarnings("ignore")
def test_the_plugin_graph_imports_the_frpt_domain_at_version_1():
    """The custom domain's version in the exported graph (the plugin is registered as frpt::InhomogeneousSample v1)."""
    proto = _trace(_PluginGraph(8).eval(), 8, 17, Lowering.plugin)
    assert {o.domain: o.version for o in proto.opset_import} == {"": 17, "frpt": 1}
    assert [n.op_type for n in proto.graph.node if n.domain == "frpt"] == ["InhomogeneousSample"]
    onnx.checker.check_model(proto)


class _TinyBackbone(nn.Module):
    """``forward_tap`` / ``forward_features`` of a backbone, each a 1x1 conv: ``[N, 3, S, S]`` -> ``[N, 4, S, S]``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.tap = nn.Conv2d(3, 4, 1)
        self.features = nn.Conv2d(3, 4, 1)

    def forward_tap(self, x: torch.Tensor) -> torch.Tensor:
        return self.tap(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@pytest.mark.parametrize("half_tap", [True, False])
def test_half_backbone_runs_the_full_pass_in_half_and_the_tap_as_asked(half_tap):
    from frpt_export.lowering import HalfBackbone

    trained = _TinyBackbone()
    half = HalfBackbone(trained, half_tap=half_tap)
    assert isinstance(half, nn.Module) and trained.features.weight.dtype == torch.float32  # copied, not changed
    x = torch.rand(2, 3, 5, 5)
    features = half.forward_features(x)
    assert features.dtype == torch.float32
    torch.testing.assert_close(features, trained.forward_features(x.half().float()), atol=2e-2, rtol=1e-2)
    tap = half.forward_tap(x)
    assert tap.dtype == (torch.float16 if half_tap else torch.float32)
    if not half_tap:  # the saliency pass is the trained float32 backbone itself
        torch.testing.assert_close(tap, trained.forward_tap(x), atol=0, rtol=0)
    assert sorted(name for name, _ in half.named_children()) == (
        ["half_backbone"] if half_tap else ["half_backbone", "tap_backbone"]
    )
