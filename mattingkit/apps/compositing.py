"""What a "background" means when compositing, and the plate fitted to the frame (chapter 07).

One home for the rules the library, the ``mattingkit`` command, the demo, the video pipeline
and the studio share: which values name a background (a colour, an image, a video, ``"blur"``
for the blurred plate, ``"transparent"``) and how each is resolved before any work
(:func:`resolve_background`); how a plate of another size is fitted to the frame
(:func:`fit_plate`); how one output frame becomes an 8-bit array (:func:`output_array`).
The compositing itself is the matting equation of :mod:`mattingkit.core.matting`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from mattingkit.core import matting
from mattingkit.core.matting import resize_to_cover
from mattingkit.outputs import looks_like_colour

__all__ = [
    "GREEN_SCREEN",
    "Background",
    "cover",
    "fit_plate",
    "output_array",
    "parse_colour",
    "resolve_background",
    "to_uint8",
]

#: The official demos' green screen, (120, 255, 155) / 255; what ``"green"`` means here.
GREEN_SCREEN = (120 / 255, 255 / 255, 155 / 255)


def _image_tensor(image: Any) -> torch.Tensor:
    from mattingkit.apps.inference import to_tensor  # inference imports this module

    return to_tensor(image, name="background")


def fit_plate(
    plate: torch.Tensor, height: int, width: int, *, rotation: int = 0, target: str = "the video"
) -> torch.Tensor:
    """The plate (…, 3, h, w) at the frame's size ``height`` × ``width``, with one warning.

    A plate of another size is usually the same camera in another mode (a 4K photo for an
    HD video, or a 4:3 photo for a 16:9 video, which the camera crops from the middle of its
    sensor), so it is scaled to *cover* the frame and centre-cropped
    (:func:`mattingkit.core.matting.resize_to_cover`): with the same aspect ratio that is a plain
    resize, nothing is cropped. A warning says which happened, because a wrong plate also
    has another size. An upright photo for a video stored sideways (``rotation`` ±90, a
    phone) is first turned to the stored orientation.
    """
    h, w = plate.shape[-2:]
    if (h, w) == (height, width):
        return plate
    if rotation in (90, -90) and h != w and (h > w) != (height > width):
        # An upright photo of the scene for a video stored sideways: store it sideways too.
        plate = torch.rot90(plate, k=-rotation // 90, dims=(-2, -1)).contiguous()
        h, w = plate.shape[-2:]
        if (h, w) == (height, width):
            return plate
    message = (
        f"the plate is {h}×{w} but {target} is {height}×{width} (H×W): the plate was scaled "
        f"to {height}×{width}"
    )
    if abs((h / w) / (height / width) - 1) > 0.01:
        message += (
            " to cover the frame and centre-cropped, because the aspect ratios differ; check "
            "that it lines up with the frames"
        )
    else:
        message += " (same aspect ratio, nothing cropped)"
    warnings.warn(message, UserWarning, stacklevel=3)
    return resize_to_cover(plate, height, width).clamp(0, 1)


def cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale to cover (height, width) keeping the aspect ratio, then centre-crop.

    The OpenCV twin of :func:`mattingkit.core.matting.resize_to_cover`, for background images and
    the background video's frames (once a frame, where OpenCV is several times faster).
    """
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(resized[top : top + height, left : left + width])


@dataclass
class Background:
    """The target background, resolved once: ``kind`` is color|image|video|blur|transparent."""

    kind: str
    value: Any = None


