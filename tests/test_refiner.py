"""The refiner's building blocks, tested directly: selection, crops, replacement, the module.

tests/test_model_parity.py compares whole models with the official code; these tests pin down
each step on small tensors where the right answer can be written by hand.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from mattingkit.core.refiner import (
    CROP_METHODS,
    REPLACE_METHODS,
    Refiner,
    crop_patches,
    replace_patches,
    select_refinement_regions,
)


def _rand(seed: int, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _index(*cells: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(batch, row, column) grid cells as the PatchIndex triple the refiner uses."""
    b, r, c = zip(*cells)
    return torch.tensor(b), torch.tensor(r), torch.tensor(c)


# ------------------------------------------------------------------------------------------------
# Selection
# ------------------------------------------------------------------------------------------------


def test_sampling_marks_the_k_worst_patches_of_each_image():
    err = _rand(0, 3, 1, 5, 7)
    ref = select_refinement_regions(err, "sampling", 16 * 6, 0.0)
    assert ref.shape == err.shape and set(ref.unique().tolist()) == {0.0, 1.0}
    for image in range(3):
        chosen = ref[image].flatten().bool()
        assert chosen.sum() == 6
        assert err[image].flatten()[chosen].min() >= err[image].flatten()[~chosen].max()


def test_sampling_never_asks_for_more_patches_than_exist():
    err = _rand(1, 1, 1, 3, 4)  # 12 patches, 5,000 asked for
    assert select_refinement_regions(err, "sampling", 80_000, 0.0).sum() == 12


def test_oversampling_prevention_skips_error_free_patches():
    err = torch.zeros(1, 1, 4, 4)
    err[0, 0, 1, 2] = 0.5
    err[0, 0, 3, 0] = 0.2
    kept = select_refinement_regions(err, "sampling", 16 * 5, 0.0, prevent_oversampling=True)
    assert kept.sum() == 2 and kept[0, 0, 1, 2] == 1 and kept[0, 0, 3, 0] == 1
    forced = select_refinement_regions(err, "sampling", 16 * 5, 0.0, prevent_oversampling=False)
    assert forced.sum() == 5


def test_thresholding_marks_errors_above_the_threshold():
    err = _rand(2, 2, 1, 6, 6)
    ref = select_refinement_regions(err, "thresholding", 0, 0.7)
    torch.testing.assert_close(ref, (err > 0.7).float())
    with pytest.raises(ValueError, match="refine mode 'full'"):
        select_refinement_regions(err, "full", 0, 0.7)


# ------------------------------------------------------------------------------------------------
# Crops
# ------------------------------------------------------------------------------------------------


def test_border_crops_are_zero_padded_context():
    x = _rand(3, 1, 2, 8, 12)  # a 2x3 grid of 4x4 patches
    top_left = crop_patches(x, _index((0, 0, 0)), size=4, padding=3)[0]
    assert top_left.shape == (2, 10, 10)
    assert top_left[:, :3].abs().sum() == 0 and top_left[:, :, :3].abs().sum() == 0
    torch.testing.assert_close(top_left[:, 3:, 3:], x[0, :, 0:7, 0:7], rtol=0, atol=0)
    bottom_right = crop_patches(x, _index((0, 1, 2)), size=4, padding=3)[0]
    torch.testing.assert_close(bottom_right[:, :7, :7], x[0, :, 1:8, 5:12], rtol=0, atol=0)
    assert bottom_right[:, 7:].abs().sum() == 0 and bottom_right[:, :, 7:].abs().sum() == 0


@pytest.mark.parametrize(("size", "padding"), [(2, 3), (4, 2), (4, 0), (2, 1)])
def test_crop_methods_agree(size, padding):
    x = _rand(4, 3, 5, 4 * size, 5 * size)
    cells = [(b, r, c) for b, r, c in itertools.product(range(3), range(4), range(5))]
    index = _index(*cells[::3], (2, 3, 4), (1, 0, 0))  # corners and the inside, every image
    crops = {method: crop_patches(x, index, size, padding, method) for method in CROP_METHODS}
    expected = crops["unfold"]
    assert expected.shape == (len(index[0]), 5, size + 2 * padding, size + 2 * padding)
    for method, got in crops.items():
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=method)


def test_unknown_crop_or_replace_method_is_named():
    x = _rand(5, 1, 1, 8, 8)
    with pytest.raises(ValueError, match="crop method 'slice'"):
        crop_patches(x, _index((0, 0, 0)), 4, 0, "slice")
    with pytest.raises(ValueError, match="replace method 'paste'"):
        replace_patches(x, x[:, :, :4, :4], _index((0, 0, 0)), "paste")


