"""mattingkit.apps.cleanup on synthetic mattes with known holes, specks and soft edges."""

from __future__ import annotations

import pytest
import torch

from mattingkit.apps.cleanup import SUPPORT, clean_matte, clean_result
from mattingkit.apps.inference import MatteResult

H, W = 60, 80


def _disc(cy: float, cx: float, radius: float, soft: float = 3.0) -> torch.Tensor:
    """Alpha of a disc: 1 inside, a linear soft edge ``soft`` px wide, 0 outside. (H, W)."""
    y, x = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    distance = ((y - cy) ** 2 + (x - cx) ** 2).sqrt()
    return ((radius - distance) / soft + 0.5).clamp(0, 1)


def _subject_with_hole_and_speck() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    subject = _disc(30, 30, 20)
    speck = _disc(10, 70, 4, soft=2)  # a keyed lamp, away from the subject
    pha = torch.maximum(subject, speck)
    hole = torch.zeros(H, W, dtype=torch.bool)
    hole[26:34, 26:34] = True  # the shirt has the wall's colour
    pha[hole] = 0.0
    regions = {"hole": hole, "speck": speck > SUPPORT, "edge": (subject > 0) & (subject < 1)}
    return pha[None], regions


def test_fills_the_hole_drops_the_speck_and_keeps_the_soft_edge():
    pha, regions = _subject_with_hole_and_speck()
    cleaned = clean_matte(pha)
    assert cleaned.shape == pha.shape and cleaned.dtype == pha.dtype
    assert torch.all(cleaned[0][regions["hole"]] == 1)
    assert torch.all(cleaned[0][regions["speck"]] == 0)  # its soft fringe too
    edge = regions["edge"]
    assert torch.equal(cleaned[0][edge], pha[0][edge])  # the subject's edge is not touched
    untouched = ~(regions["hole"] | regions["speck"])
    assert torch.equal(cleaned[0][untouched], pha[0][untouched])


def test_each_operation_can_be_turned_off():
    pha, regions = _subject_with_hole_and_speck()
    holes_only = clean_matte(pha, keep_largest=False)
    assert torch.all(holes_only[0][regions["hole"]] == 1)
    assert torch.equal(holes_only[0][regions["speck"]], pha[0][regions["speck"]])
    specks_only = clean_matte(pha, fill_holes=False)
    assert torch.all(specks_only[0][regions["hole"]] == 0)
    assert torch.all(specks_only[0][regions["speck"]] == 0)


def test_the_background_and_gaps_open_to_the_border_are_not_holes():
    pha = torch.zeros(1, H, W)
    pha[0, 10:50, 10:70] = 1.0
    pha[0, 20:30, 10:40] = 0.0  # a notch that opens to the subject's edge, then the border
    pha[0, 20:30, 0:10] = 0.0
    assert torch.equal(clean_matte(pha), pha)
    ring = torch.zeros(1, H, W)
    ring[0, :, 30:50] = 1.0  # a band from top to bottom: both sides reach the border
    assert torch.equal(clean_matte(ring), ring)


def test_max_hole_area_leaves_large_gaps_alone():
    pha = torch.zeros(1, H, W)
    pha[0, 5:55, 5:75] = 1.0
    pha[0, 10:14, 10:14] = 0.0  # 16 px: a keying error
    pha[0, 20:50, 30:70] = 0.0  # 1200 px, a quarter of the frame: an arm's gap, kept
    cleaned = clean_matte(pha, max_hole_area=0.05)
    assert torch.all(cleaned[0, 10:14, 10:14] == 1)
    assert torch.all(cleaned[0, 20:50, 30:70] == 0)
    assert torch.all(clean_matte(pha)[0, 20:50, 30:70] == 1)  # without a limit: filled


def test_the_subject_is_the_region_with_most_opaque_pixels_not_the_widest():
    subject = _disc(30, 20, 12)
    haze = torch.zeros(H, W)
    haze[:, 45:] = 0.3  # a large faint region (a shadow): wider than the subject
    pha = torch.maximum(subject, haze)[None]
    cleaned = clean_matte(pha)
    assert torch.all(cleaned[0, :, 45:] == 0)
    assert torch.equal(cleaned[0, :, :40], pha[0, :, :40])


def test_batches_keep_their_shape_and_each_frame_is_cleaned_alone():
    pha, regions = _subject_with_hole_and_speck()
    empty = torch.zeros_like(pha)
    batch = torch.stack([pha, empty]).to(torch.float64)  # (2, 1, H, W)
    cleaned = clean_matte(batch)
    assert cleaned.shape == batch.shape and cleaned.dtype == torch.float64
    assert torch.all(cleaned[0, 0][regions["hole"]] == 1)
    assert torch.equal(cleaned[1], empty[0].double()[None])


def test_clean_result_makes_filled_holes_show_the_frame():
    pha, regions = _subject_with_hole_and_speck()
    src = torch.rand(1, 3, H, W)
    fgr = torch.rand(1, 3, H, W)
    result = MatteResult(
        pha=pha[None], fgr=fgr, err_small=torch.zeros(1, 1, H, W),
        ref_small=torch.zeros(1, 1, H, W), src=src, bgr=torch.rand(1, 3, H, W), seconds=0.1,
        settings={},
    )  # fmt: skip
    cleaned = clean_result(result)
    hole = regions["hole"]
    assert torch.all(cleaned.pha[0, 0][hole] == 1)
    assert torch.equal(cleaned.fgr[0][:, hole], src[0][:, hole])  # alpha 1: F = I exactly
    assert torch.equal(cleaned.fgr[0][:, ~hole], fgr[0][:, ~hole])
    assert result.pha is not cleaned.pha and torch.all(result.pha[0, 0][hole] == 0)  # a copy
    with pytest.raises(TypeError, match="unknown clean-up option"):
        clean_result(result, fill=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"threshold": 1.0}, "threshold"), ({"max_hole_area": 0}, "max_hole_area")],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        clean_matte(torch.zeros(1, 8, 8), **kwargs)
    with pytest.raises(ValueError, match="pha must be"):
        clean_matte(torch.zeros(3, 8, 8))
