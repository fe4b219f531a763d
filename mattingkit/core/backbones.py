"""Chapter 03. The encoders: torchvision's ResNet and MobileNetV2, taught to read 6 channels.

Background Matting V2 reuses classification backbones almost unchanged. Three edits
turn a classifier into a matting encoder:

1. The first convolution reads 6 channels (the frame and its clean plate, stacked), not 3.
2. The classifier head (global pooling + fully connected layer) is dropped.
3. The last stage trades its stride-2 downsampling for dilation, so the deepest
   features sit at 1/16 of the input instead of 1/32 ("output stride 16"). Matting
   needs spatial detail; dilation keeps the receptive field without losing resolution.

Both encoders subclass torchvision's models, so their parameter names are exactly
torchvision's (and the official BMV2 checkpoints'): ``backbone.layer1.0.conv1.weight``
and so on. Each encoder returns the deepest feature map plus the skip connections the
decoder needs, as an :class:`EncoderFeatures` tuple.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torchvision.models import MobileNetV2
from torchvision.models.resnet import Bottleneck, ResNet

BACKBONES = ("resnet50", "resnet101", "mobilenetv2")


class EncoderFeatures(NamedTuple):
    """Feature maps from deepest to shallowest; the number is the downsampling factor."""

    out16: torch.Tensor  # (B, 2048 | 320, H/16, W/16): the input to ASPP
    skip8: torch.Tensor  # (B, 512 | 32, H/8, W/8)
    skip4: torch.Tensor  # (B, 256 | 24, H/4, W/4)
    skip2: torch.Tensor  # (B, 64 | 16, H/2, W/2)
    skip1: torch.Tensor  # (B, 6, H, W): the input itself, so the decoder can see full-res pixels


class ResNetEncoder(ResNet):
    """Chapter 03. ResNet-50 or ResNet-101 with a 6-channel stem and output stride 16.

    Args:
        in_channels: channels of the input (6 = frame RGB + plate RGB).
        variant: ``"resnet50"`` or ``"resnet101"``; they differ only in the depth of ``layer3``.
    """

    BLOCKS_PER_STAGE = {"resnet50": [3, 4, 6, 3], "resnet101": [3, 4, 23, 3]}

    def __init__(self, in_channels: int = 6, variant: str = "resnet50") -> None:
        if variant not in self.BLOCKS_PER_STAGE:
            raise ValueError(f"ResNet variant must be resnet50 or resnet101, got {variant!r}")
        # replace_stride_with_dilation: layer2, layer3 keep their stride; layer4 dilates instead.
        super().__init__(
            block=Bottleneck,
            layers=self.BLOCKS_PER_STAGE[variant],
            replace_stride_with_dilation=[False, False, True],
        )
        if in_channels != 3:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        del self.avgpool
        del self.fc

    def forward(self, x: torch.Tensor) -> EncoderFeatures:
        skip1 = x
        x = self.relu(self.bn1(self.conv1(x)))
        skip2 = x  # 1/2
        x = self.layer1(self.maxpool(x))
        skip4 = x  # 1/4
        x = self.layer2(x)
        skip8 = x  # 1/8
        x = self.layer4(self.layer3(x))  # 1/16: layer4 dilates instead of striding
        return EncoderFeatures(x, skip8, skip4, skip2, skip1)


class MobileNetV2Encoder(MobileNetV2):
    """Chapter 03. MobileNetV2 with a 6-channel stem and output stride 16.

    torchvision's ``features`` has 19 blocks; the last one (a 1x1 conv to 1280 channels,
    only useful for classification) is removed, leaving ``features.0`` .. ``features.17``.
    Block 14 would halve the resolution a fifth time: its depthwise conv gets stride 1,
    and the blocks after it dilate by 2 to keep their receptive field.
    """

    # Indices of the blocks whose outputs become skip connections (1/2, 1/4, 1/8 resolution).
    SKIP_AFTER_BLOCK = (1, 3, 6)
    __constants__ = ["SKIP_AFTER_BLOCK"]  # so torch.jit.script can read it

    def __init__(self, in_channels: int = 6) -> None:
        super().__init__()
        if in_channels != 3:
            self.features[0][0] = nn.Conv2d(in_channels, 32, 3, stride=2, padding=1, bias=False)
        self.features = self.features[:-1]
        self.features[14].conv[1][0].stride = (1, 1)
        for block in self.features[15:]:
            depthwise = block.conv[1][0]
            depthwise.dilation = (2, 2)
            depthwise.padding = (2, 2)
        del self.classifier

    def forward(self, x: torch.Tensor) -> EncoderFeatures:
        skip1 = x
        skip2 = skip4 = skip8 = x
        after2, after4, after8 = self.SKIP_AFTER_BLOCK
        for index, block in enumerate(self.features):
            x = block(x)
            if index == after2:
                skip2 = x  # 1/2, 16 channels
            elif index == after4:
                skip4 = x  # 1/4, 24 channels
            elif index == after8:
                skip8 = x  # 1/8, 32 channels
        return EncoderFeatures(x, skip8, skip4, skip2, skip1)


def build_encoder(backbone: str, in_channels: int = 6) -> nn.Module:
    """Chapter 03. The encoder for a backbone name, with a clear error for unknown names."""
    if backbone in ("resnet50", "resnet101"):
        return ResNetEncoder(in_channels, variant=backbone)
    if backbone == "mobilenetv2":
        return MobileNetV2Encoder(in_channels)
    raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}; got {backbone!r}")


def encoder_channels(backbone: str) -> tuple[int, int, int, int]:
    """Channels of (out16, skip8, skip4, skip2) for a backbone: the decoder is sized from them."""
    if backbone == "mobilenetv2":
        return (320, 32, 24, 16)
    return (2048, 512, 256, 64)