# ------------------------------------------------------------------------------------------------
# Replacement
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", REPLACE_METHODS)
def test_crop_then_replace_round_trips(method):
    x = _rand(6, 2, 3, 12, 16)
    index = _index((0, 0, 0), (0, 2, 3), (1, 1, 2), (1, 2, 0))
    patches = crop_patches(x, index, size=4, padding=0)
    canvas = replace_patches(torch.zeros_like(x), patches, index, method)
    mask = torch.zeros(2, 1, 3, 4)
    mask[index[0], 0, index[1], index[2]] = 1
    mask = mask.repeat_interleave(4, 2).repeat_interleave(4, 3)
    torch.testing.assert_close(canvas, x * mask, rtol=0, atol=0)  # exactly the chosen cells
    torch.testing.assert_close(replace_patches(x.clone(), patches, index, method), x)


def test_replace_methods_agree_on_a_batch():
    x = _rand(7, 3, 4, 8, 12)
    index = _index((0, 1, 2), (2, 0, 0), (1, 1, 1), (2, 1, 2))
    patches = _rand(8, 4, 4, 4, 4)
    results = [replace_patches(x.clone(), patches, index, m) for m in REPLACE_METHODS]
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=0)
    torch.testing.assert_close(results[0][2, :, 4:8, 8:12], patches[3], rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------
# The module
# ------------------------------------------------------------------------------------------------


def _coarse_inputs(seed: int, batch: int = 2, height: int = 32, width: int = 48):
    """Full-resolution images and a coarse (1/4) prediction, as MattingRefine hands them over."""
    h, w = height // 4, width // 4
    return (
        _rand(seed, batch, 3, height, width),
        _rand(seed + 1, batch, 3, height, width),
        _rand(seed + 2, batch, 1, h, w),
        _rand(seed + 3, batch, 3, h, w) - 0.5,
        _rand(seed + 4, batch, 1, h, w),
        _rand(seed + 5, batch, 32, h, w),
    )


def _eval_refiner(**options) -> Refiner:
    torch.manual_seed(0)
    refiner = Refiner(**options).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for bn in (refiner.bn1, refiner.bn2, refiner.bn3):
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.running_var.uniform_(0.5, 1.5)
    return refiner


def test_refining_every_patch_by_sampling_equals_full_mode():
    inputs = _coarse_inputs(10)
    patches = (32 // 4) * (48 // 4)
    full = _eval_refiner(mode="full")
    sampled = _eval_refiner(mode="sampling", sample_pixels=16 * patches, prevent_oversampling=False)
    with torch.no_grad():
        pha_full, fgr_full, ref_full = full(*inputs)
        pha, fgr, ref = sampled(*inputs)
    assert ref.sum() == 2 * patches and torch.equal(ref, ref_full)
    torch.testing.assert_close(pha, pha_full, rtol=0, atol=1e-5)
    torch.testing.assert_close(fgr, fgr_full, rtol=0, atol=1e-5)


def test_no_selected_patch_returns_the_upsampled_coarse_prediction():
    src, bgr, pha, fgr, err, hid = _coarse_inputs(20)
    refiner = _eval_refiner(mode="thresholding", threshold=2.0)  # no error is that large
    with torch.no_grad():
        out_pha, out_fgr, ref = refiner(src, bgr, pha, fgr, err, hid)
    assert ref.sum() == 0
    up = torch.nn.functional.interpolate(
        torch.cat([pha, fgr], 1), src.shape[2:], mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(out_pha, up[:, :1], rtol=0, atol=0)
    torch.testing.assert_close(out_fgr, up[:, 1:], rtol=0, atol=0)


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_refiner_crop_and_replace_methods_give_one_answer(kernel_size):
    inputs = _coarse_inputs(30, batch=1)
    results = []
    for crop, replace in itertools.product(CROP_METHODS, REPLACE_METHODS):
        refiner = _eval_refiner(
            sample_pixels=16 * 20,
            kernel_size=kernel_size,
            patch_crop_method=crop,
            patch_replace_method=replace,
        )
        with torch.no_grad():
            results.append(refiner(*inputs))
    pha, fgr, ref = results[0]
    assert ref.sum() == 20
    unrefined = ref.repeat_interleave(4, 2).repeat_interleave(4, 3) == 0
    assert not torch.equal(pha[~unrefined], pha.new_zeros(1).expand(int((~unrefined).sum())))
    for other in results[1:]:
        for got, expected in zip(other, results[0]):
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_refiner_rejects_unknown_settings_by_name():
    with pytest.raises(ValueError, match="refine_mode"):
        Refiner(mode="everything")
    with pytest.raises(ValueError, match="refine_kernel_size"):
        Refiner(kernel_size=5)
