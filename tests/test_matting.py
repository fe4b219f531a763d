"""Tests for mattingkit.core.matting on hand-computed pixels and exact synthetic cases."""

from __future__ import annotations

import pytest
import torch

from mattingkit.core import matting


def pixel(*rgb: float) -> torch.Tensor:
    """A 1×1 image (3, 1, 1)."""
    return torch.tensor(rgb, dtype=torch.float32).view(-1, 1, 1)


def random_matte(seed: int, size=(6, 7), batch: int | None = None):
    g = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    fgr = torch.rand(*lead, 3, *size, generator=g)
    pha = torch.rand(*lead, 1, *size, generator=g)
    bgr = torch.rand(*lead, 3, *size, generator=g)
    return fgr, pha, bgr


class TestComposite:
    def test_hand_computed_pixel(self):
        # α = 0.25: 0.25·(1, 0, 0.5) + 0.75·(0, 0.4, 1) = (0.25, 0.3, 0.875)
        out = matting.composite(pixel(1, 0, 0.5), pixel(0.25), pixel(0, 0.4, 1))
        torch.testing.assert_close(out, pixel(0.25, 0.3, 0.875))

    def test_alpha_one_and_zero_select_foreground_and_background(self):
        fgr, _, bgr = random_matte(0)
        torch.testing.assert_close(matting.composite(fgr, torch.ones(1, 6, 7), bgr), fgr)
        torch.testing.assert_close(matting.composite(fgr, torch.zeros(1, 6, 7), bgr), bgr)

    def test_batch_with_shared_plate(self):
        fgr, pha, _ = random_matte(1, batch=2)
        plate = torch.rand(1, 3, 6, 7)
        out = matting.composite(fgr, pha, plate)
        assert out.shape == (2, 3, 6, 7)
        torch.testing.assert_close(out[1], pha[1] * fgr[1] + (1 - pha[1]) * plate[0])

    def test_size_mismatch_names_both_sizes(self):
        with pytest.raises(ValueError, match=r"fgr is 6×7 but bgr is 5×7"):
            matting.composite(torch.rand(3, 6, 7), torch.rand(1, 6, 7), torch.rand(3, 5, 7))

    def test_wrong_channel_count_and_type(self):
        with pytest.raises(ValueError, match=r"pha must have 1 channel"):
            matting.composite(torch.rand(3, 4, 4), torch.rand(3, 4, 4), torch.rand(3, 4, 4))
        with pytest.raises(TypeError, match="torch.Tensor"):
            matting.composite([0.0], torch.rand(1, 4, 4), torch.rand(3, 4, 4))
        with pytest.raises(TypeError, match="divide uint8"):
            matting.composite(
                torch.zeros(3, 4, 4, dtype=torch.uint8), torch.rand(1, 4, 4), torch.rand(3, 4, 4)
            )

    def test_batch_mismatch(self):
        with pytest.raises(ValueError, match="batch size 2 but pha has 3"):
            matting.composite(
                torch.rand(2, 3, 4, 4), torch.rand(3, 1, 4, 4), torch.rand(2, 3, 4, 4)
            )


class TestResidual:
    def test_roundtrip_and_clamp(self):
        fgr, _, src = random_matte(2)
        residual = matting.foreground_to_residual(fgr, src)
        torch.testing.assert_close(residual, fgr - src)
        torch.testing.assert_close(matting.residual_to_foreground(residual, src), fgr)
        # An overshooting residual is clamped into [0, 1].
        out = matting.residual_to_foreground(pixel(0.9, -0.9, 0.1), pixel(0.5, 0.5, 0.5))
        torch.testing.assert_close(out, pixel(1.0, 0.0, 0.6))


