"""Training losses of Background Matting V2, exactly as the official training scripts add them up.

Chapter 05 (losses) builds these up term by term. Every function takes
``torch.Tensor`` batches shaped ``(B, C, H, W)``: alphas have ``C = 1`` and values in ``[0, 1]``,
foregrounds have ``C = 3`` and values in ``[0, 1]``. Every loss returns a scalar tensor (a mean over
all elements, like ``torch.nn.functional.l1_loss``), so it can be ``.backward()``-ed directly.

The official code (``train_base.py`` / ``train_refine.py``) uses ``kornia.sobel`` and
``kornia.resize``; here the same operations are written with plain ``torch.nn.functional`` so that
mattingkit does not depend on kornia:

* :func:`sobel_magnitude` reproduces ``kornia.filters.sobel`` (normalised 3x3 Sobel kernels,
  replicate padding, magnitude ``sqrt(gx^2 + gy^2 + 1e-6)``);
* ``kornia.resize(x, size)`` is ``F.interpolate(x, size, mode="bilinear", align_corners=False)``.
"""

from __future__ import annotations

from typing import Any, Union

import torch
import torch.nn.functional as F

__all__ = [
    "alpha_l1",
    "alpha_gradient_l1",
    "base_loss",
    "base_loss_from_output",
    "error_mse",
    "foreground_l1",
    "refine_loss",
    "sobel_magnitude",
]

# What base_loss / refine_loss return: the scalar, or (scalar, {term name: detached scalar}).
LossOrTerms = Union[torch.Tensor, tuple[torch.Tensor, dict[str, torch.Tensor]]]

# kornia.filters.sobel adds this inside the square root so that the gradient of the magnitude
# stays finite where the image is flat (d/dx sqrt(x) is infinite at x = 0).
SOBEL_EPS = 1e-6


# --------------------------------------------------------------------------------------------
# Input checks: a clear ValueError instead of a broadcasting surprise deep inside torch.
# --------------------------------------------------------------------------------------------


def _check_4d(name: str, x: torch.Tensor, channels: int | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must be a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channel(s) (B, {channels}, H, W), got shape {tuple(x.shape)}"
        )


