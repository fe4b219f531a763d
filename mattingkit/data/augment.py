"""Chapter 06. The official training augmentations, per sample and per batch.

The official ``dataset/augmentation.py`` and the training loops of ``train_base.py`` /
``train_refine.py``, re-done with ``torchvision.transforms.v2.functional``:

* :func:`augment_foreground` and :func:`augment_background` change one sample's view (paired
  affine + resize, flip, box blur, sharpen, colour jitter) with parameters drawn from a
  per-sample ``numpy`` generator, not from torch's global RNG, so sample ``i`` of epoch ``e``
  is the same in every run and in every DataLoader worker
  (:class:`mattingkit.data.datasets.CompositionDataset` calls them);
* :func:`augment_batch` is what the training loop does to a whole batch (shadow, noise, plate
  colour jitter, plate misalignment) before composing ``src``: vectorised, on any device;
* :func:`camera_effects` (mattingkit's own, not in the official recipe) adds what real cameras
  do on top: floor shadows, exposure and white-balance shifts, shot noise, JPEG.
"""

from __future__ import annotations

import math
from typing import Union

import cv2
import numpy as np
import torch
import torch.nn.functional as nnf
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from mattingkit.core.matting import resize_to_cover

__all__ = ["augment_background", "augment_batch", "augment_foreground", "camera_effects"]

Size = Union[int, tuple[int, int]]


# --------------------------------------------------------------------------------------
# Per-sample augmentations (the official dataset/augmentation.py)
# --------------------------------------------------------------------------------------


def _as_hw(size: Size) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got (H, W) = ({h}, {w})")
    return h, w


def _affine_and_resize(
    image: torch.Tensor,
    size: tuple[int, int],
    rng: np.random.Generator,
    degrees: float,
    translate: float,
    scale: tuple[float, float],
    shear: float,
) -> torch.Tensor:
    """Random affine, then fit to ``size``: the official ``RandomAffineAndResize``.

    The image is first resized (with antialiasing) so it just covers ``size``, then
    rotated/translated/scaled/sheared about its centre with bilinear interpolation, then
    centre-cropped (zero padding where the image does not reach). ``scale < 1`` shrinks
    the subject inside the frame; ``scale > 1`` zooms in (used for backgrounds).
    """
    out_h, out_w = size
    image = resize_to_cover(image, out_h, out_w)
    angle = float(rng.uniform(-degrees, degrees))
    shift = [
        float(rng.uniform(-translate, translate) * out_w),
        float(rng.uniform(-translate, translate) * out_h),
    ]
    zoom = float(rng.uniform(*scale))
    shear_xy = [float(rng.uniform(-shear, shear)), float(rng.uniform(-shear, shear))]
    return TF.affine(
        image,
        angle=angle,
        translate=shift,
        scale=zoom,
        shear=shear_xy,
        interpolation=InterpolationMode.BILINEAR,
        fill=0.0,
    )


