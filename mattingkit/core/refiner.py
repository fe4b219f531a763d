"""Chapter 04. Refinement: re-predict only the 4x4 patches the base network got wrong.

The base network runs at low resolution (1/4 for HD, 1/8 for 4K) and also predicts
where it is probably wrong (the error map). The refiner then works in three steps:

1. **Select** patches: the error map is resized so that one pixel stands for one 4x4
   patch of the full-resolution frame, and the worst patches are chosen
   (:func:`select_refinement_regions`): a fixed number (``sampling``), all above a
   threshold (``thresholding``), or every patch (``full``, for debugging).
2. **Refine** each chosen patch in two small stages. Stage 1, at 1/2 resolution, looks at
   an 8x8 crop (the 2x2 centre plus 3 pixels of context on each side) of the coarse
   prediction, the hidden features and the images, and two valid 3x3 convolutions shrink
   it to 4x4. Stage 2 upsamples that to 8x8, adds an 8x8 crop of the full-resolution
   images, and two more valid 3x3 convolutions produce the final 4x4 patch
   (alpha + foreground residual).
3. **Replace**: the coarse prediction is bilinearly upsampled to full resolution and the
   refined patches are pasted over it (:func:`replace_patches`).

Because only k patches are refined, the cost of step 2 does not grow with the frame size:
that is how the model runs at 4K.

**Cost model.** Stage 1 needs the coarse prediction at 1/2 resolution, but only around the
chosen patches. The straightforward way (the official code's) upsamples the whole coarse map
to 1/2 resolution, pads it, and then cuts out the patches: a cost that grows with the frame
(``H x W x 42`` values written, read and copied several times) even when only 5,000 patches
are refined. The *window path* (:meth:`Refiner.inputs_from_windows`) works the other way
round: select patches -> gather a small coarse window per patch -> upsample each window ->
the two tiny stages -> paste back. Its cost is about ``patches x window size x channels``,
not ``frame size``; only the final upsample of the 4 output channels (needed for the
output anyway) still touches every pixel. The model predicts when it pays: an 8x8 crop
needs a 5x5 coarse window upsampled to 10x10 at HD, so 5,000 patches upsample about as many
values as the whole half-resolution frame (5,000 x 100 vs 540 x 960) but skip the padding
and copying of frames: measured on one thread of a 2-core CPU, the refiner's time halves
(about 350 -> 175 ms). At 4K a 4x4 window becomes 16x16 for the same 8x8 crop, so 20,000
windows hold 2.5 times the frame and the gain shrinks (about 1.8 -> 1.3 s). Fewer patches
(the ``thresholding`` mode on a real frame) make it cheaper still, while the whole-frame
path pays for frame-sized maps however few are selected (chapter 04 measures both).

**The stages themselves.** Once the inputs are gathered, what costs is moving 8x8 crops
of 42 and 22 channels per patch (the upsampled features, then the nearest-upsampled stage-1
output) through concatenations and BatchNorm passes, not the multiply-adds. In eval mode the
window path at HD runs :meth:`Refiner.stages_from_windows` instead of :meth:`Refiner.stage1`
and :meth:`Refiner.stage2`: BatchNorm folded into the convolutions, each upsampling composed
with the convolution after it into one convolution on the small map
(:func:`upsampled_conv_kernel`, a "sub-pixel" convolution), nothing concatenated. Same
function, equal to the modules within float rounding; measured on one thread, the refiner's
CPU time drops from about 225 to 135 ms for 5,000 patches.

The window path gives bit-identical results to the whole-frame path run on the same
tensors (with ``fast_stages`` off; with it on, within float rounding). It is used for channels-last inputs (how :class:`mattingkit.Matter` runs the
model) whenever the coarse map is an exact power-of-two downscale of the half-resolution
grid (true for HD at 1/4 and 4K at 1/8). Everything else, and plain NCHW inputs (the
layout the official code uses, so parity stays exact), takes the whole-frame path
(:meth:`Refiner.inputs_from_frames`).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

REFINE_MODES = ("full", "sampling", "thresholding")
CROP_METHODS = ("unfold", "roi_align", "gather")
REPLACE_METHODS = ("scatter_nd", "scatter_element")
# When to build the stage inputs from small windows (see Refiner.use_windows).
WINDOW_PATHS = ("auto", "always", "never")

# A patch location: (batch index, row, column) in the quarter-resolution grid, each (P,).
PatchIndex = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def select_refinement_regions(
    err: torch.Tensor,
    mode: str,
    sample_pixels: int,
    threshold: float,
    prevent_oversampling: bool = True,
    random_share: float = 0.0,
) -> torch.Tensor:
    """Chapter 04. Mark the 4x4 patches to refine, from an error map at 1/4 resolution.

    Args:
        err: (B, 1, H/4, W/4) predicted error, one value per 4x4 patch, in [0, 1].
        mode: ``"sampling"`` refines the ``sample_pixels // 16`` worst patches of each image
            (a fixed cost, good for real time); ``"thresholding"`` refines every patch with
            error above ``threshold`` (a cost that follows the content).
        prevent_oversampling: in sampling mode, skip patches whose error is exactly 0 when
            fewer than k patches are wrong. Turn off only to time the worst case.
        random_share: training only (chapter 06), sampling mode: this share of the k patches
            is drawn at random among the others instead of by error. A refiner that only
            ever sees the hardest patches never learns to leave an easy patch alone, and
            then ``full`` or ``thresholding`` at a low threshold make the matte worse.

    Returns:
        (B, 1, H/4, W/4) float map, 1 where a patch is refined.
    """
    if mode == "sampling":
        batch, _, height, width = err.shape
        flat = err.view(batch, -1)
        # Never ask for more patches than exist (the official code crashes on small inputs).
        k = min(sample_pixels // 16, height * width)
        k_random = min(int(round(k * random_share)), k)
        worst = flat.topk(k - k_random, dim=1, sorted=False).indices
        selected = torch.zeros_like(flat).scatter_(1, worst, 1.0)
        if prevent_oversampling:
            selected = selected * flat.gt(0).float()
        if k_random > 0:
            # Random scores, with the patches already chosen pushed to the bottom.
            scores = torch.rand_like(flat) - 2.0 * selected
            extra = scores.topk(k_random, dim=1, sorted=False).indices
            selected = selected.scatter(1, extra, 1.0)
        return selected.view(batch, 1, height, width)
    if mode == "thresholding":
        return err.gt(threshold).float()
    raise ValueError(f"cannot select regions in refine mode '{mode}'")


def pixel_indices(shape: List[int], index: PatchIndex, size: int, padding: int) -> torch.Tensor:
    """Flat indices into ``x.view(-1)`` of every pixel of every patch: (P, C, O, O), O = size+2*padding.

    Used by the ONNX-friendly ``gather`` crop and ``scatter_element`` replace, which move
    pixels one by one instead of slicing views.
    """
    _, channels, height, width = shape
    out = size + 2 * padding
    b, row, col = index
    device = b.device
    c = torch.arange(channels, device=device).view(1, channels, 1, 1)
    o = torch.arange(out, device=device)
    # Offset of the patch's top-left pixel, then of each pixel inside the patch.
    corner = b * (channels * height * width) + row * size * width + col * size
    within = c * (height * width) + o.view(1, 1, out, 1) * width + o.view(1, 1, 1, out)
    return corner.view(-1, 1, 1, 1) + within


def crop_patches(
    x: torch.Tensor, index: PatchIndex, size: int, padding: int, method: str = "unfold"
) -> torch.Tensor:
    """Chapter 04. Cut (P, C, size+2p, size+2p) patches centred on a grid of stride ``size``.

    The patch at grid position (row, col) covers ``x[..., row*size - p : row*size + size + p, ...]``;
    the image is zero-padded by ``p`` first so border patches have context too.
    """
    if padding != 0:
        x = F.pad(x, (padding, padding, padding, padding))
    window = size + 2 * padding
    if method == "unfold":
        # A strided view of every window (no copy), then pick the selected ones.
        windows = x.permute(0, 2, 3, 1).unfold(1, window, size).unfold(2, window, size)
        return windows[index[0], index[1], index[2]]
    if method == "roi_align":
        # Boxes whose sample points fall exactly on pixel centres: a pure crop, ONNX-friendly.
        b = index[0].to(x.dtype)
        top = index[1].to(x.dtype) * size - 0.5
        left = index[2].to(x.dtype) * size - 0.5
        boxes = torch.stack([b, left, top, left + window, top + window], dim=1)
        return torchvision.ops.roi_align(x, boxes, window, sampling_ratio=1)
    if method == "gather":
        flat = pixel_indices(list(x.shape), index, size, padding)
        return torch.gather(x.reshape(-1), 0, flat.view(-1)).view(-1, x.size(1), window, window)
    raise ValueError(f"unknown patch crop method '{method}'; use unfold, roi_align or gather")


def replace_patches(
    x: torch.Tensor, patches: torch.Tensor, index: PatchIndex, method: str = "scatter_nd"
) -> torch.Tensor:
    """Chapter 04. Paste (P, C, h, w) patches into x (B, C, H, W) at grid positions ``index``."""
    batch, channels, height, width = x.shape
    patch_h, patch_w = patches.shape[2], patches.shape[3]
    if method == "scatter_nd":
        # View the image as a grid of patches, assign the selected cells, view back.
        grid = x.view(batch, channels, height // patch_h, patch_h, width // patch_w, patch_w)
        grid = grid.permute(0, 2, 4, 1, 3, 5)
        grid[index[0], index[1], index[2]] = patches
        return grid.permute(0, 3, 1, 4, 2, 5).reshape(batch, channels, height, width)
    if method == "scatter_element":
        flat = pixel_indices(list(x.shape), index, patch_h, 0)
        return x.reshape(-1).scatter(0, flat.view(-1), patches.reshape(-1)).view(x.shape)
    raise ValueError(f"unknown patch replace method '{method}'; use scatter_nd or scatter_element")


def gather_windows(
    x: torch.Tensor,
    batch: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    height: int,
    width: int,
) -> torch.Tensor:
    """Chapter 04. Cut one (C, height, width) window per entry, zero where it leaves the image.

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
    """Chapter 04. :func:`gather_windows` for windows that lie entirely inside the image.

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


def cat_channels_last(tensors: List[torch.Tensor]) -> torch.Tensor:
    """``torch.cat`` along channels with the result in channels-last memory.

    ``torch.cat`` falls back to NCHW when a 1-channel input (alpha) is ambiguous about its
    layout; concatenating the (B, H, W, C) views along their last dimension never does.
    """
    return torch.cat([t.permute(0, 2, 3, 1) for t in tensors], dim=3).permute(0, 3, 1, 2)


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


def fold_batchnorm(
    weight: torch.Tensor,
    mean: torch.Tensor | None,
    var: torch.Tensor | None,
    gamma: torch.Tensor | None,
    beta: torch.Tensor | None,
    eps: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Chapter 04. A bias-free convolution followed by eval-mode BatchNorm, as one convolution.

    In eval mode BatchNorm is a fixed affine map per channel,
    ``gamma * (y - mean) / sqrt(var + eps) + beta``, so it can be multiplied into the
    convolution: weight ``weight * s``, bias ``beta - mean * s`` with
    ``s = gamma / sqrt(var + eps)``. Computed in float32, returned in the weight's dtype.
    """
    if mean is None or var is None or gamma is None or beta is None:
        raise ValueError(
            "fold_batchnorm needs a BatchNorm with running statistics and affine weights"
        )
    scale = gamma.float() * torch.rsqrt(var.float() + eps)
    folded = weight.float() * scale.view(-1, 1, 1, 1)
    bias = beta.float() - mean.float() * scale
    return folded.to(weight.dtype), bias.to(weight.dtype)


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
    """Chapter 04. One kernel for "upsample by 2, crop, then convolve with ``weight``".

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


class Refiner(nn.Module):
    """Chapter 04. The refinement network (15,444 parameters with 3x3 kernels).

    Args:
        mode, sample_pixels, threshold, prevent_oversampling: patch selection, see
            :func:`select_refinement_regions`.
        kernel_size: 3 (a 13x13 receptive field per output pixel) or 1 (2x2, cheaper, worse).
        patch_crop_method, patch_replace_method: equivalent implementations; ``unfold`` and
            ``scatter_nd`` are fastest, ``roi_align`` and ``scatter_element`` export to ONNX.
            The crop method applies to the whole-frame path; the window path gathers with
            plain indexing (also exportable).
        window_path: ``"auto"`` builds the stage inputs from small windows when the inputs
            are channels-last and the window path is exact (see the module docstring),
            ``"always"`` whenever it is exact (for NCHW inputs the window upsampling then runs
            in channels-last and differs from the NCHW whole-frame upsampling by float
            rounding, about 1e-7), ``"never"`` always upsamples whole frames. An attribute:
            ``model.refiner.window_path = "never"`` switches a built model.
        fast_stages: in eval mode on the window path at HD geometry (3x3 kernels, coarse map
            at half the half-resolution grid), run the two stages as folded, composed
            convolutions (:meth:`stages_from_windows`): the same function, equal within float
            rounding (about 1e-7), 1.6x cheaper. Training always runs the modules below
            (:meth:`stage1`, :meth:`stage2`). An attribute, like ``window_path``.

    Forward inputs: full-resolution ``src``/``bgr`` (B, 3, H, W); coarse ``pha`` (B, 1, h, w),
    foreground residual ``fgr`` (B, 3, h, w), ``err`` (B, 1, h, w), ``hid`` (B, 32, h, w).
    Returns full-resolution alpha and residual, and the (B, 1, H/4, W/4) map of refined patches.
    """

    __constants__ = ["kernel_size", "patch_crop_method", "patch_replace_method"]

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
        super().__init__()
        _check_choice("refine_mode", mode, REFINE_MODES)
        _check_choice("refine_kernel_size", kernel_size, (1, 3))
        _check_choice("refine_patch_crop_method", patch_crop_method, CROP_METHODS)
        _check_choice("refine_patch_replace_method", patch_replace_method, REPLACE_METHODS)
        _check_choice("window_path", window_path, WINDOW_PATHS)
        self.mode = mode
        self.sample_pixels = sample_pixels
        self.threshold = threshold
        self.prevent_oversampling = prevent_oversampling
        self.kernel_size = kernel_size
        self.patch_crop_method = patch_crop_method
        self.patch_replace_method = patch_replace_method
        self.window_path = window_path
        self.fast_stages = fast_stages
        # Training only (chapter 06): share of the sampled patches chosen at random, so the
        # refiner also learns easy patches. Set by mattingkit.training.loop; 0 is the official code.
        self.train_random_share = 0.0

        hidden, stage1_mid, stage1_out, stage2_mid, outputs = 32, 24, 16, 12, 4
        images = 6  # src + bgr
        coarse = 4  # alpha + foreground residual
        self.conv1 = nn.Conv2d(hidden + coarse + images, stage1_mid, kernel_size, bias=False)
        self.bn1 = nn.BatchNorm2d(stage1_mid)
        self.conv2 = nn.Conv2d(stage1_mid, stage1_out, kernel_size, bias=False)
        self.bn2 = nn.BatchNorm2d(stage1_out)
        self.conv3 = nn.Conv2d(stage1_out + images, stage2_mid, kernel_size, bias=False)
        self.bn3 = nn.BatchNorm2d(stage2_mid)
        self.conv4 = nn.Conv2d(stage2_mid, outputs, kernel_size, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def stage1(self, x: torch.Tensor) -> torch.Tensor:
        """Two conv-BN-ReLU at half resolution: (P, 42, 8, 8) -> (P, 16, 4, 4) with 3x3 kernels."""
        x = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(x)))

    def stage2(self, x: torch.Tensor) -> torch.Tensor:
        """Conv-BN-ReLU then the output conv at full resolution: (P, 22, 8, 8) -> (P, 4, 4, 4)."""
        x = self.relu(self.bn3(self.conv3(x)))
        return self.conv4(x)

    def forward(
        self,
        src: torch.Tensor,
        bgr: torch.Tensor,
        pha: torch.Tensor,
        fgr: torch.Tensor,
        err: torch.Tensor,
        hid: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        full_h, full_w = src.shape[2], src.shape[3]
        half = (full_h // 2, full_w // 2)
        quarter = (full_h // 4, full_w // 4)
        if self.mode == "full":
            images = torch.cat([src, bgr], dim=1)
            return self.refine_everywhere(images, pha, fgr, hid, half, quarter)

        err = F.interpolate(err, quarter, mode="bilinear", align_corners=False)
        random_share = self.train_random_share if self.training else 0.0
        ref = select_refinement_regions(
            err,
            self.mode,
            self.sample_pixels,
            self.threshold,
            self.prevent_oversampling,
            random_share,
        )
        nonzero = torch.nonzero(ref.squeeze(1))
        index = (nonzero[:, 0], nonzero[:, 1], nonzero[:, 2])

        coarse = torch.cat([pha, fgr], dim=1)
        upsampled = F.interpolate(coarse, (full_h, full_w), mode="bilinear", align_corners=False)
        if index[0].size(0) == 0:
            return upsampled[:, :1], upsampled[:, 1:], ref

        # Stage 1 at half resolution on crops of 2x2 cells (one 4x4 patch) plus context,
        # stage 2 at full resolution; both paths give the same crops, bit for bit.
        windows = self.use_windows(hid, half)
        if windows and self.use_fast_stages(hid, half):
            # Inference: the same stages as folded, composed convolutions (within 1e-6).
            x = self.stages_from_windows(src, bgr, coarse, hid, index)
        else:
            if windows:
                x, images_crop = self.inputs_from_windows(src, bgr, coarse, hid, index)
            else:
                x, images_crop = self.inputs_from_frames(src, bgr, pha, fgr, hid, index, half)
            x = self.stage1(x)
            # Stage 2 at full resolution: nearest-upsample to 8x8, add the full-resolution pixels.
            x = F.interpolate(x, 8 if self.kernel_size == 3 else 4, mode="nearest")
            x = self.stage2(torch.cat([x, images_crop], dim=1))

        out = replace_patches(upsampled, x, index, self.patch_replace_method)
        return out[:, :1], out[:, 1:], ref

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

    def inputs_from_frames(
        self,
        src: torch.Tensor,
        bgr: torch.Tensor,
        pha: torch.Tensor,
        fgr: torch.Tensor,
        hid: torch.Tensor,
        index: PatchIndex,
        half: Tuple[int, int],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Stage inputs the official way: upsample whole frames to 1/2 resolution, then crop.

        Returns the stage-1 input (P, 42, 8, 8) and the full-resolution images (P, 6, 8, 8).
        The cost grows with the frame: every pixel of 42 half-resolution channels is computed.
        """
        context = 3 if self.kernel_size == 3 else 0
        full_context = 2 if self.kernel_size == 3 else 0
        images = torch.cat([src, bgr], dim=1)
        channels_last = hid.is_contiguous(memory_format=torch.channels_last)
        if channels_last:
            # Upsample in the inputs' layout (the window path's; kernels differ by rounding).
            features = cat_channels_last([hid, pha, fgr])
        else:
            features = torch.cat([hid, pha, fgr], dim=1)
        features = F.interpolate(features, half, mode="bilinear", align_corners=False)
        images_half = F.interpolate(images, half, mode="bilinear", align_corners=False)
        x = torch.cat(
            [
                crop_patches(features, index, 2, context, self.patch_crop_method),
                crop_patches(images_half, index, 2, context, self.patch_crop_method),
            ],
            dim=1,
        )
        images_crop = crop_patches(images, index, 4, full_context, self.patch_crop_method)
        if channels_last:
            # Same memory layout as the window path, so both run the same convolution kernels.
            x = x.contiguous(memory_format=torch.channels_last)
            images_crop = images_crop.contiguous(memory_format=torch.channels_last)
        return x, images_crop

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
        if not self.fast_stages or self.training or self.kernel_size != 3:
            return False
        if hid.size(2) < 5 or hid.size(3) < 5:  # smaller than one window
            return False
        return (
            exact_upsample_factor(hid.size(2), half[0]) == 2
            and exact_upsample_factor(hid.size(3), half[1]) == 2
        )

    def folded_weights(self) -> List[torch.Tensor]:
        """conv1-3 with their BatchNorm folded in (eval mode): [w1, b1, w2, b2, w3, b3]."""
        w1, b1 = fold_batchnorm(
            self.conv1.weight, self.bn1.running_mean, self.bn1.running_var,
            self.bn1.weight, self.bn1.bias, self.bn1.eps,
        )  # fmt: skip
        w2, b2 = fold_batchnorm(
            self.conv2.weight, self.bn2.running_mean, self.bn2.running_var,
            self.bn2.weight, self.bn2.bias, self.bn2.eps,
        )  # fmt: skip
        w3, b3 = fold_batchnorm(
            self.conv3.weight, self.bn3.running_mean, self.bn3.running_var,
            self.bn3.weight, self.bn3.bias, self.bn3.eps,
        )  # fmt: skip
        return [w1, b1, w2, b2, w3, b3]

    def stages_from_windows(
        self,
        src: torch.Tensor,
        bgr: torch.Tensor,
        coarse: torch.Tensor,
        hid: torch.Tensor,
        index: PatchIndex,
    ) -> torch.Tensor:
        """Chapter 04. Both stages for the window path in eval mode: (P, 4, 4, 4) patches.

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

    def refine_everywhere(
        self,
        images: torch.Tensor,
        pha: torch.Tensor,
        fgr: torch.Tensor,
        hid: torch.Tensor,
        half: Tuple[int, int],
        quarter: Tuple[int, int],
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The ``full`` mode: the same network as dense convolutions over the whole frame."""
        x = F.interpolate(
            torch.cat([hid, pha, fgr], dim=1), half, mode="bilinear", align_corners=False
        )
        y = F.interpolate(images, half, mode="bilinear", align_corners=False)
        if self.kernel_size == 3:
            x = F.pad(x, (3, 3, 3, 3))
            y = F.pad(y, (3, 3, 3, 3))
        x = self.stage1(torch.cat([x, y], dim=1))
        full_h, full_w = images.shape[2], images.shape[3]
        if self.kernel_size == 3:
            x = F.interpolate(x, (full_h + 4, full_w + 4), mode="nearest")
            y = F.pad(images, (2, 2, 2, 2))
        else:
            x = F.interpolate(x, (full_h, full_w), mode="nearest")
            y = images
        x = self.stage2(torch.cat([x, y], dim=1))
        ref = torch.ones(
            (images.size(0), 1, quarter[0], quarter[1]), device=images.device, dtype=images.dtype
        )
        return x[:, :1], x[:, 1:], ref


def _check_choice(name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
