"""Chapter 03. The decoder: climb back from 1/16 to full resolution, one skip connection at a time.

At each step the coarse map is bilinearly upsampled to the size of the next skip
connection, concatenated with it, and mixed by a 3x3 convolution (+ BatchNorm + ReLU).
The paper writes the stack as ``CBR128-CBR64-CBR48-C37``: the last convolution, with a
bias and no normalisation, produces the 37 output channels
(alpha 1, foreground residual 3, error 1, hidden 32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def upsample_and_concat(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """Resize ``x`` to the skip's exact size (works for odd sizes too) and stack them."""
    x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
    return torch.cat([x, skip], dim=1)


class Decoder(nn.Module):
    """Chapter 03. Four upsampling steps: 1/16 -> 1/8 -> 1/4 -> 1/2 -> 1.

    Args:
        channels: output channels of the ASPP and of each step, e.g. ``[256, 128, 64, 48, 37]``.
        skip_channels: channels of the skips from deep to shallow, e.g. ``[512, 256, 64, 6]``.
    """

    def __init__(self, channels: list[int], skip_channels: list[int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            channels[0] + skip_channels[0], channels[1], 3, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(channels[1])
        self.conv2 = nn.Conv2d(
            channels[1] + skip_channels[1], channels[2], 3, padding=1, bias=False
        )
        self.bn2 = nn.BatchNorm2d(channels[2])
        self.conv3 = nn.Conv2d(
            channels[2] + skip_channels[2], channels[3], 3, padding=1, bias=False
        )
        self.bn3 = nn.BatchNorm2d(channels[3])
        # The output layer: a plain convolution with bias, its channels are the predictions.
        self.conv4 = nn.Conv2d(channels[3] + skip_channels[3], channels[4], 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(
        self,
        x: torch.Tensor,
        skip8: torch.Tensor,
        skip4: torch.Tensor,
        skip2: torch.Tensor,
        skip1: torch.Tensor,
    ) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(upsample_and_concat(x, skip8))))
        x = self.relu(self.bn2(self.conv2(upsample_and_concat(x, skip4))))
        x = self.relu(self.bn3(self.conv3(upsample_and_concat(x, skip2))))
        return self.conv4(upsample_and_concat(x, skip1))
