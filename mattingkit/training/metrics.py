"""Matting quality metrics with the definitions and units of the Background Matting V2 benchmark.

Chapter 06 (training on a subset) uses these to put our numbers next to the paper's Table 1.
The reference is the official Octave code ``eval/benchmark.m`` (Ning Xu's Deep Image Matting
evaluation: ``compute_{sad,mse,gradient,connectivity}_loss.m`` and ``gaussgradient.m``); video
temporal coherence (dtSSD) follows Robust Video Matting's ``evaluation/evaluate_lr.py``.

Inputs: alphas in ``[0, 1]`` as numpy arrays or torch tensors shaped ``(H, W)``, ``(1, H, W)`` or
``(1, 1, H, W)`` (``uint8`` arrays are read as ``0..255`` and divided by 255, like the benchmark's
PNGs). A trimap is ``uint8`` with ``0`` = background, ``128`` = unknown, ``255`` = foreground; the
metrics are computed over the unknown region (``trimap == 128``), or over the whole image when
``trimap`` is ``None``.

Units (what each function returns, the same numbers ``benchmark.m`` prints):

==========  ======================================================  =====================
metric      returned value                                          paper's Table 1 shows
==========  ======================================================  =====================
SAD         ``sum |pred - true| / 1000``                             as returned
MSE         ``mean (pred - true)^2``  (a raw mean)                   value x 10^3
Grad        ``sum (|grad pred| - |grad true|)^2``  (no division)     as returned
Conn        ``sum |phi_pred - phi_true|``  (no division)             as returned
FG MSE      ``mean (fgr_pred - fgr_true)^2`` where true alpha > 0    value x 10^3
dtSSD       ``mean_t sqrt(mean_px (d pred_t - d true_t)^2)``         value x 10^2 (RVM)
==========  ======================================================  =====================

:func:`to_paper_units` applies those display factors. Robust Video Matting's Python ports and
some Deep Image Matting ports divide Grad and Conn by 1000; the BGMv2 benchmark does not (its
Table 1 lists e.g. Grad 8426, Conn 11116), so neither do we.
"""

from __future__ import annotations

import math
from typing import Any, Union

import cv2
import numpy as np

__all__ = [
    "PAPER_SCALE",
    "conn",
    "dtssd",
    "evaluate",
    "foreground_mse",
    "gauss_gradient",
    "gauss_gradient_kernel",
    "grad",
    "holes",
    "mse",
    "sad",
    "to_paper_units",
    "trimap_from_alpha",
]

ArrayLike = Any  # numpy.ndarray or torch.Tensor
TrimapArg = Union[ArrayLike, str, None]

#: Factors that turn the returned values into the numbers printed in the papers' tables.
PAPER_SCALE = {"sad": 1.0, "mse": 1e3, "grad": 1.0, "conn": 1.0, "fg_mse": 1e3, "dtssd": 1e2}

UNKNOWN = 128  # trimap value of the unknown region, where the metrics are computed


# --------------------------------------------------------------------------------------------
# Input conversion and checks.
# --------------------------------------------------------------------------------------------


def _to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch.Tensor, without importing torch here
        x = x.detach().cpu()
        x = (x.double() if x.is_floating_point() else x).numpy()  # also half / bfloat16
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as error:  # pragma: no cover - exotic inputs
            raise TypeError(f"{name} must be a numpy array or a torch tensor") from error
    return x


def _as_float(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype == np.uint8:
        return x.astype(np.float64) / 255.0
    if x.dtype == np.bool_:  # a hard matte
        return x.astype(np.float64)
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{name} must hold numbers in [0, 1], got dtype {x.dtype}")
    x = x.astype(np.float64)
    if x.size:
        low, high = float(np.min(x)), float(np.max(x))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"{name} contains NaN or infinite values")
        if low < -1e-6 or high > 1 + 1e-6:
            raise ValueError(f"{name} must be in [0, 1], got values in [{low:.4g}, {high:.4g}]")
    return np.clip(x, 0.0, 1.0)


def _squeeze_alpha(x: np.ndarray, name: str) -> np.ndarray:
    """(H, W), (1, H, W) or (1, 1, H, W) -> (H, W)."""
    shape = x.shape
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be a single alpha matte shaped (H, W), (1, H, W) or (1, 1, H, W), "
            f"got shape {shape}"
        )
    return x


