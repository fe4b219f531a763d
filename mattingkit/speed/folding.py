"""BatchNorm folded into the convolution before it: one rule for the whole model (chapter 04b).

In eval mode BatchNorm is a fixed affine map per channel, ``gamma * (y - mean) / sqrt(var +
eps) + beta``, so ``bn(conv(x))`` is one convolution with scaled weights and a bias: the same
function within float rounding, one pass over the activations fewer per layer. torch does the
arithmetic (``torch.nn.utils.fusion.fuse_conv_bn_eval``); this module only finds the pairs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorms", "has_foldable_batchnorm"]


def _pairs_by_name(module: nn.Module) -> list[tuple[str, str]]:
    """``convN`` followed by ``bnN`` (ResNet blocks, the decoder, the refiner), or a Conv2d
    followed by a BatchNorm2d inside an ``nn.Sequential`` (torchvision's MobileNetV2, ASPP)."""
    children = module._modules
    if isinstance(module, nn.Sequential):
        names = list(children)
        return [
            (first, second)
            for first, second in zip(names, names[1:])
            if isinstance(children[first], nn.Conv2d)
            and isinstance(children[second], nn.BatchNorm2d)
        ]
    return [
        (f"conv{n}", f"bn{n}")
        for n in range(1, 4)
        if isinstance(children.get(f"conv{n}"), nn.Conv2d)
        and isinstance(children.get(f"bn{n}"), nn.BatchNorm2d)
    ]


def _conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Module, str, str]]:
    return [(module, c, b) for module in model.modules() for c, b in _pairs_by_name(module)]


def has_foldable_batchnorm(model: nn.Module) -> bool:
    """True when :func:`fold_batchnorms` would fold something (False for TorchScript)."""
    return not isinstance(model, torch.jit.ScriptModule) and bool(_conv_bn_pairs(model))


def fold_batchnorms(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm that directly follows a convolution, in place.

    The BatchNorm becomes ``nn.Identity`` and the convolution gains a bias. For inference
    only (the BatchNorm parameters are gone: train and export the original). A refiner
    with the window path (:class:`mattingkit.speed.windows.WindowRefiner`) is marked
    ``folded``, which its fast stages need. Returns how many were folded.
    """
    if model.training:
        raise ValueError("fold_batchnorms needs a model in eval mode (BatchNorm's running stats)")
    pairs = _conv_bn_pairs(model)
    for parent, conv_name, bn_name in pairs:
        conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
        setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
        setattr(parent, bn_name, nn.Identity())
        if hasattr(parent, "folded"):
            parent.folded = True
    return len(pairs)
