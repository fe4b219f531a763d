"""The matting equation and the classic ways to solve it.

Every pixel of a photo ``I`` is a blend of a foreground colour ``F`` and a background
colour ``B``, weighted by the opacity ``α`` (alpha)::

    I = α·F + (1 − α)·B

Matting recovers ``α`` and ``F`` from ``I``; compositing uses them to put the subject
in front of a new background ``B'``. This module holds the equation, its two classic
solutions (difference keying and triangulation matting) and the residual trick of
Background Matting V2 (the network predicts ``F − I`` instead of ``F``).

Conventions: torch tensors, values in [0, 1], shapes ``(B, C, H, W)`` or ``(C, H, W)``;
colour images have 3 channels, alpha and masks 1. Functions accept either layout and
return the layout they were given. Batches broadcast (a single plate can serve a batch).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

__all__ = [
    "Matte",
    "composite",
    "foreground_to_residual",
    "residual_to_foreground",
    "composite_on_color",
    "composite_on_image",
    "composite_on_blurred_plate",
    "difference_key",
    "triangulation_matting",
    "resize_to_cover",
]


class Matte(NamedTuple):
    """A solved matte: ``pha`` (…,1,H,W) and ``fgr`` (…,3,H,W), both in [0, 1]."""

    pha: torch.Tensor
    fgr: torch.Tensor


# --- input checks: clear errors instead of a traceback from inside torch -------------------


def _check_image(name: str, x: object, channels: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        hint = " (use torch.from_numpy(array).permute(2, 0, 1) for an H×W×C array)"
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}{hint}")
    if x.ndim not in (3, 4):
        raise ValueError(f"{name} must have shape (C, H, W) or (B, C, H, W), got {tuple(x.shape)}")
    if x.shape[-3] != channels:
        raise ValueError(
            f"{name} must have {channels} channel{'s' if channels > 1 else ''} "
            f"(dimension -3), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a float tensor with values in [0, 1], got {x.dtype} "
            "(divide uint8 images by 255)"
        )
    return x


def _check_same_layout(**tensors: torch.Tensor) -> None:
    """Same H×W everywhere; batch sizes equal or 1; all 3-D or all 4-D."""
    names = list(tensors)
    first = names[0]
    for name in names[1:]:
        a, b = tensors[first], tensors[name]
        if a.ndim != b.ndim:
            raise ValueError(
                f"{first} {tuple(a.shape)} and {name} {tuple(b.shape)} mix (C, H, W) and "
                "(B, C, H, W); give both the same layout"
            )
        if a.shape[-2:] != b.shape[-2:]:
            raise ValueError(
                f"{first} is {a.shape[-2]}×{a.shape[-1]} but {name} is "
                f"{b.shape[-2]}×{b.shape[-1]} (H×W); they must be the same size"
            )
        if a.ndim == 4 and a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
            raise ValueError(
                f"{first} has batch size {a.shape[0]} but {name} has {b.shape[0]}; "
                "they must be equal (or one of them 1)"
            )


# --- Chapter 01: the compositing equation ---------------------------------------------------


def composite(fgr: torch.Tensor, pha: torch.Tensor, bgr: torch.Tensor) -> torch.Tensor:
    """Blend a foreground over a background: ``α·F + (1 − α)·B``. Chapter 01.

    Args:
        fgr: foreground colours ``F``, (…,3,H,W) in [0, 1].
        pha: alpha ``α``, (…,1,H,W) in [0, 1]; 1 is opaque foreground.
        bgr: background ``B`` (or a new background ``B'``), (…,3,H,W) in [0, 1].

    Returns:
        The composite image, (…,3,H,W) in [0, 1].
    """
    _check_image("fgr", fgr, 3)
    _check_image("pha", pha, 1)
    _check_image("bgr", bgr, 3)
    _check_same_layout(fgr=fgr, pha=pha, bgr=bgr)
    return pha * fgr + (1 - pha) * bgr


def _color_tensor(color: Sequence[float] | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    values = torch.as_tensor(color, dtype=like.dtype, device=like.device).flatten()
    if values.numel() != 3:
        raise ValueError(f"color must have 3 values (R, G, B), got {values.numel()}")
    if values.min() < 0 or values.max() > 1:
        raise ValueError(
            f"color values must be in [0, 1], got {values.tolist()} (divide 0–255 colours by 255)"
        )
    shape = (3, 1, 1) if like.ndim == 3 else (1, 3, 1, 1)
    return values.view(shape)


def composite_on_color(
    fgr: torch.Tensor, pha: torch.Tensor, color: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """Composite over a flat colour, e.g. ``(0.47, 1.0, 0.61)``, the official green. Chapter 01.

    ``color`` is three numbers in [0, 1]. Returns (…,3,H,W) in [0, 1].
    """
    _check_image("fgr", fgr, 3)
    _check_image("pha", pha, 1)
    _check_same_layout(fgr=fgr, pha=pha)
    return composite(fgr, pha, _color_tensor(color, fgr).expand_as(fgr))


def composite_on_image(fgr: torch.Tensor, pha: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Composite over a new background image. Chapter 01.

    When ``image`` is not the frame's size it is scaled to cover the frame (aspect ratio
    kept) and centre-cropped, with a warning that says so: a silent stretch would hide
    a mistake such as passing the wrong plate.

    Args:
        fgr: (…,3,H,W) in [0, 1]. pha: (…,1,H,W) in [0, 1].
        image: the new background, (…,3,h,w) in [0, 1], any size.
    """
    _check_image("fgr", fgr, 3)
    _check_image("pha", pha, 1)
    _check_image("image", image, 3)
    _check_same_layout(fgr=fgr, pha=pha)
    if image.ndim != fgr.ndim:
        image = image.unsqueeze(0) if image.ndim == 3 else image
        if image.ndim != fgr.ndim:  # a batch of backgrounds for a single frame
            raise ValueError(
                f"image {tuple(image.shape)} is a batch but fgr {tuple(fgr.shape)} is a "
                "single frame; give one background per frame"
            )
    height, width = fgr.shape[-2:]
    if image.shape[-2:] != fgr.shape[-2:]:
        warnings.warn(
            f"background image is {image.shape[-2]}×{image.shape[-1]} but the frame is "
            f"{height}×{width} (H×W): scaling it to cover the frame and centre-cropping",
            stacklevel=2,
        )
        image = resize_to_cover(image, height, width).clamp(0, 1)
    return composite(fgr, pha, image)


def composite_on_blurred_plate(
    fgr: torch.Tensor, pha: torch.Tensor, bgr: torch.Tensor, sigma: float = 8.0
) -> torch.Tensor:
    """ "Portrait mode": the subject, sharp, over its own plate blurred by a Gaussian. Chapter 01.

    Args:
        fgr: (…,3,H,W) in [0, 1]. pha: (…,1,H,W) in [0, 1].
        bgr: the clean plate, (…,3,H,W) in [0, 1].
        sigma: Gaussian standard deviation in pixels (> 0); the kernel spans ±3σ.
    """
    _check_image("fgr", fgr, 3)
    _check_image("pha", pha, 1)
    _check_image("bgr", bgr, 3)
    _check_same_layout(fgr=fgr, pha=pha, bgr=bgr)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 pixels, got {sigma}")
    kernel = 2 * math.ceil(3 * sigma) + 1
    # Reflect padding needs the kernel to fit inside the image.
    limit = 2 * (min(bgr.shape[-2:]) - 1) + 1
    kernel = min(kernel, limit if limit % 2 else limit - 1)
    blurred = gaussian_blur(bgr, kernel_size=[kernel, kernel], sigma=[sigma, sigma])
    return composite(fgr, pha, blurred)


# --- Chapter 02: the foreground residual ----------------------------------------------------


def foreground_to_residual(fgr: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """The residual ``F − I`` that Background Matting V2 predicts instead of ``F``. Chapter 02.

    Args:
        fgr: foreground ``F``, (…,3,H,W) in [0, 1].
        src: the input frame ``I``, (…,3,H,W) in [0, 1].

    Returns:
        (…,3,H,W) in [−1, 1]; zero wherever the pixel is pure foreground.
    """
    _check_image("fgr", fgr, 3)
    _check_image("src", src, 3)
    _check_same_layout(fgr=fgr, src=src)
    return fgr - src


def residual_to_foreground(residual: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """Foreground from a residual: ``clamp(I + residual, 0, 1)``. Chapter 02.

    The clamp keeps colours valid even when a (predicted, upsampled) residual
    overshoots. ``residual`` is (…,3,H,W) in [−1, 1]; returns (…,3,H,W) in [0, 1].
    """
    _check_image("residual", residual, 3)
    _check_image("src", src, 3)
    _check_same_layout(residual=residual, src=src)
    return (src + residual).clamp(0, 1)


# --- Chapter 01: classic solutions ----------------------------------------------------------


def difference_key(
    src: torch.Tensor, bgr: torch.Tensor, threshold: float = 0.1, softness: float = 0.1
) -> torch.Tensor:
    """The naive baseline: alpha from how far each pixel's colour is from the plate. Chapter 01.

    The distance is the Euclidean RGB distance ``d = ‖I − B‖`` (0 … √3). Alpha is 0 for
    ``d ≤ threshold``, 1 for ``d ≥ threshold + softness`` and a linear ramp between, so
    ``softness = 0`` gives a hard binary key. It fails wherever the subject has the
    plate's colour, on shadows (the plate changed) and on noise or misalignment.

    Returns:
        alpha, (…,1,H,W) in [0, 1].
    """
    _check_image("src", src, 3)
    _check_image("bgr", bgr, 3)
    _check_same_layout(src=src, bgr=bgr)
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if softness < 0:
        raise ValueError(f"softness must be >= 0, got {softness}")
    distance = (src - bgr).square().sum(dim=-3, keepdim=True).sqrt()
    if softness == 0:
        return (distance > threshold).to(src.dtype)
    return ((distance - threshold) / softness).clamp(0, 1)


def triangulation_matting(
    src1: torch.Tensor,
    src2: torch.Tensor,
    bgr1: torch.Tensor,
    bgr2: torch.Tensor,
    min_plate_difference: float = 1e-3,
) -> Matte:
    """Exact alpha and foreground from one subject shot over two known plates. Chapter 01.

    Smith & Blinn (1996): with ``I₁ = αF + (1 − α)B₁`` and ``I₂ = αF + (1 − α)B₂`` the
    foreground cancels: ``I₁ − I₂ = (1 − α)(B₁ − B₂)``. That is three equations (one per
    colour channel) for one unknown, solved by least squares::

        1 − α = Σ_c (I₁ − I₂)(B₁ − B₂) / Σ_c (B₁ − B₂)²

    and then ``αF = ½[(I₁ + I₂) − (1 − α)(B₁ + B₂)]``. Where α = 0 the foreground is
    unknowable and is returned as 0.

    Args:
        src1, src2: the subject over plate 1 and over plate 2, (…,3,H,W) in [0, 1].
        bgr1, bgr2: the two clean plates, (…,3,H,W) in [0, 1].
        min_plate_difference: smallest squared plate distance Σ_c (B₁ − B₂)² accepted.

    Raises:
        ValueError: when the plates are (nearly) identical at some pixel: there the
            two shots carry no more information than one.
    """
    for name, x in (("src1", src1), ("src2", src2), ("bgr1", bgr1), ("bgr2", bgr2)):
        _check_image(name, x, 3)
    _check_same_layout(src1=src1, src2=src2, bgr1=bgr1, bgr2=bgr2)
    plate_difference = bgr1 - bgr2
    denominator = plate_difference.square().sum(dim=-3, keepdim=True)
    too_close = denominator < min_plate_difference
    if too_close.any():
        count = int(too_close.sum())
        where = tuple(int(i) for i in too_close.nonzero()[0])
        raise ValueError(
            f"bgr1 and bgr2 are (nearly) identical at {count} of {too_close.numel()} pixels "
            f"(first at index {where}); triangulation needs two plates whose colours differ "
            "at every pixel, e.g. one blue and one green screen"
        )
    one_minus_alpha = ((src1 - src2) * plate_difference).sum(dim=-3, keepdim=True) / denominator
    pha = (1 - one_minus_alpha).clamp(0, 1)
    premultiplied = 0.5 * ((src1 + src2) - (1 - pha) * (bgr1 + bgr2))
    fgr = torch.where(
        pha > 1e-6, premultiplied / pha.clamp_min(1e-6), torch.zeros_like(premultiplied)
    )
    return Matte(pha=pha, fgr=fgr.clamp(0, 1))


def resize_to_cover(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Scale ``image`` (…, C, h, w) to cover ``height`` × ``width``, then centre-crop. Chapter 01.

    The aspect ratio is kept (no stretching): the image is scaled by the larger of the two
    ratios with antialiased bilinear filtering, so one side fits exactly and the other
    overhangs; the overhang is cropped evenly on both sides. The one rule for the whole
    library (new backgrounds in :mod:`mattingkit.core.matting`, dataset crops in
    :mod:`mattingkit.data.datasets` and :mod:`mattingkit.data.augment`): sizes round to the nearest pixel
    (never below the target) and the crop offset rounds like torchvision's ``center_crop``.
    """
    if image.ndim < 3:
        raise ValueError(f"expected an image (…, C, H, W), got shape {tuple(image.shape)}")
    if height < 1 or width < 1:
        raise ValueError(f"the target size must be positive, got {height}×{width} (H×W)")
    h, w = image.shape[-2:]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    if (new_h, new_w) != (h, w):
        flat = image.reshape(-1, *image.shape[-3:])
        flat = F.interpolate(
            flat, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
        )
        image = flat.reshape(*image.shape[:-2], new_h, new_w)
    top, left = round((new_h - height) / 2), round((new_w - width) / 2)
    return image[..., top : top + height, left : left + width]
