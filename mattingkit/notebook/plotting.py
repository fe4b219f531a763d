"""Small matplotlib helpers that every chapter reuses.

Notebooks should not repeat plotting boilerplate: they call :func:`show_images` for a
row of pictures (tensors or arrays, colour or single-channel), :func:`rgba_on_checkerboard`
to show a cut-out with its transparency visible, and :func:`overlay_mask` /
:func:`overlay_patches` to mark regions such as the refiner's 4×4 patches.

Accepted image layouts: torch tensors (3,H,W), (1,H,W), (H,W) or a batch of one
(1,C,H,W); numpy arrays (H,W,3) or (H,W); PIL images. Floating-point values are expected
in [0, 1]; 8-bit images (``uint8``, what cameras, video decoders and PIL give) are divided
by 255 and 16-bit ones by 65535, so a frame looks the same whichever type it arrives in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = [
    "to_numpy_image",
    "color_swatches",
    "image_grid",
    "show_images",
    "checkerboard",
    "rgba_on_checkerboard",
    "overlay_mask",
    "overlay_patches",
    "soft_crop",
    "textured_crop",
    "LiveLossPlot",
]


# Full-scale value of the integer image types: an 8-bit frame's 255 is a float image's 1.0.
_INTEGER_FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _as_unit_float(array: np.ndarray) -> np.ndarray:
    """``array`` as float32 in the [0, 1] convention: integers scaled by their full scale."""
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype in _INTEGER_FULL_SCALE:
        return array.astype(np.float32) / _INTEGER_FULL_SCALE[array.dtype]
    if np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"cannot tell the value range of a {array.dtype} image: pass float values in [0, 1] "
            "or an 8-bit (uint8) image"
        )
    return array.astype(np.float32, copy=False)


def to_numpy_image(image: Any) -> np.ndarray:
    """Any supported image as a float numpy array in [0, 1], (H,W,3) for colour or (H,W).

    8-bit and 16-bit images are scaled to [0, 1] here, once, so that every helper below
    (and :func:`image_grid`) shows a uint8 frame and its float version identically.
    """
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu()
        if array.ndim == 4:
            if array.shape[0] != 1:
                raise ValueError(
                    f"got a batch of {array.shape[0]} images {tuple(array.shape)}; "
                    "pass one image, e.g. x[0]"
                )
            array = array[0]
        if array.ndim == 3:
            if array.shape[0] not in (1, 3):
                raise ValueError(
                    f"expected 1 or 3 channels first, (C, H, W), got {tuple(array.shape)}"
                )
            array = array.permute(1, 2, 0)
        if array.is_floating_point() and array.dtype != torch.float32:
            array = array.float()  # numpy has no bfloat16; float16 is widened too
        array = array.numpy()
    else:
        array = np.asarray(image)
    array = _as_unit_float(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"cannot show an image of shape {array.shape}")
    return array


def image_grid(
    images: Sequence[Any],
    titles: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    size: float = 3.0,
    cmap: str = "gray",
    value_range: tuple[float, float] | str | None = (0.0, 1.0),
    value_ranges: Sequence[tuple[float, float] | str | None] | None = None,
    colorbar: bool = False,
    suptitle: str | None = None,
) -> Figure:
    """Lay images out in a grid and return the figure (without showing it). Chapter 01.

    Single-channel images use ``cmap`` over ``value_range`` (``None``: each image's own
    min…max, useful for loss maps; ``"percentile"``: each image's own 1st…99th percentile
    (:func:`percentile_range`), so a few hot pixels do not turn the rest of a feature map
    black); ``value_ranges`` gives one range per image instead (an alpha in [0, 1] beside
    an error map in [0, 0.2]); ``colorbar=True`` adds a scale.
    Colour images are shown as they are (clipped to [0, 1]).
    """
    images = list(images)
    if not images:
        raise ValueError("no images to show")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles")
    if value_ranges is not None and len(value_ranges) != len(images):
        raise ValueError(f"got {len(images)} images but {len(value_ranges)} value ranges")
    ranges = list(value_ranges) if value_ranges is not None else [value_range] * len(images)
    ncols = ncols or min(len(images), 4)
    nrows = -(-len(images) // ncols)
    arrays = [to_numpy_image(image) for image in images]
    aspect = arrays[0].shape[0] / arrays[0].shape[1]
    # Every row gets room for its titles (one line each), so a second row's titles never
    # run into the first row's images; a suptitle gets its own line on top.
    title_lines = max((title.count("\n") + 1 for title in titles or []), default=0)
    row_height = size * aspect + 0.25 * title_lines
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(size * ncols, row_height * nrows + (0.4 if suptitle else 0.15)),
        squeeze=False,
    )
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(arrays):
            continue
        array = arrays[index]
        if array.ndim == 2:
            wanted = ranges[index]
            if isinstance(wanted, str):
                if wanted != "percentile":
                    raise ValueError(f"unknown value range {wanted!r} (use 'percentile')")
                wanted = percentile_range(array)
            vmin, vmax = wanted if wanted is not None else (None, None)
            shown = ax.imshow(array, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            if colorbar:
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        else:
            ax.imshow(np.clip(array, 0, 1), interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[index], fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def percentile_range(image: Any, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """A colour scale from the ``low``-th to the ``high``-th percentile of ``image``'s values.

    Min…max lets one hot pixel decide the contrast of a whole feature map; percentiles
    ignore the extreme 1 % at either end. A map that is flat except for a few pixels (a
    ReLU channel silent almost everywhere, so the percentiles coincide) is scaled by the
    percentiles of those few pixels instead, so they are not drawn blank.
    """
    values = np.asarray(to_numpy_image(image), dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    bottom, top = (float(v) for v in np.percentile(values, [low, high]))
    if top <= bottom:
        above = values[values > bottom]
        top = float(np.percentile(above, high)) if above.size else bottom
    return bottom, top if top > bottom else bottom + 1.0


def show_images(images: Sequence[Any], titles: Sequence[str] | None = None, **kwargs: Any) -> None:
    """Show images side by side (see :func:`image_grid` for the options). Chapter 01."""
    image_grid(images, titles, **kwargs)
    plt.show()


def color_swatches(
    colors: Sequence[Sequence[float]],
    titles: Sequence[str],
    *,
    ramp: tuple[Sequence[float], Sequence[float], float] | None = None,
    size: float = 2.2,
) -> Figure:
    """Flat colour squares side by side, plus an optional blend ramp. Chapter 01.

    A flat colour is drawn as a filled square (a patch, not an image). ``ramp=(F, B, α)``
    adds a strip showing ``a·F + (1 − a)·B`` for every ``a`` from 0 to 1, with ``α`` marked,
    so the blend is seen as a whole line of colours and not one pixel.
    """
    if len(colors) != len(titles):
        raise ValueError(f"got {len(colors)} colours but {len(titles)} titles")
    panels = len(colors) + (ramp is not None)
    widths = [1.0] * len(colors) + ([2.2] if ramp is not None else [])
    figsize = (size * sum(widths), size + 0.9)
    grid = {"width_ratios": widths}
    fig, axes = plt.subplots(1, panels, figsize=figsize, squeeze=False, gridspec_kw=grid)
    for ax, color, title in zip(axes[0], colors, titles):
        rgb = tuple(float(np.clip(v, 0, 1)) for v in color)
        ax.add_patch(plt.Rectangle((0, 0), 1, 1, facecolor=rgb, edgecolor="0.3"))
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), aspect="equal")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    if ramp is not None:
        fgr, bgr, alpha = ramp
        weights = np.linspace(0.0, 1.0, 256, dtype=np.float32)[None, :, None]
        strip = weights * np.asarray(fgr, np.float32) + (1 - weights) * np.asarray(bgr, np.float32)
        ax = axes[0, -1]
        ax.imshow(np.repeat(strip, 24, axis=0), extent=(0, 1, 0, 0.25), aspect="auto")
        ax.axvline(alpha, color="k", lw=2)
        ax.set(xlim=(0, 1), ylim=(0, 0.25), yticks=[], xlabel="α")
        ax.set_title(f"I for every α from 0 (B) to 1 (F)\nline: α = {alpha:.2f}", fontsize=10)
    fig.tight_layout()
    return fig


def checkerboard(height: int, width: int, square: int = 8) -> np.ndarray:
    """The grey checkerboard that image editors draw behind transparency, (H,W,3)."""
    rows = (np.arange(height) // square)[:, None]
    cols = (np.arange(width) // square)[None, :]
    light = ((rows + cols) % 2 == 0).astype(np.float32)
    return np.repeat((0.6 + 0.25 * light)[..., None], 3, axis=2)


def rgba_on_checkerboard(fgr: Any, pha: Any, square: int = 8) -> np.ndarray:
    """A cut-out (foreground + alpha) drawn over a checkerboard, (H,W,3). Chapter 01."""
    fgr_np, pha_np = to_numpy_image(fgr), to_numpy_image(pha)
    if fgr_np.shape[:2] != pha_np.shape[:2]:
        raise ValueError(f"fgr is {fgr_np.shape[:2]} but pha is {pha_np.shape[:2]} (H, W)")
    board = checkerboard(*pha_np.shape[:2], square=square)
    alpha = pha_np[..., None]
    return alpha * fgr_np[..., :3] + (1 - alpha) * board


def overlay_mask(
    image: Any, mask: Any, color: Sequence[float] = (1.0, 0.2, 0.2), opacity: float = 0.5
) -> np.ndarray:
    """Tint ``image`` with ``color`` where ``mask`` is on (soft masks tint partly), (H,W,3)."""
    base, weight = to_numpy_image(image), to_numpy_image(mask)
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    if base.shape[:2] != weight.shape[:2]:
        raise ValueError(f"image is {base.shape[:2]} but mask is {weight.shape[:2]} (H, W)")
    weight = opacity * np.clip(weight, 0, 1)[..., None]
    return (1 - weight) * base[..., :3] + weight * np.asarray(color, dtype=np.float32)


def overlay_patches(
    image: Any,
    selected: Any,
    patch_size: int = 4,
    color: Sequence[float] = (1.0, 0.2, 0.2),
    opacity: float = 0.35,
    borders: bool = True,
) -> np.ndarray:
    """Mark selected patches, e.g. the refiner's ``ref_sm`` map at 1/patch_size. Chapter 04.

    ``selected`` is (H/patch_size, W/patch_size) with 1 for a selected patch. Selected
    patches are tinted and (``borders=True``) outlined, so single 4×4 patches stay visible
    on a whole frame; in a close-up, ``borders=False`` keeps the pixels under them readable.
    """
    base = to_numpy_image(image)
    grid = to_numpy_image(selected) > 0.5
    if grid.ndim != 2:
        raise ValueError(f"selected must be single-channel, got shape {grid.shape}")
    mask = np.kron(grid, np.ones((patch_size, patch_size), dtype=bool))
    height, width = base.shape[:2]
    if mask.shape[0] < height or mask.shape[1] < width:
        raise ValueError(
            f"selected {grid.shape} × patch {patch_size} covers {mask.shape}, smaller than "
            f"the image {(height, width)}"
        )
    mask = mask[:height, :width]
    ys, xs = np.mgrid[:height, :width]
    tinted = overlay_mask(base, mask.astype(np.float32), color, opacity)
    if borders:
        border = mask & ((ys % patch_size == 0) | (xs % patch_size == 0))
        tinted[border] = np.asarray(color, dtype=np.float32)
    return tinted


def soft_crop(
    pha: torch.Tensor, size: int = 96, avoid: Sequence[tuple[slice, slice]] = ()
) -> tuple[slice, slice]:
    """The size×size window with the most fractional alpha (hair, soft edges). Chapter 01.

    Returns ``(rows, cols)`` slices, so ``image[..., rows, cols]`` zooms into the part of
    a frame where matting is hardest. ``pha`` is (1,H,W) or (H,W) in [0, 1]. ``avoid``
    lists windows (earlier results) the new one must not overlap, so that a chapter can
    show a second soft region (a sheer scarf first, then the hair) and not the same one
    shifted by a few pixels.
    """
    alpha = pha.detach().float().reshape(1, 1, *pha.shape[-2:])
    height, width = alpha.shape[-2:]
    size = min(size, height, width)
    stride = max(1, size // 4)
    soft = ((alpha > 0.02) & (alpha < 0.98)).float()
    counts = torch.nn.functional.avg_pool2d(soft, size, stride=stride)[0, 0]
    tops = torch.clamp(torch.arange(counts.shape[0]) * stride, max=height - size)
    lefts = torch.clamp(torch.arange(counts.shape[1]) * stride, max=width - size)
    for rows, cols in avoid:  # rule out every window that overlaps an avoided one
        clash_rows = (tops < rows.stop) & (tops + size > rows.start)
        clash_cols = (lefts < cols.stop) & (lefts + size > cols.start)
        counts = counts.masked_fill(clash_rows[:, None] & clash_cols[None, :], -1.0)
    if float(counts.max()) < 0:
        raise ValueError(f"no {size}×{size} window is left that avoids {list(avoid)}")
    row, col = divmod(int(counts.flatten().argmax()), counts.shape[-1])
    top, left = int(tops[row]), int(lefts[col])
    return slice(top, top + size), slice(left, left + size)


def textured_crop(image: torch.Tensor, pha: torch.Tensor, size: int = 96) -> tuple[slice, slice]:
    """The size×size window, fully opaque (α = 1), with the most fine detail. Chapter 02.

    Fine detail is measured as the distance of each pixel from its 5×5 local mean. Falls
    back to the most opaque window when no window is fully opaque. ``image`` (3,H,W),
    ``pha`` (1,H,W); returns ``(rows, cols)`` slices like :func:`soft_crop`.
    """
    gray = image.detach().float().mean(dim=-3, keepdim=True).reshape(1, 1, *image.shape[-2:])
    opaque = (pha.detach().float().reshape(1, 1, *pha.shape[-2:]) >= 1).float()
    height, width = gray.shape[-2:]
    size = min(size, height, width)
    stride = max(1, size // 8)
    detail = (gray - torch.nn.functional.avg_pool2d(gray, 5, 1, 2, count_include_pad=False)).abs()
    score = torch.nn.functional.avg_pool2d(detail * opaque, size, stride=stride)
    coverage = torch.nn.functional.avg_pool2d(opaque, size, stride=stride)
    score = torch.where(coverage > 0.999, score, coverage - 2)  # prefer fully opaque windows
    row, col = divmod(int(score.flatten().argmax()), score.shape[-1])
    top, left = min(row * stride, height - size), min(col * stride, width - size)
    return slice(top, top + size), slice(left, left + size)


class LiveLossPlot:
    """Chapter 06. A training callback that redraws the loss curve (and validation SAD) in a notebook.

    Pass it to :func:`mattingkit.training.loop.train` as ``callbacks=[LiveLossPlot()]``. Outside
    IPython it only records. ``plot.figure()`` returns the final figure (e.g. to save it).
    """

    def __init__(self, every: int = 1, title: str = "") -> None:
        self.every = every
        self.title = title
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.val_sad: list[float] = []
        self._calls = 0
        self._handle = None

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("loss") is not None:
            self.steps.append(event["step"])
            self.losses.append(event["loss"])
        if event.get("val"):
            self.val_steps.append(event["step"])
            self.val_sad.append(event["val"].get("sad", float("nan")))
        self._calls += 1
        if self._calls % self.every == 0 or event.get("final"):
            self._show()

    def figure(self) -> Figure:
        fig, ax = plt.subplots(
            1, 2 if self.val_steps else 1, figsize=(9 if self.val_steps else 5, 3.2), squeeze=False
        )
        ax = ax[0]
        ax[0].plot(self.steps, self.losses, color="tab:blue")
        ax[0].set(xlabel="step", ylabel="training loss", yscale="log", title=self.title or "loss")
        if self.val_steps:
            ax[1].plot(self.val_steps, self.val_sad, "o-", color="tab:orange")
            ax[1].set(xlabel="step", ylabel="SAD (held-out)", title="validation")
        fig.tight_layout()
        return fig

    def _show(self) -> None:
        try:  # in a notebook the plot redraws itself; in plain Python it only records
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:  # pragma: no cover - IPython comes with the notebook extras
            return
        if get_ipython() is None or not self.steps:
            return
        fig = self.figure()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)
