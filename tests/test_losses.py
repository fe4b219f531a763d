"""Tests for mattingkit.core.losses: hand-computed values on tiny tensors."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F

from mattingkit.core import losses


class FakeBaseOutput(NamedTuple):
    pha: torch.Tensor
    fgr: torch.Tensor
    err: torch.Tensor
    hid: torch.Tensor


class FakeRefineOutput(NamedTuple):
    pha: torch.Tensor
    fgr: torch.Tensor
    pha_sm: torch.Tensor
    fgr_sm: torch.Tensor
    err_sm: torch.Tensor
    ref_sm: torch.Tensor


def full(value: float, *shape: int, requires_grad: bool = False) -> torch.Tensor:
    return torch.full(shape, float(value), requires_grad=requires_grad)


# ------------------------------------------------------------------------------- single terms


def test_alpha_l1_hand_computed():
    pred = torch.zeros(1, 1, 2, 2)
    true = torch.tensor([[[[1.0, 0.0], [0.5, 0.0]]]])
    assert losses.alpha_l1(pred, true).item() == pytest.approx(1.5 / 4)


def test_sobel_of_vertical_step_edge():
    # Columns 0, 0, 1, 1: the two columns beside the step see (1 + 2 + 1) / 8 = 0.5 in x, 0 in y.
    step = torch.tensor([0.0, 0.0, 1.0, 1.0]).repeat(4, 1).view(1, 1, 4, 4)
    magnitude = losses.sobel_magnitude(step)
    assert magnitude.shape == step.shape
    edge = torch.tensor(0.25 + 1e-6).sqrt().item()
    flat = torch.tensor(1e-6).sqrt().item()  # kornia's eps under the square root
    expected = torch.tensor([flat, edge, edge, flat]).repeat(4, 1).view(1, 1, 4, 4)
    torch.testing.assert_close(magnitude, expected)
    # Rotating the image rotates the gradient: a horizontal edge gives the same magnitudes.
    torch.testing.assert_close(
        losses.sobel_magnitude(step.transpose(2, 3)), expected.transpose(2, 3)
    )


def test_sobel_works_per_channel_and_has_finite_gradient_on_flat_input():
    x = torch.zeros(2, 3, 5, 6, requires_grad=True)
    magnitude = losses.sobel_magnitude(x)
    assert magnitude.shape == (2, 3, 5, 6)
    magnitude.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_gradient_term_ignores_a_constant_offset_but_l1_does_not():
    true = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.8
    pred = true + 0.1
    assert losses.alpha_gradient_l1(pred, true).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.alpha_l1(pred, true).item() == pytest.approx(0.1, abs=1e-6)


def test_gradient_term_sees_a_blurred_edge():
    step = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]).repeat(6, 1).view(1, 1, 6, 6)
    soft = torch.tensor([0.0, 0.0, 0.4, 0.6, 1.0, 1.0]).repeat(6, 1).view(1, 1, 6, 6)
    assert losses.alpha_gradient_l1(soft, step).item() > 0.01


def test_foreground_l1_is_the_mean_over_all_pixels_of_the_masked_images():
    pred_fgr = torch.ones(1, 3, 2, 2)
    true_fgr = torch.zeros(1, 3, 2, 2)
    true_pha = torch.tensor([[[[0.3, 0.0], [0.0, 0.0]]]])
    # 3 of the 12 values differ by 1 (one pixel, three channels): 3 / 12, not 1 (masked-only mean).
    assert losses.foreground_l1(pred_fgr, true_fgr, true_pha).item() == pytest.approx(0.25)
    # Where alpha is 0 the foreground colour is free.
    assert losses.foreground_l1(pred_fgr, true_fgr, torch.zeros(1, 1, 2, 2)).item() == 0.0


def test_error_mse_hand_computed_and_target_is_detached():
    pred_err = torch.zeros(1, 1, 2, 2, requires_grad=True)
    pred_pha = full(0.5, 1, 1, 2, 2, requires_grad=True)
    true_pha = torch.zeros(1, 1, 2, 2)
    loss = losses.error_mse(pred_err, pred_pha, true_pha)
    assert loss.item() == pytest.approx(0.25)  # (0 - |0.5 - 0|)^2
    loss.backward()
    assert pred_pha.grad is None  # no gradient reaches alpha through the error target
    assert pred_err.grad is not None and (pred_err.grad < 0).all()

    pred_pha.grad = None
    losses.error_mse(pred_err, pred_pha, true_pha, detach=False).backward()
    assert pred_pha.grad is not None and pred_pha.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "call",
    [
        lambda: losses.alpha_l1(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5)),
        lambda: losses.alpha_gradient_l1(torch.zeros(1, 1, 4, 4), torch.zeros(2, 1, 4, 4)),
        lambda: losses.foreground_l1(
            torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 8, 8)
        ),
        lambda: losses.error_mse(
            torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 4, 4)
        ),
    ],
)
def test_shape_mismatch_names_both_shapes(call):
    with pytest.raises(ValueError, match=r"\(1, .*\) and \(.*\)"):
        call()


def test_non_batched_input_is_rejected_clearly():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*\(4, 4\)"):
        losses.alpha_l1(torch.zeros(4, 4), torch.zeros(4, 4))


# ---------------------------------------------------------------------------------- base_loss


def test_base_loss_is_the_sum_of_the_four_terms():
    g = torch.Generator().manual_seed(1)
    pred_pha, true_pha = torch.rand(2, 1, 8, 8, generator=g), torch.rand(2, 1, 8, 8, generator=g)
    true_pha[:, :, :4] = 0  # some transparent pixels for the foreground mask
    pred_fgr, true_fgr = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    pred_err = torch.rand(2, 1, 8, 8, generator=g)
    total, terms = losses.base_loss(
        pred_pha, pred_fgr, pred_err, true_pha, true_fgr, return_terms=True
    )
    assert set(terms) == {"alpha_l1", "alpha_gradient_l1", "foreground_l1", "error_mse"}
    assert total.item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-6)
    assert terms["alpha_l1"].item() == pytest.approx((pred_pha - true_pha).abs().mean().item())
    mask = true_pha > 0
    expected_fgr = (pred_fgr * mask - true_fgr * mask).abs().mean().item()
    assert terms["foreground_l1"].item() == pytest.approx(expected_fgr)
    expected_err = ((pred_err - (pred_pha - true_pha).abs()) ** 2).mean().item()
    assert terms["error_mse"].item() == pytest.approx(expected_err)
    # Without return_terms it is the same scalar.
    alone = losses.base_loss(pred_pha, pred_fgr, pred_err, true_pha, true_fgr)
    assert alone.dim() == 0 and alone.item() == pytest.approx(total.item())


def test_base_loss_is_zero_for_a_perfect_prediction():
    true_pha = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    true_fgr = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(3))
    loss = losses.base_loss(true_pha, true_fgr, torch.zeros(1, 1, 6, 6), true_pha, true_fgr)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)


def test_base_loss_from_output_accepts_the_named_tuple():
    true_pha, true_fgr = full(0.5, 1, 1, 4, 4), full(0.2, 1, 3, 4, 4)
    output = FakeBaseOutput(
        pha=full(0.7, 1, 1, 4, 4),  # L1 0.2, no gradient difference
        fgr=full(0.3, 1, 3, 4, 4),  # L1 0.1 everywhere (alpha > 0 everywhere)
        err=full(0.2, 1, 1, 4, 4),  # exactly |0.7 - 0.5|: 0
        hid=torch.zeros(1, 32, 4, 4),
    )
    assert losses.base_loss_from_output(output, true_pha, true_fgr).item() == pytest.approx(0.3)
    with pytest.raises(TypeError, match="err"):
        losses.base_loss_from_output((output.pha, output.fgr), true_pha, true_fgr)


# -------------------------------------------------------------------------------- refine_loss


def constant_refine_output(pha, fgr, pha_sm, fgr_sm, err_sm, size=(8, 8), scale=4):
    h, w = size
    hs, ws = h // scale, w // scale
    return FakeRefineOutput(
        pha=full(pha, 1, 1, h, w, requires_grad=True),
        fgr=full(fgr, 1, 3, h, w, requires_grad=True),
        pha_sm=full(pha_sm, 1, 1, hs, ws, requires_grad=True),
        fgr_sm=full(fgr_sm, 1, 3, hs, ws, requires_grad=True),
        err_sm=full(err_sm, 1, 1, hs, ws, requires_grad=True),
        ref_sm=torch.zeros(1, 1, h // 4, w // 4),
    )


def test_refine_loss_hand_computed_on_constant_images():
    true_pha, true_fgr = full(0.5, 1, 1, 8, 8), full(0.2, 1, 3, 8, 8)
    # Large alpha off by 0.2, large fgr off by 0.1, everything small is exact: 0.3.
    output = constant_refine_output(pha=0.7, fgr=0.3, pha_sm=0.5, fgr_sm=0.2, err_sm=0.0)
    total, terms = losses.refine_loss(output, true_pha, true_fgr, return_terms=True)
    assert total.item() == pytest.approx(0.3)
    assert terms["alpha_l1"].item() == pytest.approx(0.2)
    assert terms["foreground_l1"].item() == pytest.approx(0.1)
    assert len(terms) == 7

    # Small alpha off by 0.1 (+0.1) and err_sm predicts exactly that error: the error term is 0.
    output = constant_refine_output(pha=0.5, fgr=0.2, pha_sm=0.6, fgr_sm=0.4, err_sm=0.1)
    total, terms = losses.refine_loss(output, true_pha, true_fgr, return_terms=True)
    assert terms["alpha_l1_sm"].item() == pytest.approx(0.1)
    assert terms["foreground_l1_sm"].item() == pytest.approx(0.2)
    assert terms["error_mse"].item() == pytest.approx(0.0, abs=1e-12)
    assert total.item() == pytest.approx(0.3)

    # err_sm wrong by 0.3: MSE 0.09.
    output = constant_refine_output(pha=0.5, fgr=0.2, pha_sm=0.5, fgr_sm=0.2, err_sm=0.3)
    assert losses.refine_loss(output, true_pha, true_fgr).item() == pytest.approx(0.09)


def test_refine_loss_resizes_the_ground_truth_to_the_small_outputs_size():
    g = torch.Generator().manual_seed(4)
    true_pha = torch.rand(1, 1, 16, 12, generator=g)
    true_fgr = torch.rand(1, 3, 16, 12, generator=g)
    small_pha = F.interpolate(true_pha, size=(4, 3), mode="bilinear", align_corners=False)
    small_fgr = F.interpolate(true_fgr, size=(4, 3), mode="bilinear", align_corners=False)
    output = FakeRefineOutput(
        pha=true_pha.clone(),
        fgr=true_fgr.clone(),
        pha_sm=small_pha.clone(),
        fgr_sm=small_fgr.clone(),
        err_sm=torch.zeros(1, 1, 4, 3),
        ref_sm=torch.zeros(1, 1, 4, 3),
    )
    _, terms = losses.refine_loss(output, true_pha, true_fgr, return_terms=True)
    for name in ("alpha_l1", "alpha_l1_sm", "alpha_gradient_l1_sm", "foreground_l1_sm"):
        assert terms[name].item() == pytest.approx(0.0, abs=1e-6), name
    # The error target is |up(pha_sm) - pha*|, which is not zero: up(down(x)) != x.
    up = F.interpolate(small_pha, size=(16, 12), mode="bilinear", align_corners=False)
    assert terms["error_mse"].item() == pytest.approx(((up - true_pha) ** 2).mean().item())
    assert terms["error_mse"].item() > 0


def test_refine_error_target_detached_by_default_but_not_in_official_mode():
    true_pha, true_fgr = full(0.5, 1, 1, 8, 8), full(0.2, 1, 3, 8, 8)
    # pha_sm exact (L1 and Sobel give zero gradient); err_sm wrong: only the error term could
    # reach pha_sm, and only through the (official, undetached) target.
    output = constant_refine_output(pha=0.5, fgr=0.2, pha_sm=0.5, fgr_sm=0.2, err_sm=0.3)
    losses.refine_loss(output, true_pha, true_fgr).backward()
    assert output.pha_sm.grad.abs().sum().item() == 0.0
    assert output.err_sm.grad.abs().sum().item() > 0

    output = constant_refine_output(pha=0.5, fgr=0.2, pha_sm=0.55, fgr_sm=0.2, err_sm=0.3)
    losses.refine_loss(output, true_pha, true_fgr, detach_error_target=True).backward()
    detached_grad = output.pha_sm.grad.clone()
    output = constant_refine_output(pha=0.5, fgr=0.2, pha_sm=0.55, fgr_sm=0.2, err_sm=0.3)
    losses.refine_loss(output, true_pha, true_fgr, detach_error_target=False).backward()
    assert not torch.allclose(output.pha_sm.grad, detached_grad)


def test_refine_loss_rejects_wrong_outputs():
    true_pha, true_fgr = full(0.5, 1, 1, 8, 8), full(0.2, 1, 3, 8, 8)
    output = constant_refine_output(pha=0.5, fgr=0.2, pha_sm=0.5, fgr_sm=0.2, err_sm=0.0)
    with pytest.raises(TypeError, match="pha_sm"):
        losses.refine_loss(
            FakeBaseOutput(output.pha, output.fgr, output.pha, None), true_pha, true_fgr
        )
    with pytest.raises(ValueError, match=r"\(1, 1, 8, 8\) and \(1, 1, 4, 4\)"):
        losses.refine_loss(output, full(0.5, 1, 1, 4, 4), full(0.2, 1, 3, 4, 4))


# ------------------------------------------------- against kornia and the official model


def test_sobel_matches_kornia():
    kornia = pytest.importorskip("kornia")
    x = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(losses.sobel_magnitude(x), kornia.filters.sobel(x))


def test_refine_loss_matches_the_official_formula_written_with_kornia():
    kornia = pytest.importorskip("kornia")
    resize = kornia.geometry.transform.resize
    sobel = kornia.filters.sobel
    g = torch.Generator().manual_seed(6)
    true_pha = torch.rand(2, 1, 16, 20, generator=g)
    true_pha[true_pha < 0.3] = 0
    true_fgr = torch.rand(2, 3, 16, 20, generator=g)
    output = FakeRefineOutput(
        pha=torch.rand(2, 1, 16, 20, generator=g),
        fgr=torch.rand(2, 3, 16, 20, generator=g),
        pha_sm=torch.rand(2, 1, 4, 5, generator=g),
        fgr_sm=torch.rand(2, 3, 4, 5, generator=g),
        err_sm=torch.rand(2, 1, 4, 5, generator=g),
        ref_sm=torch.zeros(2, 1, 4, 5),
    )
    # train_refine.py's compute_loss, transcribed with today's kornia names.
    true_pha_sm = resize(true_pha, output.pha_sm.shape[2:])
    true_fgr_sm = resize(true_fgr, output.fgr_sm.shape[2:])
    msk_lg, msk_sm = true_pha != 0, true_pha_sm != 0
    official = (
        F.l1_loss(output.pha, true_pha)
        + F.l1_loss(output.pha_sm, true_pha_sm)
        + F.l1_loss(sobel(output.pha), sobel(true_pha))
        + F.l1_loss(sobel(output.pha_sm), sobel(true_pha_sm))
        + F.l1_loss(output.fgr * msk_lg, true_fgr * msk_lg)
        + F.l1_loss(output.fgr_sm * msk_sm, true_fgr_sm * msk_sm)
        + F.mse_loss(
            resize(output.err_sm, true_pha.shape[2:]),
            resize(output.pha_sm, true_pha.shape[2:]).sub(true_pha).abs(),
        )
    )
    ours = losses.refine_loss(output, true_pha, true_fgr, detach_error_target=False)
    torch.testing.assert_close(ours, official)
    # Detaching changes gradients, never the value.
    torch.testing.assert_close(losses.refine_loss(output, true_pha, true_fgr), official)


def test_refine_loss_backpropagates_through_the_official_model():
    reference = pytest.importorskip("BackgroundMattingV2.model")
    torch.manual_seed(0)
    model = reference.MattingRefine("mobilenetv2", backbone_scale=0.25, refine_mode="full").eval()
    src, bgr = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    output = FakeRefineOutput(*model(src, bgr))
    true_pha = (torch.rand(1, 1, 64, 64) > 0.5).float()
    loss, terms = losses.refine_loss(output, true_pha, src, return_terms=True)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert model.refiner.conv4.weight.grad.abs().sum() > 0
    assert model.backbone.features[0][0].weight.grad.abs().sum() > 0


def test_losses_train_mattingkit_models_end_to_end():
    try:
        from mattingkit import MattingBase, MattingRefine
    except (ImportError, AttributeError):  # pragma: no cover - model not written yet
        pytest.skip("mattingkit.core.model is not available")
    torch.manual_seed(0)
    src, bgr = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    true_pha = (torch.rand(2, 1, 64, 64) > 0.5).float()

    base = MattingBase("mobilenetv2").eval()
    loss = losses.base_loss_from_output(base(src, bgr), true_pha, src)
    loss.backward()
    assert torch.isfinite(loss) and base.decoder.conv4.weight.grad.abs().sum() > 0

    refine = MattingRefine("mobilenetv2", refine_mode="full").eval()
    loss, terms = losses.refine_loss(refine(src, bgr), true_pha, src, return_terms=True)
    loss.backward()
    assert torch.isfinite(loss) and set(terms) >= {"alpha_l1_sm", "error_mse"}
    assert refine.refiner.conv4.weight.grad.abs().sum() > 0
