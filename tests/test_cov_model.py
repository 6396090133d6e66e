"""CAH, the embedding head and the sampler's argument checks, value by value (issue 15, coverage + mutation part).

Each formula of frpt/cah.py is recomputed here from its equation in plain torch, on small tensors with a fixed
seed, so a swapped operator, a changed constant or a dropped term changes a number these tests compare.
"""

from __future__ import annotations

import pytest
import torch

from frpt.cah import CAH, IN_EPS, EmbeddingHead, GeM, instance_norm
from frpt.sampling import coarse_grid, inhomogeneous_sample


def _features(seed: int = 0, shape=(2, 6, 3, 4)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3.0 + 1.5


def test_instance_norm_is_the_biased_variance_formula_with_eps_1e5():
    x = _features()
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    assert IN_EPS == 1e-5
    torch.testing.assert_close(instance_norm(x), (x - mean) / torch.sqrt(var + 1e-5), rtol=1e-6, atol=1e-6)
    constant = torch.full((1, 2, 3, 3), 4.0)  # zero variance: eps alone sets the scale, output 0
    assert torch.equal(instance_norm(constant), torch.zeros_like(constant))
    small = torch.tensor([[[[0.0, 2e-3]]]])  # var 1e-6: the eps of 1e-5 dominates, not 2x or 0.5x of it
    torch.testing.assert_close(instance_norm(small), torch.tensor([[[[-1e-3, 1e-3]]]]) / (1.1e-5) ** 0.5)
    half = instance_norm(x.half())
    assert half.dtype == torch.float16 and torch.allclose(half.float(), instance_norm(x), atol=5e-3)


def test_cah_is_se_weights_mixing_features_and_their_instance_norm():
    torch.manual_seed(0)
    cah = CAH(channels=6, reduction=2).eval()
    assert (cah.fc1.in_features, cah.fc1.out_features, cah.fc2.out_features) == (6, 3, 6)
    x = _features(1)
    pooled = x.mean(dim=(2, 3))
    w = torch.sigmoid(cah.fc2(torch.relu(cah.fc1(pooled))))[:, :, None, None]
    torch.testing.assert_close(cah.weights(x), w)
    expected = w * x + (1 - w) * instance_norm(x)
    torch.testing.assert_close(cah(x), expected)
    assert cah(x).shape == x.shape and ((w > 0) & (w < 1)).all()


def test_cah_hidden_width_is_at_least_one_and_reduction_must_be_positive():
    assert CAH(channels=3, reduction=8).fc1.out_features == 1
    assert CAH(channels=16, reduction=8).fc1.out_features == 2
    assert CAH(channels=5, reduction=1).fc1.out_features == 5
    with pytest.raises(ValueError, match="CAH reduction must be >= 1, got 0"):
        CAH(channels=8, reduction=0)


def test_gem_is_the_generalised_mean_and_clamps_at_eps():
    x = _features(2).abs() + 0.1
    gem = GeM(p=3.0)
    torch.testing.assert_close(gem(x), (x**3).mean(dim=(2, 3)) ** (1 / 3))
    assert gem.eps == 1e-6 and float(gem.p) == 3.0
    negative = torch.full((1, 1, 2, 2), -5.0)
    torch.testing.assert_close(GeM(p=2.0)(negative), torch.full((1, 1), 1e-6))


def test_embedding_head_average_projection_and_gem_neck():
    x = _features(3)
    avg = EmbeddingHead(6)
    torch.testing.assert_close(avg(x), x.mean(dim=(2, 3)))
    assert avg.embedding_dim == 6 and avg.proj is None and avg.neck is None and avg.gem is None
    torch.manual_seed(0)
    projected = EmbeddingHead(6, embedding_dim=4)
    torch.testing.assert_close(projected(x), projected.proj(x.mean(dim=(2, 3))))
    assert projected(x).shape == (2, 4)
    gem = EmbeddingHead(6, pooling="gem", gem_p=2.0).eval()
    assert gem.neck.bias.requires_grad is False and gem.neck.weight.requires_grad is True
    torch.testing.assert_close(gem(x), gem.neck(gem.gem(x)))
    with pytest.raises(ValueError, match="pooling must be one of .*got 'max'"):
        EmbeddingHead(6, pooling="max")


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 2, 4, 4), r"saliency must be \[N, 1, g, g\], got \(1, 2, 4, 4\)"),
        ((1, 1, 4, 5), r"saliency must be \[N, 1, g, g\], got \(1, 1, 4, 5\)"),
        ((1, 4, 4), r"saliency must be \[N, 1, g, g\]"),
        ((1, 1, 1, 1), "grid size g must be >= 2, got 1"),
    ],
)
def test_sampler_refuses_bad_saliency(shape, message):
    with pytest.raises(ValueError, match=message):
        coarse_grid(torch.ones(shape))