def _alpha(x: ArrayLike, name: str) -> np.ndarray:
    return _as_float(_squeeze_alpha(_to_numpy(x, name), name), name)


def _image(x: ArrayLike, name: str) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) -> float64 (3, H, W) in [0, 1]."""
    array = _to_numpy(x, name)
    shape = array.shape
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(
            f"{name} must be an RGB image shaped (3, H, W) or (1, 3, H, W), got shape {shape}"
        )
    return _as_float(array, name)


def _check_same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same height and width, "
            f"got {a.shape} and {b.shape}"
        )


def _pair(pred: ArrayLike, true: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    pred_array, true_array = _alpha(pred, "pred"), _alpha(true, "true")
    _check_same_shape("pred", pred_array, "true", true_array)
    return pred_array, true_array


def _region(trimap: ArrayLike | None, shape: tuple[int, ...]) -> np.ndarray:
    """Boolean mask of the pixels to evaluate: trimap == 128, or everything for ``None``."""
    if trimap is None:
        return np.ones(shape, dtype=bool)
    array = _squeeze_alpha(_to_numpy(trimap, "trimap"), "trimap")
    _check_same_shape("trimap", array, "the alphas", np.empty(shape))
    return array == UNKNOWN


def _mean_over(values: np.ndarray, region: np.ndarray) -> float:
    count = int(region.sum())
    if count == 0:
        return float("nan")  # no pixel to average over (e.g. a trimap without unknown region)
    return float(values[region].sum() / count)


# --------------------------------------------------------------------------------------------
# Trimap.
# --------------------------------------------------------------------------------------------


def trimap_from_alpha(
    alpha: ArrayLike, low: float = 0.06, high: float = 0.96, iterations: int = 10
) -> np.ndarray:
    """Build the evaluation trimap from a ground-truth alpha, as the BGMv2 paper describes.

    Chapter 06. Pixels with ``alpha >= high`` are foreground, ``alpha <= low`` background, the rest
    unknown; then the unknown band is widened by eroding the foreground and the background
    ``iterations`` times each with a 3x3 circular (cross-shaped) kernel, i.e. ``iterations`` dilations of
    the unknown region into each side. A hard edge therefore gets a band ``2 * iterations`` pixels wide.
    Pixels at the image border are not eroded from outside (OpenCV's default border).

    Args:
        alpha: true alpha in ``[0, 1]``, ``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)``.
        low, high: thresholds for background and foreground.
        iterations: how many erosions.

    Returns:
        ``(H, W)`` ``uint8`` array of 0 (background), 128 (unknown), 255 (foreground).
    """
    if not 0 <= low < high <= 1:
        raise ValueError(f"need 0 <= low < high <= 1, got low={low}, high={high}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    a = _alpha(alpha, "alpha")
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    foreground = (a >= high).astype(np.uint8)
    background = (a <= low).astype(np.uint8)
    if iterations:
        foreground = cv2.erode(foreground, kernel, iterations=iterations)
        background = cv2.erode(background, kernel, iterations=iterations)
    trimap = np.full(a.shape, UNKNOWN, dtype=np.uint8)
    trimap[foreground.astype(bool)] = 255
    trimap[background.astype(bool)] = 0
    return trimap


def _trimap_argument(trimap: TrimapArg, true: ArrayLike) -> ArrayLike | None:
    if isinstance(trimap, str):
        if trimap != "auto":
            raise ValueError(f"trimap must be an array, None or 'auto', got {trimap!r}")
        return trimap_from_alpha(true)
    return trimap


# --------------------------------------------------------------------------------------------
# SAD, MSE.
# --------------------------------------------------------------------------------------------


def sad(pred: ArrayLike, true: ArrayLike, trimap: ArrayLike | None = None) -> float:
    """Sum of absolute differences over the region, divided by 1000 (``compute_sad_loss.m``).

    Chapter 06. The division by 1000 is the benchmark's (it keeps numbers readable for large
    images); the value is what the paper's tables print. It grows with the image and region size:
    compare SAD only between results on the same images.
    """
    p, t = _pair(pred, true)
    region = _region(trimap, p.shape)
    return float(np.abs(p - t)[region].sum() / 1000.0)


def mse(pred: ArrayLike, true: ArrayLike, trimap: ArrayLike | None = None) -> float:
    """Mean squared error over the region (``compute_mse_loss.m``), a raw mean.

    Chapter 06. The paper's tables show ``mse * 1000`` (see :data:`PAPER_SCALE` and
    :func:`to_paper_units`). ``nan`` when the region is empty.
    """
    p, t = _pair(pred, true)
    return _mean_over((p - t) ** 2, _region(trimap, p.shape))


def holes(pred: ArrayLike, true: ArrayLike, trimap: ArrayLike | None = None) -> float:
    """Share of the truly opaque subject that the prediction makes see-through (alpha < 0.5).

    Chapter 06. A matte can score well in the trimap band and still cut a leg in two: that
    error sits inside the subject, where the band-limited metrics do not look. The region is
    where the true alpha is 1 (the ``trimap`` argument is accepted for the common signature
    and ignored); 0 when the subject has no opaque pixel.
    """
    p, t = _pair(pred, true)
    opaque = t >= 1.0 - 1e-3
    if not opaque.any():
        return 0.0
    return float((p[opaque] < 0.5).mean())


# --------------------------------------------------------------------------------------------
# Gradient error.
# --------------------------------------------------------------------------------------------


def _gauss_factors(sigma: float, epsilon: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm 1-D Gaussian ``g`` and its derivative ``dg``; the 2-D kernel is ``outer(g, dg)``."""
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2 * math.pi) * sigma * epsilon)))
    u = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(u**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    dg = -u * g / sigma**2
    # ||outer(g, dg)|| = ||g|| * ||dg||, so normalising each factor normalises the kernel.
    return g / np.linalg.norm(g), dg / np.linalg.norm(dg)


def gauss_gradient_kernel(sigma: float = 1.4, epsilon: float = 1e-2) -> np.ndarray:
    """The x-derivative-of-Gaussian kernel of ``gaussgradient.m`` (Guanglei Xiong), ``(K, K)``.

    Chapter 06. ``half = ceil(sigma * sqrt(-2 ln(sqrt(2 pi) sigma epsilon)))`` (4 for sigma 1.4),
    ``K = 2 half + 1``; ``h[i, j] = g(i - half) * dg(j - half)`` with ``g`` the Gaussian and ``dg``
    its derivative, scaled to unit L2 norm. Rows are y, columns x; the y kernel is ``h.T``.
    """
    g, dg = _gauss_factors(sigma, epsilon)
    return np.outer(g, dg)


def gauss_gradient(image: np.ndarray, sigma: float = 1.4) -> tuple[np.ndarray, np.ndarray]:
    """Derivative-of-Gaussian gradients ``(gx, gy)`` of a float ``(H, W)`` image, replicate border.

    Chapter 06. The kernel (:func:`gauss_gradient_kernel`) is separable, so it runs as two 1-D
    passes with ``cv2.sepFilter2D``. The benchmark convolves where we correlate: the signs of
    ``gx, gy`` flip, the magnitude used by :func:`grad` does not change.
    """
    g, dg = _gauss_factors(sigma)
    src = np.ascontiguousarray(image, dtype=np.float64)
    gx = cv2.sepFilter2D(src, cv2.CV_64F, dg, g, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.sepFilter2D(src, cv2.CV_64F, g, dg, borderType=cv2.BORDER_REPLICATE)
    return gx, gy


def _min_max_normalise(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``mat2gray``: stretch the values to [0, 1]; a constant image stays as it is."""
    low, high = float(x.min()), float(x.max())
    if high <= low:
        return x  # the gradient of a constant is 0 whatever its value
    return (x - low) / (high - low)


def grad(
    pred: ArrayLike, true: ArrayLike, trimap: ArrayLike | None = None, sigma: float = 1.4
) -> float:
    """Gradient error: ``sum over the region of (|grad pred| - |grad true|)^2`` (``compute_gradient_loss.m``).

    Chapter 06. Both alphas are first min-max normalised (``mat2gray``), then differentiated with
    derivative-of-Gaussian filters (sigma 1.4, :func:`gauss_gradient`) over the whole image.
    Not divided by 1000: the value is what the BGMv2 benchmark prints and Table 1 lists.
    """
    p, t = _pair(pred, true)
    region = _region(trimap, p.shape)
    px, py = gauss_gradient(_min_max_normalise(p), sigma)
    tx, ty = gauss_gradient(_min_max_normalise(t), sigma)
    # The benchmark squares the difference of the magnitudes in single precision.
    pred_amp = np.sqrt(px**2 + py**2).astype(np.float32)
    true_amp = np.sqrt(tx**2 + ty**2).astype(np.float32)
    error = (pred_amp - true_amp).astype(np.float64) ** 2
    return float(error[region].sum())


# --------------------------------------------------------------------------------------------
# Connectivity error.
# --------------------------------------------------------------------------------------------


def _largest_component(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=4
    )
    if count <= 1:  # only the background label: nothing is connected
        return np.zeros(mask.shape, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == largest


def _round_down_levels(both: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Connectivity's round-down map ``l`` from ``both = min(pred, true)``.

    ``(pred >= x) & (true >= x)`` is ``both >= x``. A pixel outside the bounding box of
    ``both >= thresholds[1]`` is in no component at the first step, so its level is
    ``thresholds[0]``; the component search therefore runs on that box only (often a fraction of
    the frame), which gives the same result faster.
    """
    round_down = np.full(both.shape, thresholds[0])
    first = both >= thresholds[1]
    rows, cols = np.flatnonzero(first.any(axis=1)), np.flatnonzero(first.any(axis=0))
    if rows.size == 0:
        return round_down
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    inside = both[box]
    levels = np.ones(inside.shape)  # pixels that never leave the component keep 1
    still_connected = np.ones(inside.shape, dtype=bool)
    for previous, threshold in zip(thresholds[:-1], thresholds[1:]):
        leaving = still_connected & ~_largest_component(inside >= threshold)
        np.putmask(levels, leaving, previous)
        still_connected &= ~leaving
    round_down[box] = levels
    return round_down


def conn(
    pred: ArrayLike,
    true: ArrayLike,
    trimap: ArrayLike | None = None,
    step: float = 0.1,
    theta: float = 0.15,
) -> float:
    """Connectivity error (``compute_connectivity_error.m``): do the soft parts stay attached?

    Chapter 06. For each threshold ``t = step, 2 step, ..., 1`` take the largest 4-connected
    component of ``(pred >= t) & (true >= t)``. A pixel's round-down level ``l`` is the previous
    threshold at the first ``t`` where it is outside that component (1 if it never leaves). With
    ``d = alpha - l``, ``phi = 1 - d * (d >= theta)``; the error is ``sum over the region of
    |phi_pred - phi_true|``, not divided by 1000 (the benchmark's units, as Table 1 lists).
    The components are found over the whole image; only the sum is restricted to the region.
    """
    p, t = _pair(pred, true)
    region = _region(trimap, p.shape)
    steps = int(round(1.0 / step))
    if steps < 1 or not math.isclose(steps * step, 1.0, rel_tol=1e-9):
        raise ValueError(f"step must divide 1 into whole steps (e.g. 0.1), got {step}")
    thresholds = np.round(np.arange(steps + 1) * step, 10)  # 0, 0.1, ..., 1 with 0.3 == 0.3
    round_down = _round_down_levels(np.minimum(p, t), thresholds)
    pred_d, true_d = p - round_down, t - round_down
    pred_phi = 1.0 - pred_d * (pred_d >= theta)
    true_phi = 1.0 - true_d * (true_d >= theta)
    return float(np.abs(pred_phi - true_phi)[region].sum())


# --------------------------------------------------------------------------------------------
# Foreground and video.
# --------------------------------------------------------------------------------------------


def foreground_mse(
    pred_fgr: ArrayLike,
    true_fgr: ArrayLike,
    true_pha: ArrayLike,
    trimap: ArrayLike | None = None,
    count_transparent: bool = False,
) -> float:
    """Foreground colour MSE over the pixels where the true alpha is above 0 (and in the region).

    Chapter 06. Where ``alpha == 0`` the foreground colour never shows, so it is not scored.
    Foregrounds are RGB ``(3, H, W)`` or ``(1, 3, H, W)`` in ``[0, 1]``; the mean is over those
    pixels and the three channels. The paper's tables show ``value * 1000``.

    ``count_transparent=True`` reproduces ``benchmark.m`` to the letter: it zeroes the transparent
    pixels but still divides by *all* region pixels, which gives a smaller number when the
    region holds transparent pixels.
    """
    pf, tf = _image(pred_fgr, "pred_fgr"), _image(true_fgr, "true_fgr")
    _check_same_shape("pred_fgr", pf, "true_fgr", tf)
    a = _alpha(true_pha, "true_pha")
    _check_same_shape("true_fgr", tf[0], "true_pha", a)
    region = _region(trimap, a.shape)
    squared = ((pf - tf) ** 2).mean(axis=0) * (a > 0)  # (H, W), zero where transparent
    return _mean_over(squared, region if count_transparent else region & (a > 0))


def _sequence(x: ArrayLike, name: str) -> np.ndarray:
    array = _to_numpy(x, name)
    shape = array.shape
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3:
        raise ValueError(
            f"{name} must be a sequence of alphas (T, H, W) or (T, 1, H, W), got {shape}"
        )
    return _as_float(array, name)


def dtssd(pred_seq: ArrayLike, true_seq: ArrayLike) -> float:
    """Temporal coherence error dtSSD (Robust Video Matting), a raw value.

    Chapter 06. For each pair of consecutive frames compare how the prediction *changes* with how
    the truth changes: ``e_t = sqrt(mean_pixels(((pred_t - pred_t-1) - (true_t - true_t-1))^2))``,
    then average ``e_t`` over ``t = 1 .. T-1``. A matte that flickers scores high even when each
    frame alone is good. RVM's tables show ``value * 100``. (RVM also logs ``e_0 = 0`` for the
    first frame and averages it in, which scales its numbers by ``(T-1)/T``; we do not.)

    Args:
        pred_seq, true_seq: ``(T, H, W)`` or ``(T, 1, H, W)`` alphas in ``[0, 1]``, ``T >= 2``.
    """
    p, t = _sequence(pred_seq, "pred_seq"), _sequence(true_seq, "true_seq")
    if p.shape != t.shape:
        raise ValueError(
            f"pred_seq and true_seq must have the same shape, got {p.shape} and {t.shape}"
        )
    if p.shape[0] < 2:
        raise ValueError(f"dtssd needs at least 2 frames, got shape {p.shape}")
    change = np.diff(p, axis=0) - np.diff(t, axis=0)  # (T-1, H, W)
    per_frame = np.sqrt((change**2).mean(axis=(1, 2)))
    return float(per_frame.mean())


# --------------------------------------------------------------------------------------------
# Everything at once, for notebooks.
# --------------------------------------------------------------------------------------------


def evaluate(
    pred_pha: ArrayLike,
    true_pha: ArrayLike,
    pred_fgr: ArrayLike | None = None,
    true_fgr: ArrayLike | None = None,
    trimap: TrimapArg = "auto",
) -> dict[str, float]:
    """All image metrics of one prediction, in the benchmark's units (see the module docstring).

    Chapter 06. ``trimap="auto"`` builds the paper's trimap from ``true_pha``
    (:func:`trimap_from_alpha`); ``None`` scores the whole image; an array is used as given.

    Returns:
        ``{"sad", "mse", "grad", "conn"}`` plus ``"fg_mse"`` when both foregrounds are given, and
        ``"unknown_pixels"`` (the size of the evaluated region). Pass the result to
        :func:`to_paper_units` to print it like Table 1.
    """
    if (pred_fgr is None) != (true_fgr is None):
        raise ValueError("give both pred_fgr and true_fgr, or neither")
    p, t = _pair(pred_pha, true_pha)
    region_trimap = _trimap_argument(trimap, t)
    region = _region(region_trimap, p.shape)
    results = {
        "sad": sad(p, t, region_trimap),
        "mse": mse(p, t, region_trimap),
        "grad": grad(p, t, region_trimap),
        "conn": conn(p, t, region_trimap),
    }
    if pred_fgr is not None:
        results["fg_mse"] = foreground_mse(pred_fgr, true_fgr, t, region_trimap)
    results["unknown_pixels"] = float(region.sum())
    return results


def to_paper_units(results: dict[str, float]) -> dict[str, float]:
    """Scale metric values for display as in the papers' tables (MSE x 10^3, dtSSD x 10^2).

    Chapter 06. Keys not in :data:`PAPER_SCALE` (e.g. ``unknown_pixels``) are copied unchanged.
    """
    return {key: value * PAPER_SCALE.get(key, 1.0) for key, value in results.items()}
