"""Chapters 03-04. The Background Matting V2 networks: ``MattingBase`` and ``MattingRefine``.

``MattingBase`` is an encoder-decoder in the style of DeepLabV3+: a backbone
(:mod:`mattingkit.core.backbones`), torchvision's ASPP, and the decoder of
:mod:`mattingkit.core.decoder`. It reads the frame and the clean plate stacked into 6
channels and predicts 37 channels: alpha, a foreground *residual* (chapter 02),
an error map, and 32 hidden channels for the refiner.

``MattingRefine`` runs that base network on a downsampled copy of the inputs, then lets
the :class:`~mattingkit.core.refiner.Refiner` fix the worst 4x4 patches at full resolution.

Constructor arguments, defaults, parameter names and output order are those of the
official implementation, so the released ``pytorch_*.pth`` state_dicts load with
``strict=True`` and ``pha, fgr = model(src, bgr)[:2]`` works as in the official demos.
Two things are friendlier: inputs of any height/width work (they are padded to a multiple
of 4 and the outputs cropped back), and mismatched inputs raise a ``ValueError`` that
names both sizes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPP

from mattingkit.core.backbones import BACKBONES, build_encoder, encoder_channels
from mattingkit.core.decoder import Decoder
from mattingkit.core.refiner import Refiner

ASPP_RATES = [3, 6, 9]
# Output channels of the base network, in order.
ALPHA, RESIDUAL, ERROR, HIDDEN = 1, 3, 1, 32
BASE_OUTPUT_CHANNELS = ALPHA + RESIDUAL + ERROR + HIDDEN  # 37


class BaseOutput(NamedTuple):
    """What :class:`MattingBase` predicts, all at the input's resolution."""

    pha: torch.Tensor  # (B, 1, H, W) alpha in [0, 1]
    fgr: torch.Tensor  # (B, 3, H, W) foreground = clamp(src + residual) in [0, 1]
    err: torch.Tensor  # (B, 1, H, W) predicted |alpha error| in [0, 1]
    hid: torch.Tensor  # (B, 32, H, W) hidden features (ReLU'd) handed to the refiner


class RefineOutput(NamedTuple):
    """What :class:`MattingRefine` predicts. ``_sm`` tensors are at the backbone's resolution."""

    pha: torch.Tensor  # (B, 1, H, W) refined alpha in [0, 1]
    fgr: torch.Tensor  # (B, 3, H, W) refined foreground in [0, 1]
    pha_sm: torch.Tensor  # (B, 1, h, w) coarse alpha, h = H * backbone_scale
    fgr_sm: torch.Tensor  # (B, 3, h, w) coarse foreground
    err_sm: torch.Tensor  # (B, 1, h, w) coarse error map: where the refiner looks
    ref_sm: torch.Tensor  # (B, 1, H/4, W/4) 1 where a 4x4 patch was refined


def split_outputs(x: torch.Tensor, src: torch.Tensor) -> BaseOutput:
    """Chapter 03. The base network's 37 raw channels -> bounded ``(pha, fgr, err, hid)``.

    Alpha and error are clamped to [0, 1]; channels 1-3 are a foreground *residual*, so the
    foreground is ``clamp(src + residual)`` (chapter 02); the 32 hidden channels are ReLU'd.
    ``src`` is the frame at the resolution of ``x``.
    """
    pha = x[:, 0:1].clamp(0.0, 1.0)
    fgr = (x[:, 1:4] + src).clamp(0.0, 1.0)
    err = x[:, 4:5].clamp(0.0, 1.0)
    hid = x[:, 5:].relu()
    return BaseOutput(pha, fgr, err, hid)


def check_inputs(src: torch.Tensor, bgr: torch.Tensor) -> None:
    """Fail early, in words, on the mistakes users make most (wrong shape, uint8, size mismatch)."""
    if src.dim() != 4 or bgr.dim() != 4:
        raise ValueError(
            f"src and bgr must be batches (B, 3, H, W); got src {list(src.shape)} and "
            f"bgr {list(bgr.shape)} (use .unsqueeze(0) for a single image)"
        )
    if src.size(1) != 3 or bgr.size(1) != 3:
        raise ValueError(
            f"src and bgr must have 3 RGB channels; got src {list(src.shape)} and bgr {list(bgr.shape)}"
        )
    if src.shape != bgr.shape:
        raise ValueError(
            f"src and bgr must have the same size: src is {src.size(2)}x{src.size(3)} "
            f"(HxW) but bgr is {bgr.size(2)}x{bgr.size(3)}; the background must be a clean "
            f"plate of the same camera view, resized to the frame"
        )
    if not src.is_floating_point() or not bgr.is_floating_point():
        raise ValueError(
            "src and bgr must be floating point RGB in [0, 1]; got "
            f"{src.dtype} and {bgr.dtype} (convert uint8 images with .float() / 255)"
        )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the bottom/right edges so H and W are multiples of ``multiple``."""
    pad_h = (multiple - x.size(2) % multiple) % multiple
    pad_w = (multiple - x.size(3) % multiple) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


class Base(nn.Module):
    """Chapter 03. Backbone + ASPP + decoder with any number of input/output channels."""

    def __init__(self, backbone: str, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}; got {backbone!r}")
        deepest, *skips = encoder_channels(backbone)
        self.backbone = build_encoder(backbone, in_channels)
        self.aspp = ASPP(deepest, ASPP_RATES)  # 256 output channels
        self.decoder = Decoder([256, 128, 64, 48, out_channels], [*skips, in_channels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_network(x)

    def run_network(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder -> ASPP -> decoder: (B, in_channels, H, W) -> (B, out_channels, H, W)."""
        features = self.backbone(x)
        x = self.aspp(features.out16)
        return self.decoder(x, features.skip8, features.skip4, features.skip2, features.skip1)


