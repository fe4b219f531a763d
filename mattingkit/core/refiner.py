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

Because only k patches are refined, the cost of the two stages does not grow with the
frame size: that is how the model runs at 4K. This module builds the stage inputs the
official way (upsample whole maps, then crop), which keeps parity with the official code
exact. :mod:`mattingkit.speed.windows` computes the same inputs from small per-patch
windows, at a cost that follows the patches instead of the frame (chapter 04b).
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


def cat_channels_last(tensors: List[torch.Tensor]) -> torch.Tensor:
    """``torch.cat`` along channels with the result in channels-last memory.

    ``torch.cat`` falls back to NCHW when a 1-channel input (alpha) is ambiguous about its
    layout; concatenating the (B, H, W, C) views along their last dimension never does.
    """
    return torch.cat([t.permute(0, 2, 3, 1) for t in tensors], dim=3).permute(0, 3, 1, 2)


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
            The crop method applies to the whole-frame path; the window path
            (:mod:`mattingkit.speed.windows`) gathers with plain indexing (also exportable).

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
    ) -> None:
        super().__init__()
        _check_choice("refine_mode", mode, REFINE_MODES)
        _check_choice("refine_kernel_size", kernel_size, (1, 3))
        _check_choice("refine_patch_crop_method", patch_crop_method, CROP_METHODS)
        _check_choice("refine_patch_replace_method", patch_replace_method, REPLACE_METHODS)
        self.mode = mode
        self.sample_pixels = sample_pixels
        self.threshold = threshold
        self.prevent_oversampling = prevent_oversampling
        self.kernel_size = kernel_size
        self.patch_crop_method = patch_crop_method
        self.patch_replace_method = patch_replace_method
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
        # stage 2 at full resolution.
        x = self.refine_patches(src, bgr, pha, fgr, hid, index, half)
        out = replace_patches(upsampled, x, index, self.patch_replace_method)
        return out[:, :1], out[:, 1:], ref

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
        """Step 2 for the chosen patches: (P, 4, 4, 4) alpha + residual.

        :class:`mattingkit.speed.windows.WindowRefiner` overrides this one method.
        """
        x, images_crop = self.inputs_from_frames(src, bgr, pha, fgr, hid, index, half)
        return self.stages(x, images_crop)

    def stages(self, x: torch.Tensor, images_crop: torch.Tensor) -> torch.Tensor:
        """Stage 1, nearest-upsample to 8x8, add the full-resolution pixels, stage 2."""
        x = self.stage1(x)
        x = F.interpolate(x, 8 if self.kernel_size == 3 else 4, mode="nearest")
        return self.stage2(torch.cat([x, images_crop], dim=1))

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