def _box_filter(batch: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a ``size`` x ``size`` box (any size, even too), edges replicated. (B, C, H, W).

    Done as two 1-D passes (rows, then columns), so a 39 px box costs 2 x 39, not 39^2,
    operations per pixel.
    """
    if size <= 1:
        return batch
    before, after = size // 2, (size - 1) // 2
    rows = nnf.avg_pool2d(nnf.pad(batch, (before, after, 0, 0), mode="replicate"), (1, size), 1)
    return nnf.avg_pool2d(nnf.pad(rows, (0, 0, before, after), mode="replicate"), (size, 1), 1)


def _box_blur(image: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 box, edges replicated (PIL's ``BoxBlur``). (C, H, W) or (B, C, H, W)."""
    if radius <= 0:
        return image
    out = _box_filter(image if image.ndim == 4 else image[None], 2 * radius + 1)
    return out if image.ndim == 4 else out[0]


_SHARPEN = torch.tensor([[-2.0, -2.0, -2.0], [-2.0, 32.0, -2.0], [-2.0, -2.0, -2.0]]) / 16.0


def _sharpen(image: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageFilter.SHARPEN`` 3x3 kernel, per channel, clamped to [0, 1]. (C, H, W)."""
    c = image.shape[0]
    kernel = _SHARPEN.to(image)[None, None].expand(c, 1, 3, 3)
    padded = nnf.pad(image[None], (1, 1, 1, 1), mode="replicate")
    return nnf.conv2d(padded, kernel, groups=c)[0].clamp(0, 1)


def _color_jitter(
    rgb: torch.Tensor, rng: np.random.Generator, b: float, c: float, s: float, h: float
) -> torch.Tensor:
    """torchvision's ColorJitter(b, c, s, h) with factors from ``rng``, in a random order."""
    ops = [
        lambda x: TF.adjust_brightness(x, float(rng.uniform(1 - b, 1 + b))),
        lambda x: TF.adjust_contrast(x, float(rng.uniform(1 - c, 1 + c))),
        lambda x: TF.adjust_saturation(x, float(rng.uniform(1 - s, 1 + s))),
        lambda x: TF.adjust_hue(x, float(rng.uniform(-h, h))),
    ]
    for i in rng.permutation(len(ops)):
        rgb = ops[i](rgb)
    return rgb.clamp(0, 1)


def _affine_flip_blur_sharpen(
    image: tv_tensors.Image, size: tuple[int, int], rng: np.random.Generator, scale
) -> torch.Tensor:
    """The geometric and sharpness steps shared by foregrounds and backgrounds.

    Affine (±5°, translate 0.1, ``scale``, shear ±5°) + resize, flip p 0.5, box blur p 0.1
    (radius 1–5), sharpen p 0.1, as the official ``PairCompose`` pipelines.
    """
    image = _affine_and_resize(image, size, rng, 5.0, 0.1, scale, 5.0)
    if rng.random() < 0.5:
        image = TF.horizontal_flip(image)
    if rng.random() < 0.1:
        image = _box_blur(image, int(rng.integers(1, 6)))
    if rng.random() < 0.1:
        image = _sharpen(image)
    return image.as_subclass(torch.Tensor)


def augment_foreground(
    fgr: torch.Tensor,
    pha: torch.Tensor,
    size: Size,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.4, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Official per-sample foreground augmentation; returns ``(fgr, pha)`` at ``size``.

    Chapter 06. ``fgr`` (3, H, W) and ``pha`` (1, H, W) get the *same* geometry: affine
    (±5°, translate 0.1, ``scale`` (0.4–1 base, 0.3–1 refine), shear ±5°) + resize,
    horizontal flip p 0.5, box blur p 0.1 (radius ≤ 5) and sharpen p 0.1; then colour
    jitter (0.15, 0.15, 0.15, 0.05) on ``fgr`` only.

    Why alpha rides as a 4th *image* channel: torchvision v2 resamples ``tv_tensors.Mask``
    with nearest neighbour whatever interpolation you ask for (right for label maps), which
    would turn a soft matte into a hard one; as an ``Image`` channel it is interpolated
    bilinearly exactly like the colour it belongs to.
    """
    size = _as_hw(size)
    stacked = tv_tensors.Image(torch.cat([fgr, pha], dim=0))
    out = _affine_flip_blur_sharpen(stacked, size, rng, scale)
    fgr_out = _color_jitter(out[:3], rng, 0.15, 0.15, 0.15, 0.05)
    return fgr_out.contiguous(), out[3:].clamp(0, 1).contiguous()


def augment_background(
    bgr: torch.Tensor, size: Size, rng: np.random.Generator, scale: tuple[float, float] = (1.0, 2.0)
) -> torch.Tensor:
    """Official per-sample background augmentation: (3, H, W) -> (3, *size).

    Chapter 06. Affine (±5°, translate 0.1, scale 1–2, shear ±5°) + resize, flip p 0.5,
    box blur p 0.1, sharpen p 0.1, colour jitter (0.15, 0.15, 0.15, 0.05).
    """
    size = _as_hw(size)
    out = _affine_flip_blur_sharpen(tv_tensors.Image(bgr), size, rng, scale)
    return _color_jitter(out, rng, 0.15, 0.15, 0.15, 0.05).contiguous()


# --------------------------------------------------------------------------------------
# Batch augmentations inside the training loop (vectorised, any device)
# --------------------------------------------------------------------------------------


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """n uniforms in [0, 1), drawn on the generator's device, then moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=where).to(device)


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    where = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=where, dtype=x.dtype).to(x.device)


def _random_affine_grid(
    x: torch.Tensor,
    generator: torch.Generator | None,
    degrees: float,
    translate: float,
    scale: tuple[float, float] = (1.0, 1.0),
    shear: float = 0.0,
) -> torch.Tensor:
    """Warp each image of a batch by its own random affine (about the centre), bilinear.

    Parameters are drawn per sample; the warp uses ``affine_grid`` + ``grid_sample`` so it
    runs in one call on any device. Pixels from outside repeat the border.
    """
    b, device = x.shape[0], x.device
    h, w = x.shape[-2:]
    u = _rand(5 * b, generator, device).view(5, b)
    angle = torch.deg2rad((u[0] * 2 - 1) * degrees)
    zoom = scale[0] + u[3] * (scale[1] - scale[0])
    tan = torch.tan(torch.deg2rad((u[4] * 2 - 1) * shear))
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Forward map (rotation @ shear_x, times zoom) in pixels about the centre, written in
    # affine_grid's [-1, 1] units: off-diagonal terms pick up the aspect ratio h/w.
    m00, m01 = cos * zoom, (cos * tan - sin) * zoom * (h / w)
    m10, m11 = sin * zoom * (w / h), (sin * tan + cos) * zoom
    det = m00 * m11 - m01 * m10
    # affine_grid maps output coordinates to input ones: the inverse map (2x2 by hand, so no
    # linalg call is needed on any backend).
    i00, i01, i10, i11 = m11 / det, -m01 / det, -m10 / det, m00 / det
    tx, ty = (u[1] * 2 - 1) * translate * 2, (u[2] * 2 - 1) * translate * 2
    theta = torch.stack(
        [i00, i01, -(i00 * tx + i01 * ty), i10, i11, -(i10 * tx + i11 * ty)], 1
    ).view(b, 2, 3)
    theta = theta.to(x.dtype)
    grid = nnf.affine_grid(theta, list(x.shape), align_corners=False)
    return nnf.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ).float()
_RGB_TO_YIQ = _RGB_TO_YIQ.float()


def _batch_color_jitter(
    rgb: torch.Tensor, generator: torch.Generator | None, b: float, c: float, s: float, h: float
) -> torch.Tensor:
    """Per-sample brightness, contrast, saturation and hue for a (B, 3, H, W) batch.

    Hue is rotated in the YIQ colour space (a linear approximation of an HSV hue shift that
    stays vectorised on any device).
    """
    n, device = rgb.shape[0], rgb.device
    u = _rand(4 * n, generator, device).view(4, n, 1, 1, 1)
    rgb = rgb * (1 - b + 2 * b * u[0])
    grey = (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]).clamp(0, 1)
    mean = grey.mean(dim=(2, 3), keepdim=True)
    rgb = (mean + (1 - c + 2 * c * u[1]) * (rgb.clamp(0, 1) - mean)).clamp(0, 1)
    grey = 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]
    rgb = (grey + (1 - s + 2 * s * u[2]) * (rgb - grey)).clamp(0, 1)
    angle = (u[3].view(n) * 2 - 1) * h * 2 * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    rot = torch.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], 1).view(n, 3, 3)
    to_yiq, from_yiq = (m.to(device=device, dtype=rgb.dtype) for m in (_RGB_TO_YIQ, _YIQ_TO_RGB))
    matrix = from_yiq @ rot @ to_yiq
    return torch.einsum("nij,njhw->nihw", matrix, rgb).clamp(0, 1)