class MattingBase(Base):
    """Chapter 03. The base network: coarse alpha, foreground, error and hidden features.

    Example::

        model = MattingBase("mobilenetv2").eval()
        pha, fgr, err, hid = model(src, bgr)
    """

    def __init__(self, backbone: str) -> None:
        super().__init__(backbone, in_channels=6, out_channels=BASE_OUTPUT_CHANNELS)

    def predict(self, src: torch.Tensor, bgr: torch.Tensor) -> BaseOutput:
        """Run the network and turn its 37 raw channels into bounded predictions."""
        return split_outputs(self.run_network(torch.cat([src, bgr], dim=1)), src)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> BaseOutput:
        check_inputs(src, bgr)
        return self.predict(src, bgr)


#: The refine settings that may change between calls, with their types: plain attributes of
#: :class:`MattingRefine`, settable on a ``torch.jit.script``-ed model too (the official
#: TorchScript files expose the same five, ``model.setattr`` in C++).
PER_CALL_SETTINGS = {
    "backbone_scale": float,
    "refine_mode": str,
    "refine_sample_pixels": int,
    "refine_threshold": float,
    "refine_prevent_oversampling": bool,
}
#: The settings that shape the refiner, fixed when the model is built.
BUILD_SETTINGS = ("refine_kernel_size", "refine_patch_crop_method", "refine_patch_replace_method")


class MattingRefine(MattingBase):
    """Chapter 04. The full model: base network at low resolution + patch refiner at full resolution.

    Args:
        backbone: ``"resnet50"``, ``"resnet101"`` or ``"mobilenetv2"``.
        backbone_scale: how much the base network downsamples the input (at most 1/2).
            Use 1/4 for HD and 1/8 for 4K.
        refine_mode: ``"sampling"`` (a fixed number of patches), ``"thresholding"`` (patches
            with error above ``refine_threshold``) or ``"full"`` (every patch; debugging).
        refine_sample_pixels: pixels refined in sampling mode (80,000 for HD, 320,000 for 4K).
        refine_threshold: error threshold for thresholding mode.
        refine_kernel_size: 3 or 1, the refiner's convolution size.
        refine_prevent_oversampling: skip error-free patches in sampling mode.
        refine_patch_crop_method, refine_patch_replace_method: implementation choices
            (see :mod:`mattingkit.core.refiner`); all give the same result.

    The refine settings are plain attributes (also on a ``torch.jit.script``-ed model),
    so they can be changed after construction: ``model.refine_sample_pixels = 320_000``.
    """

    def __init__(
        self,
        backbone: str,
        backbone_scale: float = 1 / 4,
        refine_mode: str = "sampling",
        refine_sample_pixels: int = 80_000,
        refine_threshold: float = 0.1,
        refine_kernel_size: int = 3,
        refine_prevent_oversampling: bool = True,
        refine_patch_crop_method: str = "unfold",
        refine_patch_replace_method: str = "scatter_nd",
    ) -> None:
        if not 0 < backbone_scale <= 1 / 2:
            raise ValueError(f"backbone_scale must be in (0, 1/2], got {backbone_scale}")
        super().__init__(backbone)
        self.backbone_scale = backbone_scale
        self.refine_mode = refine_mode
        self.refine_sample_pixels = refine_sample_pixels
        self.refine_threshold = refine_threshold
        self.refine_prevent_oversampling = refine_prevent_oversampling
        self.refiner = Refiner(
            refine_mode,
            refine_sample_pixels,
            refine_threshold,
            refine_kernel_size,
            refine_prevent_oversampling,
            refine_patch_crop_method,
            refine_patch_replace_method,
        )

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> RefineOutput:
        check_inputs(src, bgr)
        height, width = src.size(2), src.size(3)
        # The refiner works on 4x4 patches: pad to a multiple of 4, crop the outputs back.
        src = pad_to_multiple(src, 4)
        bgr = pad_to_multiple(bgr, 4)

        # 1. The base network sees a small copy of the frame and plate.
        src_sm = self.downsample(src)
        bgr_sm = self.downsample(bgr)
        x = self.run_network(torch.cat([src_sm, bgr_sm], dim=1))
        pha_sm, fgr_sm, err_sm, hid_sm = split_outputs(x, src_sm)
        residual_sm = x[:, 1:4]  # the refiner continues from the raw residual, not the clamped F

        # 2. The refiner fixes the worst patches at full resolution. The settings live on
        #    this model so they stay editable on a scripted model; the refiner reads them here.
        self.refiner.mode = self.refine_mode
        self.refiner.sample_pixels = self.refine_sample_pixels
        self.refiner.threshold = self.refine_threshold
        self.refiner.prevent_oversampling = self.refine_prevent_oversampling
        pha, residual, ref_sm = self.refiner(src, bgr, pha_sm, residual_sm, err_sm, hid_sm)

        # 3. Residual + frame = foreground (chapter 02), everything clamped to [0, 1].
        pha = pha.clamp(0.0, 1.0)[:, :, :height, :width]
        fgr = (residual + src).clamp(0.0, 1.0)[:, :, :height, :width]
        return RefineOutput(pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x,
            scale_factor=self.backbone_scale,
            mode="bilinear",
            align_corners=False,
            recompute_scale_factor=True,
        )
