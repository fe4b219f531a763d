"""Chapters 03-04. The paper's numbers, written once.

Lin, Ryabtsev et al., *Real-Time High-Resolution Background Matting* (CVPR 2021). The weights
registry (:mod:`mattingkit.weights.pretrained`), the cost and speed module (:mod:`mattingkit.speed.profile`),
the benchmarks, the inference presets and the notebooks all read these tables, so "paper says /
we measured" always compares against the same figure.

* :data:`RESOLUTIONS`: the two settings the paper recommends and measures (HD and 4K): frame
  size, ``backbone_scale`` and ``refine_sample_pixels``.
* :func:`scaled_settings` / :func:`refine_pixels_for`: the same share of the frame refined at
  any size (what ``Matter(preset="auto")``, the webcam and the video pipeline use).
* :data:`TABLE3`: speed (fps on an RTX 2080 Ti, FP32, batch 1) and cost (GMac) per backbone
  and resolution.
* :data:`TABLE4`: parameters and model size (MB, fp32) per backbone.
* :data:`TABLE6`: alpha and foreground errors on the Distinctions-646 test set.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple

from mattingkit.core.backbones import BACKBONES

__all__ = [
    "BACKBONES",
    "RESOLUTIONS",
    "TABLE3",
    "TABLE4",
    "TABLE6",
    "Resolution",
    "Speed",
    "Size",
    "Quality",
    "resolution_for",
    "REFINE_SHARE",
    "MIN_REFINE_PIXELS",
    "refine_pixels_for",
    "official_settings",
    "scaled_settings",
    "SHIPPED_BASE_SIDE",
    "SHIPPED_MAX_BASE_SIDE",
    "capped_settings",
    "fixed_base_settings",
]


class Resolution(NamedTuple):
    """One column of Table 3: the frame size and the refine settings the paper uses for it."""

    size: tuple[int, int]  # (H, W)
    backbone_scale: float  # the base network sees the frame scaled by this
    refine_sample_pixels: int  # pixels the refiner re-predicts (in 4x4 patches)

    def settings(self) -> dict[str, float]:
        """The ``MattingRefine`` keyword arguments of this resolution."""
        return {
            "backbone_scale": self.backbone_scale,
            "refine_sample_pixels": self.refine_sample_pixels,
        }


#: The paper's HD and 4K settings (section 4.3 and the official inference scripts).
RESOLUTIONS: MappingProxyType[str, Resolution] = MappingProxyType(
    {
        "hd": Resolution((1080, 1920), 1 / 4, 80_000),
        "4k": Resolution((2160, 3840), 1 / 8, 320_000),
    }
)


def resolution_for(height: int, width: int) -> str:
    """``"hd"`` up to 2048 x 2048, ``"4k"`` above: the rule of the official Colab."""
    return "hd" if height <= 2048 and width <= 2048 else "4k"


#: The share of a frame's pixels the paper refines: 80,000 of 1920 x 1080 at HD and 320,000
#: of 3840 x 2160 at 4K are the same 3.86 %.
REFINE_SHARE = RESOLUTIONS["hd"].refine_sample_pixels / (
    RESOLUTIONS["hd"].size[0] * RESOLUTIONS["hd"].size[1]
)

#: The fewest pixels :func:`refine_pixels_for` refines: 256 patches of 4 x 4, enough to follow
#: an outline about 1,000 pixels long (the perimeter of a 320 x 240 frame). A subject's
#: outline shrinks with the frame's side, not its area, so below about 0.1 megapixel the
#: paper's share alone would leave part of the outline of a frame-filling subject unrefined.
MIN_REFINE_PIXELS = 4_096


def refine_pixels_for(
    height: int, width: int, *, share: float = REFINE_SHARE, minimum: int = MIN_REFINE_PIXELS
) -> int:
    """Pixels to refine in a ``height x width`` frame: a share of its area (the one rule for
    inference presets and training crops).

    Chapter 04. ``share`` (the paper's :data:`REFINE_SHARE`, 3.86 %) of the frame, in whole
    4 x 4 patches, at least ``minimum`` (:data:`MIN_REFINE_PIXELS`; training crops use 16
    patches). Exactly the paper's 80,000 at 1920 x 1080 and 320,000 at
    3840 x 2160; 11,856 at 640 x 480 instead of the HD preset's 80,000 (which is 26 % of
    that frame, and all of a 320 x 240 one: the refiner then costs more than the base
    network).
    """
    if int(height) != height or int(width) != width or height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive integers, got {height} x {width}")
    patches = round(int(height) * int(width) * share / 16)
    return max(16 * patches, minimum)


def official_settings(height: int, width: int) -> dict[str, float]:
    """The paper's fixed HD or 4K settings, picked by frame size as the official Colab does
    (:func:`resolution_for`): ``Matter(preset="hd"/"4k")`` and the demo."""
    return RESOLUTIONS[resolution_for(height, width)].settings()


def scaled_settings(height: int, width: int) -> dict[str, float]:
    """``MattingRefine`` settings for any frame size: what ``Matter(preset="auto")`` uses.

    Chapter 04. The backbone scale of :func:`resolution_for` (1/4 up to 2048 x 2048, 1/8
    above) and :func:`refine_pixels_for`: at 1920 x 1080 and 3840 x 2160 exactly the paper's
    settings, elsewhere the same share of the frame refined.
    """
    return {
        "backbone_scale": RESOLUTIONS[resolution_for(height, width)].backbone_scale,
        "refine_sample_pixels": refine_pixels_for(height, width),
    }


class Speed(NamedTuple):
    """A cell of Table 3."""

    fps: float  # frames per second on an RTX 2080 Ti, FP32, batch 1
    gmacs: float  # multiply-accumulates of one frame, in billions


#: Table 3: (backbone, resolution) -> speed and cost, sampling mode.
TABLE3: MappingProxyType[tuple[str, str], Speed] = MappingProxyType(
    {
        ("resnet50", "hd"): Speed(60.0, 34.3),
        ("resnet101", "hd"): Speed(42.5, 44.0),
        ("mobilenetv2", "hd"): Speed(100.6, 9.9),
        ("resnet50", "4k"): Speed(33.2, 41.5),
        ("resnet101", "4k"): Speed(29.8, 51.2),
        ("mobilenetv2", "4k"): Speed(45.4, 17.0),
    }
)


class Size(NamedTuple):
    """A row of Table 4."""

    num_params: int  # equal to the parameter count of MattingRefine(backbone)
    size_mb: float  # the fp32 model file


#: Table 4: backbone -> parameters and size.
TABLE4: MappingProxyType[str, Size] = MappingProxyType(
    {
        "resnet50": Size(40_247_703, 153.53),
        "resnet101": Size(59_239_831, 225.98),
        "mobilenetv2": Size(5_006_839, 19.10),
    }
)


class Quality(NamedTuple):
    """A row of Table 6 (Distinctions-646 test set; MSE values x 1e3)."""

    sad: float
    mse: float
    grad: float
    conn: float
    fgr_mse: float


#: Table 6: backbone -> matting errors of the released model.
TABLE6: MappingProxyType[str, Quality] = MappingProxyType(
    {
        "resnet50": Quality(9.19, 7.08, 6345, 7216, 6.10),
        "resnet101": Quality(9.30, 6.82, 6191, 7128, 7.68),
        "mobilenetv2": Quality(10.53, 9.62, 7904, 8808, 8.19),
    }
)


#: A base network input's short side, in pixels, for a model trained on small inputs only. The
#: shipped model of 2026-11 saw 128 x 128 base inputs only; on held-out synthetic subjects at
#: 512, 1024 and 2048 px (``scripts/diagnose_shipped_model.py``) a 128-192 px short side kept its
#: holes at 1.9-2.7 % at every size (difference keying: 2.4-2.8 %), while 256 px gave 6-10 % and
#: 512 px (the paper's 1/4 at 2048 px) 16-24 %. The model shipped since trains its base network
#: on 128-320 px inputs (the recipe's multiscale and wide stages) and runs at the paper's
#: settings up to the cap below; its card (``assets/weights/README.md``) compares the choices.
SHIPPED_BASE_SIDE = 192


def fixed_base_settings(
    height: int, width: int, base_side: int = SHIPPED_BASE_SIDE
) -> dict[str, float]:
    """``MattingRefine`` settings that give the base network the same input size at any frame size.

    Chapter 04. The paper's ``backbone_scale`` is a choice: 1/4 of HD is what the official
    weights saw in training. A model trained on smaller inputs only (mattingkit's shipped model
    before its multiscale stage: 128 px) should keep its base input near that size, or the
    subject is larger than any it learned and it leaves holes in it (RVM likewise tells its
    users to keep its internal size at 256-512 px). ``backbone_scale`` makes the short side ``base_side`` pixels (at most 1/2);
    the refiner re-predicts :func:`refine_pixels_for` of the frame, as in :func:`scaled_settings`.
    """
    if base_side <= 0:
        raise ValueError(f"base_side must be positive, got {base_side}")
    return {
        "backbone_scale": min(0.5, base_side / min(int(height), int(width))),
        "refine_sample_pixels": refine_pixels_for(height, width),
    }


#: The largest base input short side, in pixels, for mattingkit's shipped model. Its last
#: training stage gave the base network inputs of 128-320 px; the paper's HD and 4K settings
#: give it 270 px, while 1/4 of a 2048 x 2048 frame, 512 px, is far outside: the card's scale
#: sweep (``assets/weights/README.md``) has the holes at each choice, 288 px leaves a margin
#: below the largest trained size.
SHIPPED_MAX_BASE_SIDE = 288


def capped_settings(
    height: int, width: int, max_base_side: int = SHIPPED_MAX_BASE_SIDE
) -> dict[str, float]:
    """:func:`scaled_settings`, with the base network's input short side at most ``max_base_side``.

    Chapter 07. What ``Matter(preset="auto")`` uses for mattingkit's shipped model: the paper's
    settings wherever the base input's short side stays at most ``max_base_side`` (288 px,
    inside the 128-320 px it trained on; HD and 4K give 270 px, a 640 x 480 webcam 120, just
    under the smallest trained size), a smaller ``backbone_scale`` on larger frames.
    """
    if max_base_side <= 0:
        raise ValueError(f"max_base_side must be positive, got {max_base_side}")
    settings = scaled_settings(height, width)
    cap = max_base_side / min(int(height), int(width))
    settings["backbone_scale"] = min(float(settings["backbone_scale"]), cap)
    return settings