class TestCompositeOnColorImageBlur:
    def test_on_color(self):
        out = matting.composite_on_color(pixel(1, 1, 1), pixel(0.5), (0.0, 1.0, 0.0))
        torch.testing.assert_close(out, pixel(0.5, 1.0, 0.5))
        with pytest.raises(ValueError, match="divide 0–255"):
            matting.composite_on_color(pixel(1, 1, 1), pixel(0.5), (0, 255, 0))

    def test_on_image_same_size_is_composite(self):
        fgr, pha, bgr = random_matte(3, batch=2)
        torch.testing.assert_close(
            matting.composite_on_image(fgr, pha, bgr), matting.composite(fgr, pha, bgr)
        )

    def test_on_image_resizes_with_a_warning(self):
        fgr, pha, _ = random_matte(4, size=(8, 12))
        plate = torch.full((3, 4, 4), 0.25)  # flat, so any resize keeps the colour
        with pytest.warns(UserWarning, match="4×4 but the frame is 8×12"):
            out = matting.composite_on_image(fgr, torch.zeros_like(pha), plate)
        torch.testing.assert_close(out, torch.full((3, 8, 12), 0.25))

    def test_blurred_plate_keeps_subject_and_blurs_plate(self):
        fgr = torch.rand(3, 16, 16)
        plate = torch.zeros(3, 16, 16)
        plate[:, :, 8:] = 1.0  # a hard vertical edge in the plate
        opaque = matting.composite_on_blurred_plate(fgr, torch.ones(1, 16, 16), plate, sigma=2)
        torch.testing.assert_close(opaque, fgr)
        behind = matting.composite_on_blurred_plate(fgr, torch.zeros(1, 16, 16), plate, sigma=2)
        assert 0.05 < behind[0, 8, 7] < 0.5 < behind[0, 8, 8] < 0.95  # the edge is soft now
        with pytest.raises(ValueError, match="sigma"):
            matting.composite_on_blurred_plate(fgr, torch.ones(1, 16, 16), plate, sigma=0)


class TestDifferenceKey:
    def test_ramp_values(self):
        bgr = torch.zeros(3, 1, 4)
        src = torch.zeros(3, 1, 4)
        src[0] = torch.tensor([0.05, 0.15, 0.2, 0.5])  # distances from the black plate
        pha = matting.difference_key(src, bgr, threshold=0.1, softness=0.1)
        torch.testing.assert_close(pha, torch.tensor([[[0.0, 0.5, 1.0, 1.0]]]))
        hard = matting.difference_key(src, bgr, threshold=0.1, softness=0)
        torch.testing.assert_close(hard, torch.tensor([[[0.0, 1.0, 1.0, 1.0]]]))

    def test_fails_where_foreground_equals_background(self):
        # An opaque subject (α = 1) whose left half has exactly the plate's colour.
        bgr = torch.full((3, 4, 4), 0.3)
        fgr = torch.full((3, 4, 4), 0.9)
        fgr[:, :, :2] = 0.3
        src = matting.composite(fgr, torch.ones(1, 4, 4), bgr)
        pha = matting.difference_key(src, bgr, threshold=0.05, softness=0.05)
        assert torch.all(pha[:, :, 2:] == 1)
        assert torch.all(pha[:, :, :2] == 0)  # keyed out although it is foreground

    def test_negative_threshold(self):
        with pytest.raises(ValueError, match="threshold"):
            matting.difference_key(torch.rand(3, 2, 2), torch.rand(3, 2, 2), threshold=-1)


class TestTriangulation:
    def test_recovers_random_matte_exactly(self):
        g = torch.Generator().manual_seed(5)
        fgr = torch.rand(2, 3, 9, 11, generator=g, dtype=torch.float64)
        pha = torch.rand(2, 1, 9, 11, generator=g, dtype=torch.float64)
        bgr1 = torch.rand(2, 3, 9, 11, generator=g, dtype=torch.float64)
        bgr2 = (bgr1 + 0.3 + 0.4 * torch.rand(2, 3, 9, 11, generator=g, dtype=torch.float64)) % 1
        src1 = matting.composite(fgr, pha, bgr1)
        src2 = matting.composite(fgr, pha, bgr2)
        result = matting.triangulation_matting(src1, src2, bgr1, bgr2)
        torch.testing.assert_close(result.pha, pha)
        visible = (pha > 0.01).expand_as(fgr)
        torch.testing.assert_close(result.fgr[visible], fgr[visible])

    def test_hand_computed_pixel(self):
        # F = (1, 0, 0), α = 0.5 over black and over white.
        src1 = pixel(0.5, 0.0, 0.0)
        src2 = pixel(1.0, 0.5, 0.5)
        result = matting.triangulation_matting(src1, src2, pixel(0, 0, 0), pixel(1, 1, 1))
        torch.testing.assert_close(result.pha, pixel(0.5))
        torch.testing.assert_close(result.fgr, pixel(1.0, 0.0, 0.0))

    def test_identical_plates_are_refused(self):
        plate = torch.rand(3, 4, 4)
        with pytest.raises(ValueError, match=r"identical at 16 of 16 pixels"):
            matting.triangulation_matting(plate, plate, plate, plate.clone())