def _check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _check_same_batch_and_size(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape[0] != b.shape[0] or a.shape[-2:] != b.shape[-2:]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same batch size and height/width, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """``kornia.resize(x, size)`` of kornia 0.4.1: bilinear, ``align_corners=False``, no antialias."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------
# The four terms.
# --------------------------------------------------------------------------------------------


def sobel_magnitude(x: torch.Tensor, eps: float = SOBEL_EPS) -> torch.Tensor:
    """Sobel gradient magnitude of every channel, the same as ``kornia.filters.sobel(x)``.

    Chapter 05. Why Sobel? Alpha mattes are mostly flat 0 or 1 with thin soft edges; an L1 loss on
    the *gradient* rewards sharp, well-placed edges that a plain L1 barely notices.

    Definition (kornia's, which the official training code calls):

    * kernels ``kx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] / 8`` and ``ky = kx.T`` (normalised so
      that the absolute values sum to 1; a unit step therefore has gradient ``0.5`` at the edge);
    * replicate padding by one pixel, so the output has the input's size;
    * magnitude ``sqrt(gx**2 + gy**2 + eps)`` with ``eps = 1e-6`` (so a flat image gives
      ``1e-3``, not 0, and the gradient of the square root never becomes infinite).

    Args:
        x: ``(B, C, H, W)`` float tensor.
        eps: added under the square root.

    Returns:
        ``(B, C, H, W)`` non-negative tensor.
    """
    _check_4d("x", x)
    b, c, h, w = x.shape
    kx = torch.tensor(
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device
    )
    kx = kx / kx.abs().sum()
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)  # (2, 1, 3, 3): d/dx then d/dy
    padded = F.pad(x.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    gradients = F.conv2d(padded, kernels)  # (B*C, 2, H, W)
    gx, gy = gradients[:, 0], gradients[:, 1]
    return torch.sqrt(gx * gx + gy * gy + eps).reshape(b, c, h, w)


def alpha_l1(pred_pha: torch.Tensor, true_pha: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between predicted and true alpha, ``mean(|pred - true|)``.

    Chapter 05. ``pred_pha`` and ``true_pha``: ``(B, 1, H, W)`` in ``[0, 1]``. Returns a scalar.
    """
    _check_4d("pred_pha", pred_pha)
    _check_same_shape("pred_pha", pred_pha, "true_pha", true_pha)
    return F.l1_loss(pred_pha, true_pha)


def alpha_gradient_l1(pred_pha: torch.Tensor, true_pha: torch.Tensor) -> torch.Tensor:
    """L1 between the Sobel gradient magnitudes, ``mean(|sobel(pred) - sobel(true)|)``.

    Chapter 05. It is zero when the prediction only differs by a constant offset (the gradient of a
    constant is zero), which plain :func:`alpha_l1` would punish: the two terms see different
    mistakes. See :func:`sobel_magnitude` for the exact filter. Returns a scalar.
    """
    _check_4d("pred_pha", pred_pha)
    _check_same_shape("pred_pha", pred_pha, "true_pha", true_pha)
    return F.l1_loss(sobel_magnitude(pred_pha), sobel_magnitude(true_pha))


def foreground_l1(
    pred_fgr: torch.Tensor, true_fgr: torch.Tensor, true_pha: torch.Tensor
) -> torch.Tensor:
    """L1 on the foreground colour, counted only where the true alpha is above zero.

    Chapter 05. Where ``alpha == 0`` the foreground colour is undefined (it never shows in a
    composite), so it must not be learned there. Exactly as the official code, the two images are
    multiplied by the mask ``true_pha > 0`` and then averaged over **all** pixels and channels::

        mean(|pred_fgr * m - true_fgr * m|),  m = (true_pha > 0)

    (so a mostly-transparent crop gives a small loss; it is not a mean over the masked pixels only).

    Args:
        pred_fgr, true_fgr: ``(B, 3, H, W)`` in ``[0, 1]``.
        true_pha: ``(B, 1, H, W)`` in ``[0, 1]``.
    """
    _check_4d("pred_fgr", pred_fgr)
    _check_same_shape("pred_fgr", pred_fgr, "true_fgr", true_fgr)
    _check_4d("true_pha", true_pha, channels=1)
    _check_same_batch_and_size("pred_fgr", pred_fgr, "true_pha", true_pha)
    mask = true_pha > 0
    return F.l1_loss(pred_fgr * mask, true_fgr * mask)


def error_mse(
    pred_err: torch.Tensor, pred_pha: torch.Tensor, true_pha: torch.Tensor, detach: bool = True
) -> torch.Tensor:
    """Teach the error map to predict where the alpha is wrong: ``mean((err - |pha.detach() - true|)^2)``.

    Chapter 05. The target ``|pred_pha - true_pha|`` is *detached*. There is no separate error head
    (the error is channel 4 of the decoder's last convolution, like alpha), so this term's gradient
    still reaches the whole network through ``pred_err``; the detach only keeps the *target* from
    pulling the alpha towards the error estimate. ``train_base.py`` detaches it.

    Args:
        pred_err: ``(B, 1, H, W)`` predicted error map in ``[0, 1]``.
        pred_pha: ``(B, 1, H, W)`` predicted alpha (same size as ``pred_err``).
        true_pha: ``(B, 1, H, W)`` true alpha.
        detach: keep ``True``; ``False`` lets gradients reach ``pred_pha`` through the target, as
            the official ``train_refine.py`` happens to do (see :func:`refine_loss`).
    """
    _check_4d("pred_err", pred_err)
    _check_same_shape("pred_err", pred_err, "pred_pha", pred_pha)
    _check_same_shape("pred_pha", pred_pha, "true_pha", true_pha)
    target_pha = pred_pha.detach() if detach else pred_pha
    return F.mse_loss(pred_err, (target_pha - true_pha).abs())


# --------------------------------------------------------------------------------------------
# The sums used by the two training stages.
# --------------------------------------------------------------------------------------------


def _finish(terms: dict[str, torch.Tensor], return_terms: bool) -> LossOrTerms:
    values = list(terms.values())
    total = values[0]
    for value in values[1:]:  # a plain sum: works under autocast, where dtypes may differ
        total = total + value
    if return_terms:
        return total, {name: value.detach() for name, value in terms.items()}
    return total


def base_loss(
    pred_pha: torch.Tensor,
    pred_fgr: torch.Tensor,
    pred_err: torch.Tensor,
    true_pha: torch.Tensor,
    true_fgr: torch.Tensor,
    return_terms: bool = False,
) -> LossOrTerms:
    """Loss of the base network (``train_base.py``), the plain sum of four terms.

    Chapter 05::

        loss = alpha_l1(pha, pha*) + alpha_gradient_l1(pha, pha*)
             + foreground_l1(fgr, fgr*, pha*) + error_mse(err, pha, pha*)

    Args:
        pred_pha, pred_err: ``(B, 1, H, W)``; pred_fgr: ``(B, 3, H, W)`` (all at the base
            network's resolution, which equals the ground truth's when training the base alone).
        true_pha: ``(B, 1, H, W)``; true_fgr: ``(B, 3, H, W)``.
        return_terms: also return a dict ``{"alpha_l1", "alpha_gradient_l1", "foreground_l1",
            "error_mse"}`` of detached scalars (for a live loss plot).

    Returns:
        The scalar loss, or ``(loss, terms)`` when ``return_terms``.
    """
    _check_4d("true_pha", true_pha, channels=1)
    _check_4d("true_fgr", true_fgr, channels=3)
    terms = {
        "alpha_l1": alpha_l1(pred_pha, true_pha),
        "alpha_gradient_l1": alpha_gradient_l1(pred_pha, true_pha),
        "foreground_l1": foreground_l1(pred_fgr, true_fgr, true_pha),
        "error_mse": error_mse(pred_err, pred_pha, true_pha),
    }
    return _finish(terms, return_terms)


def base_loss_from_output(
    output: Any, true_pha: torch.Tensor, true_fgr: torch.Tensor, return_terms: bool = False
) -> LossOrTerms:
    """:func:`base_loss` for a ``BaseOutput(pha, fgr, err, hid)`` straight from ``MattingBase``.

    Chapter 05. ``loss = base_loss_from_output(model(src, bgr), true_pha, true_fgr)``.
    """
    for field in ("pha", "fgr", "err"):
        if not hasattr(output, field):
            raise TypeError(
                f"output must be a BaseOutput with fields pha, fgr, err; "
                f"{type(output).__name__} has no {field!r}"
            )
    return base_loss(output.pha, output.fgr, output.err, true_pha, true_fgr, return_terms)


def refine_loss(
    output: Any,
    true_pha: torch.Tensor,
    true_fgr: torch.Tensor,
    return_terms: bool = False,
    detach_error_target: bool = True,
) -> LossOrTerms:
    """Loss of the whole network with its refiner (``train_refine.py``), a sum of seven terms.

    Chapter 05. With ``lg`` = full resolution, ``sm`` = the base network's resolution, ``*`` = ground
    truth, ``down(x)`` = bilinear resize of the ground truth to the *small outputs' size*
    (``pha_sm.shape``; for H, W divisible by 4 and ``backbone_scale=1/4`` that is H/4 x W/4) and
    ``up(x)`` = bilinear resize to full resolution (``align_corners=False`` for both)::

        pha*_sm = down(pha*),  fgr*_sm = down(fgr*)
        loss = L1(pha, pha*)                         + L1(pha_sm, pha*_sm)
             + L1(sobel(pha), sobel(pha*))           + L1(sobel(pha_sm), sobel(pha*_sm))
             + L1(fgr * [pha* > 0], fgr* * [pha* > 0])
             + L1(fgr_sm * [pha*_sm > 0], fgr*_sm * [pha*_sm > 0])
             + MSE(up(err_sm), |up(pha_sm) - pha*|)

    Args:
        output: a ``RefineOutput(pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)`` from ``MattingRefine``
            (any object with those attributes).
        true_pha: ``(B, 1, H, W)``; true_fgr: ``(B, 3, H, W)``, at full resolution.
        return_terms: also return the seven detached terms as a dict.
        detach_error_target: the official ``train_refine.py`` does **not** detach
            ``up(pha_sm)`` in the error target (unlike ``train_base.py``), so there the last term
            also moves ``pha_sm`` (towards ``|pha_sm - pha*| = err_sm``, which pushes alpha away
            from the truth wherever the error map overestimates the error). We detach by default,
            so that only the error prediction learns from this term, as in the base stage (the
            paper describes Eq. 3 as a loss that trains the error map, not alpha);
            pass ``False`` to reproduce ``train_refine.py`` bit for bit.

    Returns:
        The scalar loss, or ``(loss, terms)`` when ``return_terms``.
    """
    for field in ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm"):
        if not hasattr(output, field):
            raise TypeError(
                "output must be a RefineOutput with fields pha, fgr, pha_sm, fgr_sm, err_sm; "
                f"{type(output).__name__} has no {field!r}"
            )
    _check_4d("true_pha", true_pha, channels=1)
    _check_4d("true_fgr", true_fgr, channels=3)
    _check_4d("output.pha_sm", output.pha_sm, channels=1)
    _check_4d("output.fgr_sm", output.fgr_sm, channels=3)
    _check_same_shape("output.pha_sm", output.pha_sm, "output.err_sm", output.err_sm)

    # The official code resizes the ground truth to the small outputs' size (kornia.resize with
    # pred_pha_sm.shape[2:]), not by a scale factor: both agree when H and W divide by 4, and the
    # size form also works when the model rounded the small size.
    small_size = output.pha_sm.shape[-2:]
    full_size = true_pha.shape[-2:]
    true_pha_sm = _resize(true_pha, small_size)
    true_fgr_sm = _resize(true_fgr, small_size)
    terms = {
        "alpha_l1": alpha_l1(output.pha, true_pha),
        "alpha_l1_sm": alpha_l1(output.pha_sm, true_pha_sm),
        "alpha_gradient_l1": alpha_gradient_l1(output.pha, true_pha),
        "alpha_gradient_l1_sm": alpha_gradient_l1(output.pha_sm, true_pha_sm),
        "foreground_l1": foreground_l1(output.fgr, true_fgr, true_pha),
        "foreground_l1_sm": foreground_l1(output.fgr_sm, true_fgr_sm, true_pha_sm),
        "error_mse": error_mse(
            _resize(output.err_sm, full_size),
            _resize(output.pha_sm, full_size),
            true_pha,
            detach=detach_error_target,
        ),
    }
    return _finish(terms, return_terms)