def augment_batch(
    fgr: torch.Tensor,
    pha: torch.Tensor,
    bgr: torch.Tensor,
    generator: torch.Generator | None = None,
    scene: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official in-loop augmentations; returns ``(src, bgr)`` for the network.

    Chapter 06. Inputs are (B, 3, H, W), (B, 1, H, W), (B, 3, H, W) in [0, 1] on any
    device; the ground truth ``fgr``/``pha`` are not changed. Per sample:

    1. shadow, p 0.3: ``pha * 0.3 * rand``, a random affine (±5°, translate 0.2,
       scale 0.5–1.5, shear ±5°), a box blur of 20–39 px (at 512 px; scaled with the
       image), subtracted from a copy of the background used for compositing only: the
       plate has no shadow, so the network learns that a shadow is not the subject;
    2. composite ``src = pha * fgr + (1 - pha) * bgr``;
    3. Gaussian noise, p 0.4, σ = 0.03·rand, on ``src`` and ``bgr`` independently;
    4. plate colour jitter, p 0.8, (0.18, 0.18, 0.18, 0.1), after compositing, so the
       plate given to the network no longer matches the true background exactly;
    5. plate misalignment, p 0.3: affine ±1°, translate 0.01.

    Pass a seeded ``torch.Generator`` for reproducible batches (one on the inputs' device
    is fastest; a CPU generator also works with CUDA inputs). ``scene`` is the background as
    it was behind the subject when the frame was shot, if it differs from the plate ``bgr``
    (:func:`camera_effects` passes one with a floor shadow); by default the plate itself.
    """
    if fgr.ndim != 4 or pha.ndim != 4 or bgr.ndim != 4:
        raise ValueError(
            f"expected batches (B, C, H, W); got fgr {tuple(fgr.shape)}, pha {tuple(pha.shape)}, "
            f"bgr {tuple(bgr.shape)}"
        )
    if fgr.shape[1] != 3 or pha.shape[1] != 1 or bgr.shape[1] != 3:
        raise ValueError(
            f"expected fgr (B,3,H,W), pha (B,1,H,W), bgr (B,3,H,W); got {tuple(fgr.shape)}, "
            f"{tuple(pha.shape)}, {tuple(bgr.shape)}"
        )
    if not (fgr.shape[0] == pha.shape[0] == bgr.shape[0]) or not (
        fgr.shape[-2:] == pha.shape[-2:] == bgr.shape[-2:]
    ):
        raise ValueError(
            f"fgr {tuple(fgr.shape)}, pha {tuple(pha.shape)} and bgr {tuple(bgr.shape)} must "
            "share batch size, height and width"
        )
    if scene is not None and scene.shape != bgr.shape:
        raise ValueError(
            f"scene {tuple(scene.shape)} must have the plate's shape {tuple(bgr.shape)}"
        )
    n, device = fgr.shape[0], fgr.device
    h, w = fgr.shape[-2:]
    behind = (bgr if scene is None else scene).clone()  # the scene behind the subject

    # 1. A shadow cast by the subject: in the frame only, never in the plate.
    coins = _rand(4 * n, generator, device).view(4, n)
    shadow_idx = coins[0] < 0.3
    if shadow_idx.any():
        shadow = pha[shadow_idx] * 0.3 * coins[1][shadow_idx].view(-1, 1, 1, 1)
        shadow = _random_affine_grid(shadow, generator, 5.0, 0.2, (0.5, 1.5), 5.0)
        size = 20 + int(_rand(1, generator, device).item() * 20)
        size = max(1, round(size * min(h, w) / 512))
        shadow = _box_filter(shadow, size)
        behind[shadow_idx] = (behind[shadow_idx] - shadow).clamp(0, 1)

    # 2. Composite.
    src = pha * fgr + (1 - pha) * behind

    # 3. Sensor noise on both images.
    noise_idx = (coins[2] < 0.4).view(n, 1, 1, 1)
    sigmas = 0.03 * _rand(2 * n, generator, device).view(2, n, 1, 1, 1)
    src = torch.where(noise_idx, (src + _randn_like(src, generator) * sigmas[0]).clamp(0, 1), src)
    bgr = torch.where(noise_idx, (bgr + _randn_like(bgr, generator) * sigmas[1]).clamp(0, 1), bgr)

    # 4. The plate's colours drift (auto exposure / white balance): plate only.
    jitter_idx = (coins[3] < 0.8).view(n, 1, 1, 1)
    bgr = torch.where(jitter_idx, _batch_color_jitter(bgr, generator, 0.18, 0.18, 0.18, 0.1), bgr)

    # 5. The camera moved a little between the plate and the frame.
    misalign_idx = (_rand(n, generator, device) < 0.3).view(n, 1, 1, 1)
    bgr = torch.where(misalign_idx, _random_affine_grid(bgr, generator, 1.0, 0.01), bgr)
    return src, bgr


# --------------------------------------------------------------------------------------
# What a real camera adds on top (mattingkit's own, beyond the official recipe)
# --------------------------------------------------------------------------------------


def _ground_shadow(pha: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A shadow cast on the floor: the silhouette laid down about its lowest row.

    (B, 1, H, W) alpha -> (B, 1, H, W) shadow strength in [0, 1]. The silhouette is
    squashed (0.15-0.6: the floor seen at an angle), falls behind the subject or towards the
    camera (below the feet, mirrored), is sheared sideways (±1.5) as a low light sends it,
    and blurred by 1-3 % of the image, like a real penumbra; strength 0.25-0.65.
    """
    b, _, h, w = pha.shape
    device, dtype = pha.device, pha.dtype
    u = _rand(5 * b, generator, device).view(5, b, 1, 1)
    rows = torch.arange(h, device=device, dtype=dtype)
    occupied = pha.amax(dim=3)[:, 0] > 0.5  # (B, H): rows the subject covers
    lowest = torch.where(occupied, rows, torch.full_like(rows, -1.0)).amax(dim=1)
    lowest = torch.where(lowest < 0, torch.full_like(lowest, h - 1.0), lowest)
    # In grid_sample's [-1, 1] units: output pixel (x, y) at height t above the floor along
    # the shadow looks up the silhouette at (x - shear * t, floor - t).
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, h, device=device, dtype=dtype),
        torch.linspace(-1, 1, w, device=device, dtype=dtype),
        indexing="ij",
    )
    floor = ((lowest * 2 + 1) / h - 1).view(b, 1, 1)
    squash = 0.15 + 0.45 * u[0]
    direction = torch.where(u[1] < 0.5, 1.0, -1.0).to(dtype)  # 1: behind, -1: towards us
    shear = (u[2] * 2 - 1) * 1.5
    t = (floor - ys) * direction / squash
    grid = torch.stack([xs - shear * t * (h / w), floor - t], dim=-1)
    shadow = nnf.grid_sample(pha, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    size = max(1, round(min(h, w) * (0.01 + 0.02 * float(u[3].mean()))))
    shadow = _box_filter(_box_filter(shadow, size), size)  # two box passes: a soft penumbra
    return shadow * (0.25 + 0.4 * u[4]).view(b, 1, 1, 1)


def _jpeg(images: torch.Tensor, qualities: list[int]) -> torch.Tensor:
    """Each image of a (B, 3, H, W) batch through a JPEG round trip at its quality (OpenCV)."""
    out = []
    for image, quality in zip(images, qualities):
        rgb = (image.detach().float().cpu().permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).byte()
        bgr_order = np.ascontiguousarray(rgb.numpy()[:, :, ::-1])
        ok, encoded = cv2.imencode(".jpg", bgr_order, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else bgr_order
        out.append(torch.from_numpy(np.ascontiguousarray(decoded[:, :, ::-1])).permute(2, 0, 1))
    return torch.stack(out).to(images.device, images.dtype) / 255.0


def camera_effects(
    fgr: torch.Tensor,
    pha: torch.Tensor,
    bgr: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`augment_batch` plus what a real camera changes between the plate and the frame.

    Chapter 06. The official augmentations leave out effects that every real clip has; this
    adds them, per sample, and returns ``(src, bgr)`` (the ground truth is unchanged):

    1. a shadow cast on the floor (p 0.4, :func:`_ground_shadow`), in the frame only; it
       darkens the scene multiplicatively (a shadow takes light away);
    2. the official augmentations (:func:`augment_batch`) on that scene;
    3. exposure and white balance that changed between the plate and the frame (p 0.5):
       a gain of 0.85-1.15 and per-channel gains of ±6 % on the frame;
    4. photon (shot) noise (p 0.3), whose variance grows with brightness, on both images;
    5. JPEG compression (p 0.5, quality 55-95), on the frame and the plate separately, as
       phones and webcams deliver them.
    """
    n, device = fgr.shape[0], fgr.device
    coins = _rand(4 * n, generator, device).view(4, n, 1, 1, 1)
    shadow = _ground_shadow(pha, generator)
    scene = torch.where(coins[0] < 0.4, bgr * (1 - shadow), bgr)
    src, bgr = augment_batch(fgr, pha, bgr, generator, scene=scene)
    u = _rand(2 * n, generator, device).view(2, n, 1, 1, 1)
    balance = 1 + (_rand(3 * n, generator, device).view(n, 3, 1, 1) * 2 - 1) * 0.06
    shifted = (src * (0.85 + 0.3 * u[0]) * balance).clamp(0, 1)
    src = torch.where(coins[1] < 0.5, shifted, src)
    variance = 0.002 + 0.01 * u[1]  # per unit of brightness
    for name in ("src", "bgr"):
        image = src if name == "src" else bgr
        noisy = (image + _randn_like(image, generator) * (image * variance).sqrt()).clamp(0, 1)
        image = torch.where(coins[2] < 0.3, noisy, image)
        if name == "src":
            src = image
        else:
            bgr = image
    compress = torch.nonzero(coins[3].flatten() < 0.5).flatten()
    if len(compress):
        qualities = (55 + 40 * _rand(2 * len(compress), generator, device)).round().tolist()
        src, bgr = src.clone(), bgr.clone()
        src[compress] = _jpeg(src[compress], qualities[: len(compress)])
        bgr[compress] = _jpeg(bgr[compress], qualities[len(compress) :])
    return src, bgr
