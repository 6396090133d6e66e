"""The constant matrices of DPP's linear steps against independent definitions (issue 15, mutation part).

The PyTorch reference sampler takes its Gaussian taps and lattice coordinates from ``sampling_matrices`` too, so
reference-vs-lowering comparisons cannot see a wrong tap: here each piece is checked against its own definition
(the half maximum at ``d = FWHM / 2``, PyTorch's ``F.interpolate`` for the resize matrices, replication padding
written out by hand).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from frpt_runtime.sampling_matrices import (
    bilinear_resize_matrix,
    blur_matrices,
    gaussian_taps,
    padded_coordinates,
)


@pytest.mark.parametrize(("pad", "fwhm"), [(6, 4.0), (30, 13.0), (3, 6.0)])
def test_gaussian_taps_are_one_at_the_centre_and_half_at_half_the_fwhm(pad, fwhm):
    taps = gaussian_taps(pad, fwhm)
    assert taps.shape == (2 * pad + 1,) and taps.dtype == np.float64
    assert taps[pad] == 1.0
    d = np.arange(-pad, pad + 1)
    np.testing.assert_allclose(taps, 0.5 ** ((2.0 * d / fwhm) ** 2), rtol=1e-12)  # k(fwhm / 2) = 1/2 by definition
    if fwhm / 2 <= pad and float(fwhm / 2).is_integer():
        half = int(fwhm / 2)
        assert taps[pad + half] == pytest.approx(0.5, rel=1e-12) == taps[pad - half]


def test_padded_coordinates_span_minus_pad_to_one_plus_pad_cells():
    coords = padded_coordinates(5, 2)
    np.testing.assert_allclose(coords, np.array([-2, -1, 0, 1, 2, 3, 4, 5, 6]) / 4.0, rtol=0, atol=0)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize(("in_size", "out_size"), [(5, 1), (1, 4), (4, 4), (3, 7), (7, 3), (31, 64), (2, 2), (6, 13)])
def test_bilinear_resize_matrix_is_torchs_interpolate(in_size, out_size, align_corners):
    eye = torch.eye(in_size, dtype=torch.float64)[None]  # [1, in, in]: column j is basis vector j
    columns = F.interpolate(eye, size=out_size, mode="linear", align_corners=align_corners)[0]  # [in, out]
    matrix = bilinear_resize_matrix(in_size, out_size, align_corners)
    assert matrix.shape == (out_size, in_size)
    np.testing.assert_allclose(matrix, columns.numpy().T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("g", "pad", "fwhm"), [(5, 2, 2.0), (4, 3, 3.0), (7, 1, 1.5)])
def test_blur_matrices_are_padding_weighting_and_correlation_written_out(g, pad, fwhm):
    taps = [math.exp(-4.0 * math.log(2.0) * d * d / fwhm**2) for d in range(-pad, pad + 1)]
    coords = [(j - pad) / (g - 1) for j in range(g + 2 * pad)]
    m = np.zeros((g, g))
    mc = np.zeros((g, g))
    for i in range(g):  # output cell i correlates padded cells i .. i + 2 pad; padded cell j copies cell clip(j - p)
        for t, tap in enumerate(taps):
            j = i + t
            source = min(max(j - pad, 0), g - 1)
            m[i, source] += tap
            mc[i, source] += tap * coords[j]
    got_m, got_mc = blur_matrices(g, pad, fwhm)
    np.testing.assert_allclose(got_m, m, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got_mc, mc, rtol=1e-12, atol=1e-15)


def test_grid_sample_skips_the_corners_past_the_last_row_and_column_like_torch():
    """At ``x = 1`` or ``y = 1`` the second corner lies past the image: it is skipped, not read at weight 0.

    An infinite pixel on the last row / column shows the difference: PyTorch gives inf (weight 1 on the pixel, the
    corner past the edge skipped), a read at weight 0 would give inf * 0 = NaN.
    """
    from frpt_runtime.sampling_matrices import grid_sample_bilinear

    image = np.arange(20, dtype=np.float32).reshape(1, 1, 4, 5)
    image[0, 0, 3, :] = np.inf  # the last row
    image[0, 0, :, 4] = -np.inf  # the last column (and the corner: -inf)
    # on the edge, between two pixels of it: both inside corners carry weight, the two past the edge none
    grid = np.array([[[[1.0, 1.0], [1.0, 0.0], [0.1, 1.0], [1.0, 0.5], [-0.3, 1.0]]]], np.float32)
    expected = F.grid_sample(
        torch.from_numpy(image), torch.from_numpy(grid), mode="bilinear", padding_mode="zeros", align_corners=True
    ).numpy()
    with np.errstate(invalid="ignore"):  # the skipped corners' inf * 0 is computed, then discarded (np.where)
        out = grid_sample_bilinear(image, grid)
    assert np.isinf(expected).all()  # every sample sits on an infinite pixel of the last row or column
    np.testing.assert_array_equal(out, expected)


def test_grid_sample_zeros_padding_outside_the_image_is_torchs():
    """Grid points past [-1, 1] on every side: corners outside contribute zero, as PyTorch's zeros padding."""
    from frpt_runtime.sampling_matrices import grid_sample_bilinear

    image = (np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5) + 1.0) / 7.0
    points = [(-1.2, 0.1), (0.2, -1.3), (-1.1, -1.1), (1.2, 0.3), (0.4, 1.25), (1.1, 1.1), (-1.05, 0.9), (-2.5, 0.0)]
    grid = np.broadcast_to(np.array(points, np.float32)[None, None], (2, 1, len(points), 2)).copy()
    expected = F.grid_sample(
        torch.from_numpy(image), torch.from_numpy(grid), mode="bilinear", padding_mode="zeros", align_corners=True
    ).numpy()
    out = grid_sample_bilinear(image, grid)
    assert (expected[..., :-1] > 0).all() and (expected[..., -1] == 0).all()  # partly inside, and fully outside
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