def resolve_background(
    background: Any, transparent_ok: bool, height: int, width: int, *, video_ok: bool = True
) -> Background:
    """Check the background before any work; load an image background at the frame size.

    ``None`` means the format's default: transparent where it can be stored, else green.
    """
    if background is None:
        return Background("transparent") if transparent_ok else Background("color", GREEN_SCREEN)
    if isinstance(background, str) and background.lower() in ("transparent", "none", "rgba"):
        if not transparent_ok:
            raise ValueError(
                "this output cannot store transparency (H.264 video, JPEG): write PNG (for a "
                "video, an output without a suffix) or give a background colour or image"
            )
        return Background("transparent")
    if isinstance(background, str) and background.lower() == "blur":
        return Background("blur")
    if isinstance(background, str) and background.lower() == "green":
        return Background("color", GREEN_SCREEN)
    if isinstance(background, (str, os.PathLike)):
        path = Path(background)
        if path.is_file():
            from mattingkit.apps.video import _is_video_path, probe_video

            if _is_video_path(path):
                if not video_ok:
                    raise ValueError(f"a video background ({path}) needs a video source")
                probe_video(path)  # fail now, not half-way through
                return Background("video", path)
            image = _image_tensor(path)
        elif isinstance(background, str) and looks_like_colour(background):
            return Background("color", parse_colour(background))
        else:
            raise FileNotFoundError(f"background not found: {background}")
    elif isinstance(background, (tuple, list)) and len(background) == 3:
        return Background("color", parse_colour(background))
    else:
        image = _image_tensor(background)
    array = image[0].permute(1, 2, 0).numpy()
    covered = cover(np.ascontiguousarray(array), height, width)
    return Background("image", torch.from_numpy(covered).permute(2, 0, 1)[None])


def parse_colour(value: Any) -> tuple[float, float, float]:
    """A colour name, ``#rrggbb``, ``"r,g,b"`` (0-1 or 0-255) or a 3-sequence -> RGB in [0, 1]."""
    import matplotlib.colors

    if isinstance(value, str) and value.strip().lower() == "green":
        return GREEN_SCREEN
    if isinstance(value, str) and "," in value:
        try:
            value = [float(v) for v in value.split(",")]
        except ValueError:
            raise ValueError(f"{value!r} is not a colour: write r,g,b with numbers") from None
    if isinstance(value, (tuple, list)):
        if len(value) != 3:
            raise ValueError(f"a colour needs 3 values (R, G, B), got {value}")
        numbers = [float(v) for v in value]
        if max(numbers) > 1:  # 0-255 values
            numbers = [v / 255 for v in numbers]
        if min(numbers) < 0 or max(numbers) > 1:
            raise ValueError(f"colour values must be in 0-1 or 0-255, got {list(value)}")
        return (numbers[0], numbers[1], numbers[2])
    try:
        return tuple(float(c) for c in matplotlib.colors.to_rgb(value))  # type: ignore[return-value]
    except ValueError:
        raise ValueError(
            f"{value!r} is not a colour name (green, white), #rrggbb or 'r,g,b', nor an image "
            "file or 'blur' (the video pipeline also takes a video file or 'transparent')"
        ) from None


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) or (H, W) floats in [0, 1] -> contiguous (H, W, C) or (H, W) uint8 numpy.

    Rounds like an 8-bit image file; in-place steps and one final copy keep it cheap.
    """
    y = x.float().mul(255).round_().clamp_(0, 255).to(torch.uint8)
    if y.ndim == 3:
        y = y.permute(1, 2, 0)
    return y.contiguous().cpu().numpy()


def output_array(kind: str, result: Any, background: Background, extra: Any) -> np.ndarray:
    """One output frame as uint8 H×W×3, H×W×4 (transparent composite) or H×W (mattes)."""
    pha, fgr = result.pha[:1], result.fgr[:1]
    if kind == "composite":
        if background.kind == "transparent":  # RGBA cut-out, black where alpha is 0
            image = torch.cat([fgr * (pha > 0), pha], dim=1)
        elif background.kind == "blur":
            image = matting.composite_on_blurred_plate(fgr, pha, result.bgr[:1].to(fgr))
        else:
            if background.kind == "color":
                new = torch.tensor(background.value, dtype=fgr.dtype, device=fgr.device)
                new = new.view(1, 3, 1, 1)
            else:  # an image or a video frame, already at the frame size
                new = extra.to(fgr)
            # The matting equation a*F + (1 - a)*B, written B + a*(F - B): half the passes
            # over the frame (this runs between model calls, so it counts in the frame rate).
            image = torch.addcmul(new, pha, fgr - new)
        return to_uint8(image[0])
    if kind == "fgr":
        return to_uint8(fgr[0])
    return to_uint8(getattr(result, kind)[0, 0])  # pha, err, ref: grey