def test_sampler_accepts_the_smallest_grid_and_refuses_a_mismatched_image():
    saliency = torch.full((2, 1, 2, 2), 0.25)
    assert coarse_grid(saliency, pad=1, fwhm=1.0).shape == (2, 2, 2, 2)
    with pytest.raises(ValueError, match=r"image must be \[N, C, H, W\] with N = saliency N, got \(1, 3, 8, 8\)"):
        inhomogeneous_sample(torch.zeros(1, 3, 8, 8), saliency, (8, 8), pad=1, fwhm=1.0)
    with pytest.raises(ValueError, match=r"got \(2, 8, 8\)"):
        inhomogeneous_sample(torch.zeros(2, 8, 8), saliency, (8, 8), pad=1, fwhm=1.0)
    out = inhomogeneous_sample(torch.ones(2, 3, 8, 8, dtype=torch.float64), saliency, (4, 5), pad=1, fwhm=1.0)
    assert out.shape == (2, 3, 4, 5) and out.dtype == torch.float64


def test_head_defaults_are_the_configs_defaults():
    """A CAH / GeM built without arguments is the one the default model config builds (paper r = 8, p = 3)."""
    from frpt_runtime.families.frpt import FRPTConfig

    config = FRPTConfig()
    assert (config.cah_reduction, config.gem_p) == (8, 3.0)
    assert CAH(channels=64).fc1.out_features == 64 // config.cah_reduction == 8
    assert CAH(channels=16).fc1.out_features == 2
    x = _features(4).abs() + 0.1
    torch.testing.assert_close(GeM()(x), (x**3).mean(dim=(2, 3)) ** (1 / 3))
    torch.testing.assert_close(EmbeddingHead(6, pooling="gem").gem(x), GeM(config.gem_p)(x))


def test_sampler_defaults_are_the_configs_dpp_geometry():
    """coarse_grid / coarse_grid_dense / inhomogeneous_sample without pad, fwhm use the config's p = 30, FWHM 13."""
    from frpt.sampling import coarse_grid_dense
    from frpt_runtime.families.frpt import FRPTConfig

    config = FRPTConfig()
    logits = torch.randn(2, config.grid * config.grid, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    saliency = torch.softmax(logits * 4.0, dim=1).view(2, 1, config.grid, config.grid)
    explicit = coarse_grid(saliency, config.pad, config.fwhm)
    for other in ((config.pad + 1, config.fwhm), (config.pad, config.fwhm * 2), (config.pad, config.fwhm / 2)):
        assert not torch.allclose(coarse_grid(saliency, *other), explicit, atol=1e-9)  # each value changes the grid
    torch.testing.assert_close(coarse_grid(saliency), explicit, atol=0, rtol=0)
    torch.testing.assert_close(coarse_grid_dense(saliency), explicit, atol=1e-12, rtol=0)
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    torch.testing.assert_close(
        inhomogeneous_sample(image, saliency, (12, 10)),
        inhomogeneous_sample(image, saliency, (12, 10), config.pad, config.fwhm),
        atol=0,
        rtol=0,
    )
