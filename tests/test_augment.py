"""Tests for mattingkit.data.augment: the official per-sample and in-loop batch augmentations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mattingkit.core.matting import resize_to_cover
from mattingkit.data import augment
from mattingkit.data.augment import augment_background, augment_batch, augment_foreground

torch.set_num_threads(1)


# --------------------------------------------------------------------------------------
# Per-sample augmentation
# --------------------------------------------------------------------------------------


def _square_pair(h=80, w=120):
    """A coloured square in fgr and the same square in alpha, so alignment can be checked."""
    fgr = torch.zeros(3, h, w)
    pha = torch.zeros(1, h, w)
    fgr[:, 20:50, 40:70] = torch.tensor([1.0, 0.5, 0.25]).view(3, 1, 1)
    pha[:, 20:50, 40:70] = 1.0
    return fgr, pha


def test_augment_foreground_keeps_fgr_and_alpha_aligned():
    fgr, pha = _square_pair()
    for seed in range(12):
        out_fgr, out_pha = augment_foreground(fgr, pha, (64, 64), np.random.default_rng(seed))
        assert out_fgr.shape == (3, 64, 64) and out_pha.shape == (1, 64, 64)
        # Where the warped alpha is solid, the warped colour is the square's (red channel
        # stays the brightest); where alpha is empty, the colour is the empty fill.
        solid, empty = out_pha[0] > 0.99, out_pha[0] < 0.01
        assert solid.any() and empty.any()
        brightness = out_fgr.mean(0)
        assert brightness[solid].min() > brightness[empty].max()


def test_augment_foreground_keeps_soft_alpha():
    fgr, pha = _square_pair()
    soft = {
        bool(((o[1] > 0.05) & (o[1] < 0.95)).any())
        for o in (
            augment_foreground(fgr, pha, (48, 48), np.random.default_rng(s)) for s in range(4)
        )
    }
    assert soft == {True}, "bilinear resampling must keep fractional alpha at the edges"


def test_augment_background_changes_view_but_keeps_size():
    bgr = torch.rand(3, 50, 70, generator=torch.Generator().manual_seed(0))
    plain = resize_to_cover(bgr, 32, 40)  # the same background without augmentation
    views = [augment_background(bgr, (32, 40), np.random.default_rng(seed)) for seed in range(4)]
    for out in views:
        assert out.shape == (3, 32, 40) and 0 <= float(out.min()) and float(out.max()) <= 1
        assert (out - plain).abs().mean() > 0.01, "the view must change (affine, jitter, flip)"
    assert not torch.equal(views[0], views[1]), "each seed gives its own view"
    again = augment_background(bgr, (32, 40), np.random.default_rng(0))
    assert torch.equal(again, views[0]), "and the same seed the same view"


def test_augment_foreground_moves_the_subject():
    fgr, pha = _square_pair()
    plain = resize_to_cover(pha, 64, 64)
    moved = [augment_foreground(fgr, pha, (64, 64), np.random.default_rng(s))[1] for s in range(4)]
    assert all((m - plain).abs().mean() > 0.005 for m in moved)


@pytest.mark.parametrize("size", [1, 4, 11, 39])
def test_separable_box_filter_equals_the_square_box(size):
    x = torch.rand(2, 3, 45, 50, generator=torch.Generator().manual_seed(size))
    pad = (size // 2, (size - 1) // 2, size // 2, (size - 1) // 2)
    square = torch.nn.functional.avg_pool2d(
        torch.nn.functional.pad(x, pad, mode="replicate"), size, stride=1
    )
    assert torch.allclose(augment._box_filter(x, size), square, atol=1e-5)


# --------------------------------------------------------------------------------------
# Batch augmentation
# --------------------------------------------------------------------------------------


def _batch(n=8, h=32, w=40):
    g = torch.Generator().manual_seed(0)
    fgr = torch.rand(n, 3, h, w, generator=g)
    pha = torch.zeros(n, 1, h, w)
    pha[:, :, 8:24, 10:30] = 1.0
    bgr = torch.rand(n, 3, h, w, generator=g)
    return fgr, pha, bgr


def test_augment_batch_shapes_ranges_determinism():
    fgr, pha, bgr = _batch()
    src1, bgr1 = augment_batch(fgr, pha, bgr, generator=torch.Generator().manual_seed(42))
    src2, bgr2 = augment_batch(fgr, pha, bgr, generator=torch.Generator().manual_seed(42))
    assert src1.shape == fgr.shape and bgr1.shape == bgr.shape
    assert torch.equal(src1, src2) and torch.equal(bgr1, bgr2)
    for t in (src1, bgr1):
        assert float(t.min()) >= 0 and float(t.max()) <= 1
    src3, _ = augment_batch(fgr, pha, bgr, generator=torch.Generator().manual_seed(43))
    assert not torch.equal(src1, src3)
    # The inputs are untouched.
    assert torch.equal((fgr, pha, bgr)[2], _batch()[2])


def test_augment_batch_plate_no_longer_matches_true_background():
    fgr, pha, bgr = _batch(n=16)
    src, plate = augment_batch(fgr, pha, bgr, generator=torch.Generator().manual_seed(0))
    per_sample = (plate - bgr).abs().flatten(1).amax(1)
    assert (per_sample > 1e-3).float().mean() >= 0.5, "most plates get jitter/noise/misalignment"
    # Inside the subject, src is still (mostly) the foreground.
    inside = (src - fgr)[:, :, 10:22, 12:28].abs().mean()
    assert inside < 0.05


def test_augment_batch_rejects_bad_shapes():
    fgr, pha, bgr = _batch()
    with pytest.raises(ValueError, match="pha"):
        augment_batch(fgr, pha[:, :, :10], bgr)
    with pytest.raises(ValueError, match="B, C, H, W"):
        augment_batch(fgr[0], pha[0], bgr[0])


def test_misalignment_is_a_small_warp():
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    same = augment._random_affine_grid(x, torch.Generator().manual_seed(0), 0.0, 0.0)
    assert torch.allclose(same, x, atol=1e-5), "zero angle and shift is the identity"
    moved = augment._random_affine_grid(x, torch.Generator().manual_seed(0), 1.0, 0.01)
    assert 0 < (moved - x).abs().mean() < 0.3


def test_augment_batch_shadow_darkens_the_frame_not_the_plate():
    n, h, w = 32, 64, 64
    fgr = torch.full((n, 3, h, w), 0.9)
    pha = torch.zeros(n, 1, h, w)
    pha[:, :, 16:48, 24:40] = 1.0
    bgr = torch.full((n, 3, h, w), 0.5)
    src, _ = augment_batch(fgr, pha, bgr, generator=torch.Generator().manual_seed(7))
    outside = (pha == 0).expand_as(src)
    darkening = [float((bgr[i] - src[i])[outside[i]].mean()) for i in range(n)]
    # Noise averages out; only a shadow darkens the background part of the frame.
    assert max(darkening) > 0.005
    assert sum(d > 0.005 for d in darkening) < n


def test_augment_batch_plate_never_gets_the_shadow():
    n, h, w = 32, 64, 64
    fgr = torch.full((n, 3, h, w), 0.9)
    pha = torch.zeros(n, 1, h, w)
    pha[:, :, 16:48, 24:40] = 1.0
    bgr = torch.full((n, 3, h, w), 0.5)
    _, plate = augment_batch(fgr, pha, bgr, generator=torch.Generator().manual_seed(7))
    # A flat plate stays flat under jitter and misalignment; smoothing removes the noise.
    smooth = torch.nn.functional.avg_pool2d(plate, 9, stride=1)
    spread = (smooth.flatten(2).amax(2) - smooth.flatten(2).amin(2)).amax()
    assert spread < 0.03


def test_old_import_path_still_works():
    from mattingkit.data import datasets as data

    assert data.augment_batch is augment_batch and data.augment_foreground is augment_foreground
