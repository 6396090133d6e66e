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
