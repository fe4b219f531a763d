"""The refiner's window path: the same refinement, at a cost that follows the patches (chapter 04b).

:class:`mattingkit.core.refiner.Refiner` builds its stage inputs the official way: it upsamples
the whole coarse map (42 channels) to half resolution, pads it and cuts out the patches, a
cost that grows with the frame even when only a few thousand patches are refined.
:class:`WindowRefiner` works the other way round: select patches -> gather a small coarse
window per patch -> upsample each window -> the two tiny stages -> paste back. Its cost is
about ``patches x window size x channels``; only the final upsample of the 4 output channels
(needed for the output anyway) still touches every pixel. An 8x8 crop needs a 5x5 coarse
window upsampled to 10x10 at HD (16x16 at 4K, where the gain shrinks); chapter 04b and
``benchmarks/speed_vs_official.py`` measure both paths.

**The stages themselves.** Once the inputs are gathered, what costs is moving 8x8 crops of
42 and 22 channels per patch through concatenations, not the multiply-adds. With the
refiner's BatchNorm folded into its convolutions (:mod:`mattingkit.speed.folding`),
:meth:`WindowRefiner.stages_from_windows` composes each upsampling with the convolution after
it into one convolution on the small map (:func:`upsampled_conv_kernel`, a "sub-pixel"
convolution) and concatenates nothing.

**Equal to the teaching refiner.** The window path gives bit-identical results to the
whole-frame path run on the same tensors (with ``fast_stages`` off; with it on, within float
rounding): ``tests/test_refiner_speedpath.py`` and ``tests/test_refiner_fast.py`` hold it so.
It is taken for channels-last inputs (how :class:`mattingkit.Matter` runs the model) whenever
the coarse map is an exact power-of-two downscale of the half-resolution grid (HD at 1/4,
4K at 1/8); everything else takes the teaching path. :func:`accelerate` swaps it into a model.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mattingkit.core.refiner import (
    PatchIndex,
    Refiner,
    _check_choice,
    cat_channels_last,
)
from mattingkit.speed.folding import fold_batchnorms

__all__ = [
    "WINDOW_PATHS",
    "WindowRefiner",
    "accelerate",
    "is_accelerated",
    "gather_windows",
    "upsampled_conv_kernel",
]

# When to build the stage inputs from small windows (see WindowRefiner.use_windows).
WINDOW_PATHS = ("auto", "always", "never")


def gather_windows(
    x: torch.Tensor,
    batch: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    height: int,
    width: int,
) -> torch.Tensor:
    """Chapter 04b. Cut one (C, height, width) window per entry, zero where it leaves the image.

    Window ``i`` covers ``x[batch[i], :, top[i] : top[i] + height, left[i] : left[i] + width]``.
    Unlike :func:`crop_patches` nothing is padded, so the cost follows the number of windows,
    not the image size: windows inside the image are copied row by row
    (:func:`gather_inner_windows`), the few that cross its border pixel by pixel. Returns
    (P, C, height, width) in channels-last memory, which is what the small convolutions and
    interpolations that follow run fastest on.
    """
    image_h, image_w = x.size(2), x.size(3)
    if height > image_h or width > image_w:
        return gather_window_pixels(x, batch, top, left, height, width)
    inside = (top >= 0) & (left >= 0) & (top + height <= image_h) & (left + width <= image_w)
    # Border windows are first cut at the nearest place inside, then replaced.
    top_inside = top.clamp(0, image_h - height)
    left_inside = left.clamp(0, image_w - width)
    windows = gather_inner_windows(x, batch, top_inside, left_inside, height, width)
    border = torch.nonzero(~inside).view(-1)
    if border.size(0) > 0:
        windows[border] = gather_window_pixels(
            x, batch[border], top[border], left[border], height, width
        )
    return windows


def gather_window_pixels(
    x: torch.Tensor,
    batch: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    height: int,
    width: int,
) -> torch.Tensor:
    """:func:`gather_windows` one pixel at a time: indices clamped into the image, then zeros."""
    _, channels, image_h, image_w = x.shape
    rows = top.view(-1, 1) + torch.arange(height, device=x.device).view(1, height)
    cols = left.view(-1, 1) + torch.arange(width, device=x.device).view(1, width)
    inside = ((rows >= 0) & (rows < image_h)).view(-1, height, 1, 1) & (
        (cols >= 0) & (cols < image_w)
    ).view(-1, 1, width, 1)
    # Pixels as rows of a table (B*H*W, C): one lookup copies all channels of a pixel.
    pixels = x.permute(0, 2, 3, 1).reshape(-1, channels)
    index = (batch.view(-1, 1, 1) * image_h + rows.clamp(0, image_h - 1).view(-1, height, 1)) * (
        image_w
    ) + cols.clamp(0, image_w - 1).view(-1, 1, width)
    windows = pixels.index_select(0, index.view(-1)).view(-1, height, width, channels)
    return windows.masked_fill_(~inside, 0.0).permute(0, 3, 1, 2)


def gather_inner_windows(
    x: torch.Tensor,
    batch: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    height: int,
    width: int,
) -> torch.Tensor:
    """Chapter 04b. :func:`gather_windows` for windows that lie entirely inside the image.

    In channels-last memory a window row is one contiguous run of ``width * C`` numbers, so it
    is copied in one go instead of pixel by pixel: much faster for images with few channels.
    (An NCHW ``x`` works too, but is first copied to channels-last.)
    """
    _, channels, image_h, image_w = x.shape
    rows = batch.view(-1, 1) * image_h + top.view(-1, 1)
    rows = rows + torch.arange(height, device=x.device).view(1, height)
    starts = rows * image_w + left.view(-1, 1)  # first pixel of every window row
    # Every run of `width` consecutive pixels, as a (overlapping, copy-free) view.
    runs = x.permute(0, 2, 3, 1).reshape(-1).unfold(0, width * channels, channels)
    windows = runs.index_select(0, starts.view(-1)).view(-1, height, width, channels)
    return windows.permute(0, 3, 1, 2)


def exact_upsample_factor(coarse: int, half: int) -> int:
    """The integer factor from the coarse map to the half-resolution grid, or 0 if there is none.

    A window of the coarse map, upsampled on its own, reproduces the whole-frame upsample bit
    for bit only when both map a pixel to the same fractional source position: that needs
    ``coarse * factor == half`` with a power-of-two factor (so ``1 / factor`` is exact in floating
    point). HD at backbone scale 1/4 gives 2, 4K at 1/8 gives 4.
    """
    factor = half // coarse if coarse > 0 else 0
    if factor < 1 or coarse * factor != half or factor & (factor - 1) != 0:
        return 0
    return factor


def first_source_row(half_row: torch.Tensor, factor: int) -> torch.Tensor:
    """The first of the two coarse rows that bilinear upsampling by ``factor`` blends for a row.

    Output row ``y`` samples source position ``(y + 0.5) / factor - 0.5``, between the row
    ``floor`` of that and the one below: ``floor((2y + 1 - factor) / (2 factor))``.
    Works for columns alike.
    """
    return torch.div(2 * half_row + 1 - factor, 2 * factor, rounding_mode="floor")


def _first_source(half_row: int, factor: int) -> int:
    """:func:`first_source_row` for one plain integer row."""
    return (2 * half_row + 1 - factor) // (2 * factor)


def coarse_window_size(factor: int, context: int) -> int:
    """Rows of the coarse map a stage-1 crop (2 + 2*context half-res rows) can need, at most.

    The pattern repeats every ``factor`` patches, so checking that many positions is enough.
    """
    size = 0
    for row in range(factor):
        lo = _first_source(2 * row - context, factor)
        hi = _first_source(2 * row + 1 + context, factor) + 1
        size = max(size, hi - lo + 1)
    return size


def usual_crop_offset(factor: int, context: int) -> int:
    """Where a crop starts inside its upsampled window, for a patch in row 0 of an unbounded map."""
    return -context - factor * _first_source(-context, factor)


def resize_matrix(
    size: int, factor: int, mode: str, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """(size * factor, size): row ``u`` holds the weight of each source pixel in output pixel
    ``u`` when ``F.interpolate`` enlarges ``size`` pixels by ``factor`` (``"bilinear"`` without
    corner alignment, or ``"nearest"``), borders included. Upsampling is linear: this is it."""
    eye = torch.eye(size, dtype=dtype, device=device).view(size, 1, size, 1)
    if mode == "bilinear":
        out = F.interpolate(eye, (size * factor, 1), mode="bilinear", align_corners=False)
    elif mode == "nearest":
        out = F.interpolate(eye, (size * factor, 1), mode="nearest")
    else:
        raise ValueError(f"resize mode must be 'bilinear' or 'nearest', got '{mode}'")
    return out[:, 0, :, 0].t()


def upsampled_conv_kernel(
    weight: torch.Tensor, upsample: torch.Tensor, offset: int, support: int
) -> torch.Tensor:
    """Chapter 04b. One kernel for "upsample by 2, crop, then convolve with ``weight``".

    ``upsample`` is a :func:`resize_matrix` of a small map (factor 2) and the crop starts at
    row and column ``offset`` of the upsampled map. A valid ``k x k`` convolution of the crop
    gives an output at (i, j); output pairs (2m, 2m+1) read the same ``support`` source rows
    ``m .. m + support - 1`` (upsampling by 2 repeats every 2 rows), each parity with its own
    weights. So the whole thing is one valid ``support x support`` convolution of the small
    map with 4 outputs per output channel, one per parity, and
    ``F.pixel_shuffle(F.conv2d(small, kernel), 2)`` equals ``F.conv2d(crop, weight)``.

    Returns (4 * O, C, support, support), output channel ``4 * o + 2 * row parity + column
    parity``: the order ``pixel_shuffle`` expects.
    """
    k = weight.size(2)
    taps = torch.stack([upsample[offset + a : offset + a + k, :support] for a in range(2)])
    kernel = torch.einsum("ocde,ady,bex->oabcyx", weight, taps, taps)
    return kernel.reshape(weight.size(0) * 4, weight.size(1), support, support)


def add_pixel_shuffled_(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x += F.pixel_shuffle(y, 2)`` in place, without building the shuffled tensor when both
    are channels-last (then it is one strided addition)."""
    channels_last = torch.channels_last
    if x.is_contiguous(memory_format=channels_last) and y.is_contiguous(
        memory_format=channels_last
    ):
        p, c, h, w = x.shape
        target = x.permute(0, 2, 3, 1).view(p, h // 2, 2, w // 2, 2, c)
        source = y.permute(0, 2, 3, 1).view(p, h // 2, w // 2, c, 2, 2)
        target.add_(source.permute(0, 1, 4, 2, 5, 3))
        return x
    return x.add_(F.pixel_shuffle(y, 2))


class WindowRefiner(Refiner):
    """The :class:`~mattingkit.core.refiner.Refiner` with its window path: same weights, same
    ``state_dict`` layout, same function.

    Args (besides the Refiner's):
        window_path: ``"auto"`` builds the stage inputs from small windows when the inputs
            are channels-last and the window path is exact (see the module docstring),
            ``"always"`` whenever it is exact (for NCHW inputs the window upsampling then runs
            in channels-last and differs from the NCHW whole-frame upsampling by float
            rounding, about 1e-7), ``"never"`` always takes the teaching path. An attribute:
            ``model.refiner.window_path = "never"`` switches a built model, scripted or not.
        fast_stages: once the BatchNorms are folded (:func:`accelerate` does it in eval mode),
            on the window path at HD geometry run the two stages as composed convolutions
            (:meth:`stages_from_windows`): the same function within float rounding (about
            1e-7). Training always runs :meth:`stage1` and :meth:`stage2`. An attribute too.
    """

    def __init__(
        self,
        mode: str = "sampling",
        sample_pixels: int = 80_000,
        threshold: float = 0.1,
        kernel_size: int = 3,
        prevent_oversampling: bool = True,
        patch_crop_method: str = "unfold",
        patch_replace_method: str = "scatter_nd",
        window_path: str = "auto",
        fast_stages: bool = True,
    ) -> None:
        super().__init__(
            mode,
            sample_pixels,
            threshold,
            kernel_size,
            prevent_oversampling,
            patch_crop_method,
            patch_replace_method,
        )
        _check_choice("window_path", window_path, WINDOW_PATHS)
        self.window_path = window_path
        self.fast_stages = fast_stages
        #: True once bn1-bn3 are folded into conv1-conv3 (they are then ``nn.Identity``).
        self.folded = False

    @classmethod
    def from_refiner(cls, refiner: Refiner, **options: object) -> WindowRefiner:
        """A WindowRefiner with ``refiner``'s settings and a copy of its weights."""
        fast = cls(
            refiner.mode,
            refiner.sample_pixels,
            refiner.threshold,
            refiner.kernel_size,
            refiner.prevent_oversampling,
            refiner.patch_crop_method,
            refiner.patch_replace_method,
            **options,  # type: ignore[arg-type]
        )
        weight = refiner.conv1.weight
        fast.load_state_dict(refiner.state_dict())
        fast.train(refiner.training)
        fast.train_random_share = refiner.train_random_share
        memory = (
            torch.channels_last
            if weight.is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format
        )
        return fast.to(device=weight.device, dtype=weight.dtype, memory_format=memory)

    def refine_patches(
        self,
        src: torch.Tensor,
        bgr: torch.Tensor,
        pha: torch.Tensor,
        fgr: torch.Tensor,
        hid: torch.Tensor,
        index: PatchIndex,
        half: Tuple[int, int],
    ) -> torch.Tensor:
        """The teaching path's :meth:`~mattingkit.core.refiner.Refiner.refine_patches`, from
        windows when that is exact."""
        if not self.use_windows(hid, half):
            x, images_crop = self.inputs_from_frames(src, bgr, pha, fgr, hid, index, half)
            return self.stages(x, images_crop)
        coarse = torch.cat([pha, fgr], dim=1)
        if self.use_fast_stages(hid, half):
            return self.stages_from_windows(src, bgr, coarse, hid, index)
        x, images_crop = self.inputs_from_windows(src, bgr, coarse, hid, index)
        return self.stages(x, images_crop)

    def use_windows(self, hid: torch.Tensor, half: Tuple[int, int]) -> bool:
        """Take the window path? ``window_path`` is "auto" (channels-last inputs), "always" or "never"."""
        if self.window_path == "never" or torch.jit.is_tracing():
            # A trace (ONNX export) records one path: the whole-frame one, with the
            # ONNX-friendly crop and replace methods.
            return False
        exact = exact_upsample_factor(hid.size(2), half[0]) > 0
        exact = exact and exact_upsample_factor(hid.size(3), half[1]) > 0
        if self.window_path == "always":
            return exact
        return exact and hid.is_contiguous(memory_format=torch.channels_last)

    def inputs_from_windows(
        self,
        src: torch.Tensor,
        bgr: torch.Tensor,
        coarse: torch.Tensor,
        hid: torch.Tensor,
        index: PatchIndex,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The same stage inputs as :meth:`inputs_from_frames`, from small windows only.

        For each patch: gather the few coarse pixels its half-resolution crop depends on
        (a 5x5 window at HD), upsample that window exactly as the whole map would be
        upsampled, keep the crop; gather a 16x16 full-resolution window of ``src`` and
        ``bgr`` and halve it the same way. Cost: patches x window size, not frame size.
        """
        context = 3 if self.kernel_size == 3 else 0
        crop = 2 + 2 * context  # half-resolution crop: 8 (kernel 3) or 2 (kernel 1)
        halves, crops = self.image_windows(src, bgr, index)

        # Coarse features (hid, pha, fgr): window -> upsample -> crop.
        windows, at_row, at_col, factor_h, factor_w = self.feature_windows(src, coarse, hid, index)
        windows = F.interpolate(
            windows,
            (windows.size(2) * factor_h, windows.size(3) * factor_w),
            mode="bilinear",
            align_corners=False,
        )
        # Where each crop sits in its upsampled window. Most sit at the same place, so one
        # slice serves them; the others (windows that slid at the border; at 4K, odd rows or
        # columns) are cut one by one, with zeros for the rows they lack (outside the frame).
        usual_row, usual_col = (
            usual_crop_offset(factor_h, context),
            usual_crop_offset(factor_w, context),
        )
        if usual_row + crop <= windows.size(2) and usual_col + crop <= windows.size(3):
            usual = windows[:, :, usual_row : usual_row + crop, usual_col : usual_col + crop]
            elsewhere = torch.nonzero((at_row != usual_row) | (at_col != usual_col)).view(-1)
        else:  # a map smaller than a window: no usual place
            usual = windows.new_zeros((windows.size(0), windows.size(1), crop, crop))
            elsewhere = torch.arange(windows.size(0), device=windows.device)
        x = torch.cat([usual] + halves, dim=1)
        x[elsewhere, : windows.size(1)] = gather_window_pixels(
            windows, elsewhere, at_row[elsewhere], at_col[elsewhere], crop, crop
        ).to(x.dtype)  # under autocast the features may be half precision, x not
        # Channels-last like the whole-frame path's inputs, so both run the same conv kernels.
        channels_last = torch.channels_last
        return x.contiguous(memory_format=channels_last), torch.cat(crops, dim=1).contiguous(
            memory_format=channels_last
        )

    def image_windows(
        self, src: torch.Tensor, bgr: torch.Tensor, index: PatchIndex
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Per patch, ``src`` and ``bgr`` around it: the half-resolution stage-1 crops (P, 3,
        8, 8) and the full-resolution stage-2 crops (P, 3, 8, 8), both from one 16x16
        full-resolution window (sizes for 3x3 kernels)."""
        batch, row, col = index
        context = 3 if self.kernel_size == 3 else 0
        full_context = 2 if self.kernel_size == 3 else 0
        crop = 2 + 2 * context
        first_row, first_col = 2 * row - context, 2 * col - context  # crop's top-left, half res
        size = 2 * crop
        start = 2 * context - full_context
        halves: List[torch.Tensor] = []
        crops: List[torch.Tensor] = []
        for image in [src, bgr]:
            windows = gather_windows(image, batch, 2 * first_row, 2 * first_col, size, size)
            halves.append(
                F.interpolate(windows, (crop, crop), mode="bilinear", align_corners=False)
            )
            crops.append(windows[:, :, start : size - start, start : size - start])
        return halves, crops

    def feature_windows(
        self, src: torch.Tensor, coarse: torch.Tensor, hid: torch.Tensor, index: PatchIndex
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
        """Per patch, the window of coarse features (hid, pha, fgr) its stage-1 crop depends on.

        Returns the windows, not yet upsampled ((P, 36, 5, 5) at HD), where each crop starts in
        its window once the window is upsampled (``at_row``, ``at_col``, (P,) each), and the
        upsampling factors (rows, columns).
        """
        batch, row, col = index
        context = 3 if self.kernel_size == 3 else 0
        first_row, first_col = 2 * row - context, 2 * col - context  # crop's top-left, half res
        features = cat_channels_last([hid, coarse])
        coarse_h, coarse_w = features.size(2), features.size(3)
        factor_h = exact_upsample_factor(coarse_h, src.size(2) // 2)
        factor_w = exact_upsample_factor(coarse_w, src.size(3) // 2)
        window_h = min(coarse_window_size(factor_h, context), coarse_h)
        window_w = min(coarse_window_size(factor_w, context), coarse_w)
        # A window slides inside the map, so that at a border it upsamples like the whole map.
        top = first_source_row(first_row, factor_h).clamp(0, coarse_h - window_h)
        left = first_source_row(first_col, factor_w).clamp(0, coarse_w - window_w)
        windows = gather_inner_windows(features, batch, top, left, window_h, window_w)
        at_row, at_col = first_row - top * factor_h, first_col - left * factor_w
        return windows, at_row, at_col, factor_h, factor_w

    def use_fast_stages(self, hid: torch.Tensor, half: Tuple[int, int]) -> bool:
        """Run :meth:`stages_from_windows`? In eval mode with ``fast_stages`` on, for 3x3
        kernels and a coarse map at exactly half the half-resolution grid (HD at 1/4)."""
        if not self.fast_stages or not self.folded or self.training or self.kernel_size != 3:
            return False
        if hid.size(2) < 5 or hid.size(3) < 5:  # smaller than one window
            return False
        return (
            exact_upsample_factor(hid.size(2), half[0]) == 2
            and exact_upsample_factor(hid.size(3), half[1]) == 2
        )

    def folded_weights(self) -> List[torch.Tensor]:
        """conv1-conv3's weights and biases once BatchNorm is folded in: [w1, b1, w2, b2, w3, b3]."""
        b1, b2, b3 = self.conv1.bias, self.conv2.bias, self.conv3.bias
        assert b1 is not None and b2 is not None and b3 is not None, "fold the BatchNorms first"
        return [self.conv1.weight, b1, self.conv2.weight, b2, self.conv3.weight, b3]

    def stages_from_windows(
        self,
        src: torch.Tensor,
        bgr: torch.Tensor,
        coarse: torch.Tensor,
        hid: torch.Tensor,
        index: PatchIndex,
    ) -> torch.Tensor:
        """Chapter 04b. Both stages for the window path in eval mode: (P, 4, 4, 4) patches.

        The same function as ``stage2(cat(upsample(stage1(x)), crops))`` on the inputs of
        :meth:`inputs_from_windows`, with the arithmetic rearranged (equal within float
        rounding, about 1e-6; ``tests/test_refiner_fast.py`` holds it to 1e-5):

        * BatchNorm, a fixed affine map per channel in eval mode, is folded into the
          convolutions (:func:`fold_batchnorm`): three passes over the activations fewer;
        * conv1 is split into its 36 feature and 6 image input channels and conv3 into its
          16 stage-1 and 6 image channels, so nothing is concatenated;
        * the feature part of conv1 is composed with the bilinear upsampling in front of it,
          and the stage-1 part of conv3 with the nearest upsampling in front of it
          (:func:`upsampled_conv_kernel`): each becomes one convolution on the small map
          (the 5x5 coarse window, the 4x4 stage-1 output) whose outputs are interleaved by
          ``pixel_shuffle``. The 8x8 upsampled crops (36 and 16 channels per patch, most of
          the data the teaching path moves) are never built.

        Patches whose crop is not at the usual place in its window (borders) get their
        conv1 features from exact crops, as in :meth:`inputs_from_windows`.
        """
        context = 3
        halves, crops = self.image_windows(src, bgr, index)
        images_half = torch.cat(halves, dim=1)
        images_full = torch.cat(crops, dim=1)
        windows, at_row, at_col, factor_h, factor_w = self.feature_windows(src, coarse, hid, index)
        w1, b1, w2, b2, w3, b3 = self.folded_weights()
        features = windows.size(1)  # 36: hid, pha, fgr
        usual = usual_crop_offset(2, context)

        # Stage 1: conv1 = image part (+ folded bias) + feature part composed with the upsampling.
        upsample = resize_matrix(windows.size(2), 2, "bilinear", w1.dtype, w1.device)
        kernel = upsampled_conv_kernel(w1[:, :features], upsample, usual, 3)
        x = F.conv2d(images_half, w1[:, features:], b1)
        x = add_pixel_shuffled_(x, F.conv2d(windows, kernel))
        elsewhere = torch.nonzero((at_row != usual) | (at_col != usual)).view(-1)
        if elsewhere.size(0) > 0:
            crop = 2 + 2 * context
            upsampled = F.interpolate(
                windows[elsewhere],
                (windows.size(2) * 2, windows.size(3) * 2),
                mode="bilinear",
                align_corners=False,
            )
            exact = gather_window_pixels(
                upsampled,
                torch.arange(elsewhere.size(0), device=elsewhere.device),
                at_row[elsewhere],
                at_col[elsewhere],
                crop,
                crop,
            )
            inputs = torch.cat([exact.to(images_half.dtype), images_half[elsewhere]], dim=1)
            x[elsewhere] = F.conv2d(inputs, w1, b1).to(x.dtype)
        x = F.conv2d(x.relu_(), w2, b2).relu_()

        # Stage 2: conv3 = image part (+ folded bias) + stage-1 part composed with the
        # nearest upsampling 4x4 -> 8x8; then the output convolution.
        upsample = resize_matrix(x.size(2), 2, "nearest", w3.dtype, w3.device)
        kernel = upsampled_conv_kernel(w3[:, : x.size(1)], upsample, 0, 2)
        y = F.conv2d(images_full, w3[:, x.size(1) :], b3)
        y = add_pixel_shuffled_(y, F.conv2d(x, kernel))
        return self.conv4(y.relu_())


def is_accelerated(model: nn.Module) -> bool:
    """True when ``model``'s refiner already has the window path with folded BatchNorms."""
    refiner = getattr(model, "refiner", None)
    return isinstance(refiner, WindowRefiner) and refiner.folded


def accelerate(model: nn.Module, *, fold: bool = True) -> nn.Module:
    """Give ``model`` (a ``MattingRefine``) the window path, in place; returns it.

    The refiner is replaced by a :class:`WindowRefiner` with the same weights (the
    ``state_dict`` keeps its layout). With ``fold`` and the model in eval mode, the
    refiner's BatchNorms are folded into its convolutions too (:func:`fold_batchnorms`),
    which the fast stages need: for inference only. Anything else is returned unchanged.
    """
    refiner = getattr(model, "refiner", None)
    if isinstance(refiner, Refiner) and not isinstance(refiner, WindowRefiner):
        model.refiner = WindowRefiner.from_refiner(refiner)
        refiner = model.refiner
    if fold and isinstance(refiner, WindowRefiner) and not refiner.training and not refiner.folded:
        fold_batchnorms(refiner)
    return model
