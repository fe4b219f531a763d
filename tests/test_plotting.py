"""Tests for mattingkit.notebook.plotting."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from mattingkit.notebook import plotting


def test_to_numpy_image_layouts():
    assert plotting.to_numpy_image(torch.rand(3, 4, 5)).shape == (4, 5, 3)
    assert plotting.to_numpy_image(torch.rand(1, 3, 4, 5)).shape == (4, 5, 3)
    assert plotting.to_numpy_image(torch.rand(1, 4, 5)).shape == (4, 5)
    assert plotting.to_numpy_image(np.zeros((4, 5, 1))).shape == (4, 5)
    with pytest.raises(ValueError, match="batch of 2"):
        plotting.to_numpy_image(torch.rand(2, 3, 4, 5))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        plotting.to_numpy_image(torch.rand(5, 4, 4))


def test_image_grid_layout_and_titles():
    fig = plotting.image_grid(
        [torch.rand(3, 8, 8), torch.rand(1, 8, 8), torch.rand(8, 8)],
        ["a", "b", "c"],
        ncols=2,
        colorbar=True,
        value_range=None,
    )
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["a", "b", "c"]
    assert len(fig.axes) == 4 + 2  # a 2×2 grid plus two colour bars
    plt.close(fig)
    with pytest.raises(ValueError, match="2 images but 1 titles"):
        plotting.image_grid([torch.rand(3, 4, 4)] * 2, ["only one"])


def test_rgba_on_checkerboard_blends():
    fgr = torch.ones(3, 16, 16)
    opaque = plotting.rgba_on_checkerboard(fgr, torch.ones(1, 16, 16))
    np.testing.assert_allclose(opaque, 1.0)
    clear = plotting.rgba_on_checkerboard(fgr, torch.zeros(1, 16, 16), square=8)
    np.testing.assert_allclose(clear, plotting.checkerboard(16, 16, 8))
    assert clear[0, 0, 0] != clear[0, 8, 0]  # squares alternate


def test_overlay_patches_marks_selected_patches_only():
    image = np.zeros((8, 12, 3), dtype=np.float32)
    selected = torch.zeros(2, 3)
    selected[1, 2] = 1  # the patch at rows 4..7, cols 8..11
    out = plotting.overlay_patches(image, selected, patch_size=4, color=(1, 0, 0))
    assert out[:4].max() == 0 and out[:, :8].max() == 0
    np.testing.assert_allclose(out[4, 8], [1, 0, 0])  # border pixel in full colour
    assert 0 < out[6, 10, 0] < 1  # interior tinted
    with pytest.raises(ValueError, match="smaller than the image"):
        plotting.overlay_patches(np.zeros((12, 12, 3)), selected, patch_size=4)


def test_soft_crop_finds_the_fractional_region():
    pha = torch.zeros(1, 64, 64)
    pha[:, 40:56, 8:24] = 0.5  # the only soft region
    rows, cols = plotting.soft_crop(pha, size=16)
    assert float(pha[:, rows, cols].mean()) == pytest.approx(0.5)


def test_textured_crop_prefers_opaque_detail():
    g = torch.Generator().manual_seed(0)
    image = torch.full((3, 64, 64), 0.5)
    image[:, 8:24, 40:56] = torch.rand(3, 16, 16, generator=g)  # detail, opaque
    image[:, 40:56, 8:24] = torch.rand(3, 16, 16, generator=g)  # detail, transparent
    pha = torch.zeros(1, 64, 64)
    pha[:, :32, 32:] = 1
    rows, cols = plotting.textured_crop(image, pha, size=16)
    assert (rows.start, cols.start) == (8, 40)


def test_uint8_and_float_images_are_the_same_picture():
    image = torch.rand(3, 6, 7, generator=torch.Generator().manual_seed(3))
    as_uint8 = (image * 255).round().to(torch.uint8)
    expected = plotting.to_numpy_image(image)
    np.testing.assert_allclose(plotting.to_numpy_image(as_uint8), expected, atol=0.5 / 255)
    np.testing.assert_allclose(
        plotting.to_numpy_image(as_uint8.permute(1, 2, 0).numpy()), expected, atol=0.5 / 255
    )
    as_uint16 = (image.permute(1, 2, 0).numpy() * 65535).round().astype(np.uint16)
    np.testing.assert_allclose(plotting.to_numpy_image(as_uint16), expected, atol=1e-4)
    assert plotting.to_numpy_image(torch.ones(4, 4, dtype=torch.bool)).max() == 1.0
    assert plotting.to_numpy_image(image.half()).dtype == np.float32
    with pytest.raises(ValueError, match="value range of a int64"):
        plotting.to_numpy_image(np.zeros((4, 4), dtype=np.int64))
    # The helpers built on it accept both too.
    np.testing.assert_allclose(
        plotting.rgba_on_checkerboard(as_uint8, torch.ones(1, 6, 7)), expected, atol=0.5 / 255
    )


def test_image_grid_value_ranges_per_image():
    fig = plotting.image_grid(
        [torch.rand(1, 4, 4), torch.rand(1, 4, 4)], value_ranges=[(0, 1), (0, 0.2)]
    )
    assert [im.get_clim() for ax in fig.axes for im in ax.get_images()] == [(0, 1), (0, 0.2)]
    plt.close(fig)
    with pytest.raises(ValueError, match="2 images but 1 value ranges"):
        plotting.image_grid([torch.rand(1, 4, 4)] * 2, value_ranges=[(0, 1)])


def test_color_swatches_draw_patches_not_images():
    fig = plotting.color_swatches(
        [(1, 0, 0), (0, 0, 1)], ["F", "B"], ramp=((1, 0, 0), (0, 0, 1), 0.25)
    )
    assert [ax.get_title() for ax in fig.axes[:2]] == ["F", "B"]
    assert sum(len(ax.get_images()) for ax in fig.axes) == 1  # only the ramp is an image
    ramp = fig.axes[2].get_images()[0].get_array()
    np.testing.assert_allclose(ramp[0, 0], [0, 0, 1])  # α = 0: the background
    np.testing.assert_allclose(ramp[0, -1], [1, 0, 0])  # α = 1: the foreground
    plt.close(fig)
    with pytest.raises(ValueError, match="2 colours but 1 titles"):
        plotting.color_swatches([(1, 0, 0), (0, 0, 1)], ["F"])


def test_overlay_patches_without_borders_keeps_pixels_readable():
    image = np.full((8, 8, 3), 0.5, dtype=np.float32)
    selected = torch.ones(2, 2)
    out = plotting.overlay_patches(image, selected, patch_size=4, borders=False, opacity=0.2)
    np.testing.assert_allclose(out, np.broadcast_to(out[0, 0], out.shape))  # no outline
    assert out[0, 0, 0] > 0.5 and out[0, 0, 2] < 0.5


def test_percentile_range_ignores_hot_pixels_and_keeps_sparse_maps_visible():
    values = np.linspace(0, 0.05, 10_000).reshape(100, 100)
    values[0, 0] = 1.0  # one hot pixel: min-max would draw everything else near black
    low, high = plotting.percentile_range(values)
    assert low <= 0.001 and 0.045 < high < 0.06
    sparse = np.zeros((100, 100))
    sparse[:3, :3] = np.linspace(0.1, 0.9, 9).reshape(3, 3)  # silent but for 9 pixels
    low, high = plotting.percentile_range(sparse)
    assert low == 0.0 and 0.8 < high <= 0.9
    assert plotting.percentile_range(np.zeros((4, 4))) == (0.0, 1.0)
