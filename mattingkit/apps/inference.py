"""One object for inference: load a model once, then matte frames of any size and type.

:class:`Matter` wraps what the earlier chapters built: :func:`~mattingkit.weights.pretrained.load_pretrained`
(registry names, files, the offline fallback), :func:`~mattingkit.core.paper.scaled_settings`
(the paper's HD/4K settings, scaled to the frame) and the compositing functions of :mod:`mattingkit.core.matting`. It adds
the parts that make a model pleasant to *use*:

* inputs in every form people have at hand (numpy arrays of any bit depth, grey or RGBA
  images, PIL images, file paths, tensors), checked with messages that name the problem;
* the speed tricks, chosen per device: channels-last memory layout and
  ``torch.inference_mode`` everywhere; on CUDA also fp16 autocast, pinned memory and
  non-blocking copies; optionally ``torch.compile`` or TorchScript;
* optional background alignment for handheld footage (:mod:`mattingkit.apps.align`);
* a :class:`MatteResult` that composites onto a colour, an image or the blurred plate, and
  turns any output into an 8-bit image for saving or plotting.

Example::

    from mattingkit import Matter

    matter = Matter()                      # the shipped model (or Matter("resnet50") online)
    result = matter("frame.jpg", "plate.jpg")
    result.image("composite")              # H x W x 3 uint8 on the official green
    result.composite("blur")               # (1, 3, H, W) "portrait mode"

Precision: ``"auto"`` means fp16 autocast on CUDA (weights stay fp32, convolutions run in
half precision); on a CPU with native bfloat16 instructions (AVX-512 BF16 or AMX, as
``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` reports) it means a bfloat16 copy of the
model, and fp32 everywhere else. bfloat16 halves the memory traffic of every layer, which is
what limits this model on a CPU: measured on this project's 2-core AVX-512 BF16 machine at HD,
ResNet-50 ran 1.4x and MobileNetV2 1.2x faster than channels-last fp32, with alpha within
1e-3 (mean absolute) of fp32 (``tests/test_inference.py`` holds it to 2e-3). fp16 on a CPU is
refused with a ``ValueError``: fp16 autocast took 1.72 s against 0.44 s in fp32 on the
540x960 portrait. ``precision="fp32"`` gives results equal to the plain model.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mattingkit.apps.compositing import GREEN_SCREEN, parse_colour
from mattingkit.core import matting
from mattingkit.core.model import BUILD_SETTINGS, PER_CALL_SETTINGS
from mattingkit.core.paper import RESOLUTIONS, capped_settings, scaled_settings
from mattingkit.core.refiner import REFINE_MODES
from mattingkit.speed.folding import fold_batchnorms, has_foldable_batchnorm
from mattingkit.speed.windows import accelerate, is_accelerated
from mattingkit.weights.names import is_shipped
from mattingkit.weights.pretrained import OfflineFallbackWarning, infer_backbone, load_pretrained

__all__ = ["GREEN_SCREEN", "PRESETS", "MatteResult", "Matter", "to_tensor"]

ImageLike = Union[np.ndarray, torch.Tensor, str, os.PathLike, Any]  # Any: a PIL image


#: The paper's settings for HD (1/4, 80,000 px) and 4K (1/8, 320,000 px) frames, fixed
#: whatever the frame size. "auto" scales them with the frame (:func:`mattingkit.core.paper.scaled_settings`).
PRESETS: dict[str, dict[str, float]] = {name: r.settings() for name, r in RESOLUTIONS.items()}

# A float input may overshoot [0, 1] by this much (rounding); it is clamped, not refused.
_RANGE_SLACK = 1e-4


# --------------------------------------------------------------------------------------
# Input normalisation
# --------------------------------------------------------------------------------------
def _is_pil_image(image: object) -> bool:
    return type(image).__module__.startswith("PIL.") and hasattr(image, "mode")


def _pil_to_array(image: Any) -> np.ndarray:
    """PIL keeps 16-bit grey as mode I;16 and palettes as P: turn both into plain arrays."""
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return np.asarray(image)
    if image.mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)
    if image.mode in ("I", "F"):
        raise TypeError(
            f"PIL image mode {image.mode!r} (32-bit integer/float) is ambiguous; convert it "
            "to 'RGB' or pass a float numpy array in [0, 1]"
        )
    return np.asarray(image.convert("RGBA" if "A" in image.mode else "RGB"))


def _array_to_tensor(array: np.ndarray, name: str) -> torch.Tensor:
    """(H, W), (H, W, C) or (B, H, W, C) numpy -> (B, C, H, W) float32 tensor, not yet range-checked."""
    if array.ndim == 2:
        array = array[None, :, :, None]
    elif array.ndim == 3:
        array = array[None]
    elif array.ndim != 4:
        raise ValueError(
            f"{name} must be an H x W x C image (or H x W grey, or B x H x W x C), got a "
            f"numpy array of shape {array.shape}"
        )
    if array.dtype == np.uint8:
        scale = 255.0
    elif array.dtype == np.uint16:
        scale = 65535.0
    elif np.issubdtype(array.dtype, np.floating):
        scale = 1.0
    else:
        raise TypeError(
            f"{name} has pixel type {array.dtype}; use uint8 (0-255), uint16 (0-65535) or "
            "float in [0, 1]"
        )
    tensor = torch.from_numpy(np.ascontiguousarray(array).astype(np.float32, copy=False))
    return tensor.permute(0, 3, 1, 2) / scale if scale != 1.0 else tensor.permute(0, 3, 1, 2)


def _tensor_to_batch(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """(C, H, W) or (B, C, H, W) tensor -> (B, C, H, W) float tensor, not yet range-checked."""
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 4:
        raise ValueError(
            f"{name} must be a (B, 3, H, W) or (3, H, W) tensor, got shape {list(tensor.shape)}"
        )
    if tensor.dtype == torch.uint8:
        return tensor.float() / 255.0
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0, 1] (or uint8), got {tensor.dtype}")
    return tensor.float()


def to_tensor(image: ImageLike, *, name: str = "image") -> torch.Tensor:
    """Any image-like input as a float32 RGB batch ``(B, 3, H, W)`` in [0, 1].

    Accepts numpy arrays ``H x W x 3`` (uint8, uint16 or float in [0, 1]), grey ``H x W``
    or ``H x W x 1`` (repeated to RGB), RGBA ``H x W x 4`` (the alpha channel is dropped:
    the colours are used as stored, as :func:`mattingkit.io.read_image` does), batches
    ``B x H x W x C``; PIL images; file paths (read with :func:`mattingkit.io.read_image`);
    and tensors ``(3, H, W)`` or ``(B, 3, H, W)``, float in [0, 1] or uint8. A single image
    comes back with B = 1. ``name`` is used in error messages (``"src"``, ``"bgr"``).

    Raises:
        TypeError: an unsupported type or pixel type.
        ValueError: wrong channel count or shape, an empty image, NaN/inf, or floats
            outside [0, 1]; the message names the problem and ``name``.
    """
    if isinstance(image, torch.Tensor):
        batch = _tensor_to_batch(image.detach(), name)
        layout = "channels first (B, C, H, W)"
    elif isinstance(image, np.ndarray):
        batch = _array_to_tensor(image, name)
        layout = "channels last (H, W, C)"
    elif isinstance(image, (str, os.PathLike)):
        from mattingkit.io import read_image

        batch = read_image(Path(image)).unsqueeze(0)
        layout = ""
    elif _is_pil_image(image):
        batch = _array_to_tensor(_pil_to_array(image), name)
        layout = "channels last (H, W, C)"
    else:
        raise TypeError(
            f"{name} must be a numpy array, torch tensor, PIL image or file path, got "
            f"{type(image).__name__}"
        )
    channels = batch.size(1)
    if channels == 1:
        batch = batch.expand(-1, 3, -1, -1)
    elif channels == 4:
        batch = batch[:, :3]
    elif channels != 3:
        hint = ""
        if isinstance(image, torch.Tensor) and image.shape[-1] in (1, 3, 4):
            hint = "; for an H x W x C tensor use tensor.permute(2, 0, 1)"
        raise ValueError(
            f"{name} has {channels} channels ({layout}, shape {list(image.shape)}); expected "
            f"3 (RGB), 1 (grey) or 4 (RGBA){hint}"
        )
    if batch.numel() == 0:
        raise ValueError(f"{name} is empty: shape {list(batch.shape)} (B, C, H, W)")
    low, high = _check_values(batch, name)
    # Clamp (a copy) only when rounding overshot; a video frame pays for one pass, not three.
    return batch.clamp(0.0, 1.0) if low < 0.0 or high > 1.0 else batch


def _check_values(batch: torch.Tensor, name: str) -> tuple[float, float]:
    """Refuse NaN, infinities and values far outside [0, 1]; return (min, max).

    One ``aminmax`` pass finds all three: a NaN anywhere makes both results NaN.
    """
    low, high = (float(v) for v in torch.aminmax(batch))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if low < -_RANGE_SLACK or high > 1 + _RANGE_SLACK:
        raise ValueError(
            f"{name} values must be in [0, 1] for float input, got min {low:.4g} and "
            f"max {high:.4g}; pass 8-bit images as uint8 (or divide by 255)"
        )
    return low, high


# --------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------
@dataclass
class MatteResult:
    """What :class:`Matter` returns: full-resolution outputs, on the Matter's device.

    Attributes:
        pha: (B, 1, H, W) alpha in [0, 1].
        fgr: (B, 3, H, W) foreground colours (frame + predicted residual, clamped).
        err: (B, 1, H, W) the base network's error map, bilinearly upsampled.
        ref: (B, 1, H, W) 1 where a 4x4 patch was refined (nearest upsampled), else 0.
            ``err`` and ``ref`` are upsampled on first use: a video that writes only the
            composite never pays for them.
        src, bgr: (B, 3, H, W) the inputs as the model saw them (bgr after alignment).
        seconds: model time of this call (transfers excluded, GPU synchronised).
        settings: the refine settings used (:meth:`Matter.settings_for`).
        aligned: per image, whether background alignment succeeded (None: not asked).
    """

    pha: torch.Tensor
    fgr: torch.Tensor
    err_small: torch.Tensor  # the model's own-resolution maps, upsampled on demand
    ref_small: torch.Tensor
    src: torch.Tensor
    bgr: torch.Tensor
    seconds: float
    settings: dict[str, Any]
    aligned: list[bool] | None = None

    @functools.cached_property
    def err(self) -> torch.Tensor:
        size = self.pha.shape[-2:]
        if self.err_small.shape[-2:] == size:
            return self.err_small.clamp(0, 1)
        err = F.interpolate(self.err_small, size, mode="bilinear", align_corners=False)
        return err.clamp(0, 1)

    @functools.cached_property
    def ref(self) -> torch.Tensor:
        height, width = self.pha.shape[-2:]
        if self.ref_small.shape[-2:] == (height, width):
            return self.ref_small
        ref = F.interpolate(self.ref_small, scale_factor=4.0, mode="nearest")
        return ref[:, :, :height, :width]

    def __len__(self) -> int:
        return self.pha.size(0)

    def composite(self, background: Any = "green", *, sigma: float = 8.0) -> torch.Tensor:
        """The subject over a new background: (B, 3, H, W) in [0, 1]. Chapter 01.

        ``background`` is a colour (a name such as ``"white"``, ``"green"`` = the official
        green screen :data:`GREEN_SCREEN`, a hex string ``"#00ff00"``, or ``(r, g, b)`` in
        [0, 1]), an image (array, tensor, PIL image or path: scaled to cover the frame if
        its size differs), or ``"blur"``: the plate blurred by a Gaussian of ``sigma`` px.
        """
        if isinstance(background, str) and background.strip().lower() == "blur":
            return matting.composite_on_blurred_plate(self.fgr, self.pha, self.bgr, sigma)
        if isinstance(background, str) and not _looks_like_file(background):
            return matting.composite_on_color(self.fgr, self.pha, parse_colour(background))
        if isinstance(background, (tuple, list)):
            return matting.composite_on_color(self.fgr, self.pha, background)
        image = to_tensor(background, name="background").to(self.fgr.device)
        if image.size(0) not in (1, self.fgr.size(0)):
            raise ValueError(
                f"background is a batch of {image.size(0)} images but the result holds "
                f"{self.fgr.size(0)} frames; give one background or one per frame"
            )
        return matting.composite_on_image(self.fgr, self.pha, image)

    def image(
        self, name: str = "composite", index: int = 0, *, background: Any = "green"
    ) -> np.ndarray:
        """One output as an 8-bit numpy image, ready for ``write_image`` or ``imshow``.

        ``name`` is ``"composite"`` (over ``background``), ``"fgr"`` (H x W x 3) or
        ``"pha"``, ``"err"``, ``"ref"`` (H x W).
        """
        if name == "composite":
            tensor = self.composite(background)
        elif name in ("pha", "fgr", "err", "ref"):
            tensor = getattr(self, name)  # err / ref are upsampled only when asked for
        else:
            hint = " (the alpha matte is 'pha')" if name == "alpha" else ""
            raise ValueError(
                f"unknown output {name!r}; choose composite, pha, fgr, err or ref{hint}"
            )
        picked = tensor[self._check_index(index)]
        array = _to_uint8(picked.permute(1, 2, 0))
        return array[:, :, 0] if array.shape[2] == 1 else array

    def rgba(self, index: int = 0) -> np.ndarray:
        """The cut-out subject as H x W x 4 uint8: foreground colours (black where alpha is 0) + alpha."""
        i = self._check_index(index)
        rgba = _to_uint8(torch.cat([self.fgr[i], self.pha[i]]).permute(1, 2, 0))
        # Black wherever the *stored* alpha is 0 (an alpha below 0.5/255 rounds to 0 too).
        rgba[:, :, :3][rgba[:, :, 3] == 0] = 0
        return rgba

    def _check_index(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a result of {len(self)} frames")
        return index


def _to_uint8(hwc: torch.Tensor) -> np.ndarray:
    return (hwc.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _looks_like_file(text: str) -> bool:
    """An existing file, or a name with an image suffix (so a typo says "not found")."""
    path = Path(text).expanduser()
    return path.is_file() or path.suffix.lower() in _IMAGE_SUFFIXES


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr"}


# --------------------------------------------------------------------------------------
# The Matter
# --------------------------------------------------------------------------------------
def _resolve_device(device: str | torch.device) -> torch.device:
    if isinstance(device, str) and device == "auto":
        from mattingkit.runtime import pick_device

        return pick_device(verbose=False)
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {device!r} is not a device torch knows ({error})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but no CUDA GPU is available")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} was asked for but Apple MPS is not available")
    return resolved


_PRECISIONS = {
    "fp32": "fp32",
    "float32": "fp32",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "bf16": "bf16",
    "bfloat16": "bf16",
}


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bfloat16 convolutions in hardware (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be 'auto', 'fp32', 'fp16' or 'bf16', got {precision!r}")
    resolved = _PRECISIONS[precision]
    if resolved == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision 'fp16' needs a CUDA GPU (device is {device.type}): half-precision "
            "convolutions on a CPU are slower than fp32. Use precision='fp32' (or 'auto')."
        )
    return resolved


def _check_options(options: dict[str, Any]) -> None:
    known = tuple(PER_CALL_SETTINGS) + BUILD_SETTINGS
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"unknown model option(s) {unknown}; Matter accepts {sorted(known)}")
    if "refine_mode" in options and options["refine_mode"] not in REFINE_MODES:
        raise ValueError(
            f"refine_mode must be one of {REFINE_MODES}, got {options['refine_mode']!r}"
        )
    scale = options.get("backbone_scale")
    if scale is not None and not 0 < float(scale) <= 0.5:
        raise ValueError(f"backbone_scale must be in (0, 1/2], got {scale}")
    pixels = options.get("refine_sample_pixels")
    if pixels is not None and int(pixels) < 16:
        raise ValueError(f"refine_sample_pixels must be at least 16 (one patch), got {pixels}")


class Matter:
    """Load a matting model once, then call it on frame/plate pairs. Chapters 03-04.

    Args:
        weights: ``None`` for the shipped model (or, with ``backbone``, that backbone's
            official weights), a registry name or alias (``"resnet50"``, ``"mobilenetv2"``,
            ``"torchscript_resnet50_fp32"``, ...; offline, the shipped model is used instead
            with a warning and ``used_fallback`` is True), a file (state_dict or TorchScript;
            the backbone is read from it), or an ``nn.Module`` (a ``MattingRefine``; it is
            moved to ``device`` and put in eval mode in place).
        backbone: checked against the weights (inferred when None).
        preset: ``"hd"`` (backbone_scale 1/4, 80,000 refined pixels), ``"4k"`` (1/8,
            320,000), fixed whatever the frame size, or ``"auto"``, per call: backbone scale
            1/4 up to 2048 x 2048 and 1/8 above (the official Colab's rule), and the paper's
            share of the frame refined, 3.86 %, at least 4,096 pixels
            (:func:`mattingkit.core.paper.scaled_settings`): exactly the paper's settings at
            1920 x 1080 and 3840 x 2160, 11,856 pixels at 640 x 480. For mattingkit's shipped
            model ``"auto"`` also keeps the base network's input within the sizes it was
            trained on (:func:`mattingkit.core.paper.capped_settings`: at most 288 px on the
            short side, so HD, 4K and webcam frames keep the paper's settings).
        device: ``"auto"`` (CUDA, then MPS, then CPU) or any torch device.
        precision: ``"auto"`` (fp16 autocast on CUDA, bfloat16 on a CPU with native
            bfloat16, fp32 elsewhere), ``"fp32"``, ``"fp16"`` (CUDA only) or ``"bf16"``.
        compile: False, True / ``"compile"`` (``torch.compile``; the first calls are slow)
            or ``"script"`` (``torch.jit.script``).
        align: align the plate to each frame first (handheld footage; see
            :func:`mattingkit.apps.align.align_plate`).
        allow_fallback: offline, use the shipped model instead of named official weights
            (with a warning); False raises :class:`mattingkit.weights.download.DownloadError`.
        fold_batchnorm: on a CPU, run a copy of the model with every BatchNorm of the base
            network folded into the convolution before it
            (:func:`mattingkit.speed.folding.fold_batchnorms`): the same function, equal within
            float rounding. The refiner always runs with its window path and its BatchNorms
            folded (:func:`mattingkit.speed.windows.accelerate`).
        **model_options: any ``MattingRefine`` option. ``backbone_scale``, ``refine_mode``,
            ``refine_sample_pixels``, ``refine_threshold`` and ``refine_prevent_oversampling``
            override the preset; ``refine_kernel_size`` and the crop/replace methods are
            used when the model is built.
    """

    def __init__(
        self,
        weights: str | os.PathLike | nn.Module | None = None,
        *,
        backbone: str | None = None,
        preset: str = "auto",
        device: str | torch.device = "auto",
        precision: str = "auto",
        compile: bool | str = False,
        align: bool = False,
        allow_fallback: bool = True,
        fold_batchnorm: bool = True,
        **model_options: Any,
    ) -> None:
        if preset not in ("auto", *PRESETS):
            raise ValueError(f"preset must be 'auto', 'hd' or '4k', got {preset!r}")
        _check_options(model_options)
        self.preset = preset
        self.align = bool(align)
        self.device = _resolve_device(device)
        self.options = {k: v for k, v in model_options.items() if k in PER_CALL_SETTINGS}
        build_options = {k: v for k, v in model_options.items() if k in BUILD_SETTINGS}
        self.used_fallback = False
        self.model = self._load(weights, backbone, build_options, allow_fallback)
        #: mattingkit's shipped model (named, or the offline fallback): "auto" caps its base
        #: network's input at the sizes it was trained on.
        self.shipped = self.used_fallback or (
            not isinstance(weights, nn.Module)
            and is_shipped(weights if weights is not None else backbone or "mattingkit")
        )
        self.scripted = isinstance(self.model, torch.jit.ScriptModule)
        self.backbone = infer_backbone(self.model.state_dict())
        self.has_refiner = any(k.startswith("refiner.") for k in self.model.state_dict())
        if not self.has_refiner and self.options:
            raise TypeError(
                f"this model has no refiner (a MattingBase); it takes no {sorted(self.options)}"
            )
        # The model's own settings are the starting point (a module may come configured);
        # reading them once keeps two Matters that share a module from leaking into each other.
        self._base_settings = {
            name: getattr(self.model, name) for name in PER_CALL_SETTINGS if self.has_refiner
        }
        self._half_weights = any(p.dtype == torch.float16 for p in self.model.parameters())
        if self._half_weights and self.device.type != "cuda":
            raise ValueError(
                f"{self.weights_name} has fp16 weights (a half-precision TorchScript export), "
                "which need a CUDA GPU; use the fp32 file on this device"
            )
        self.precision = (
            "fp16" if self._half_weights else _resolve_precision(precision, self.device)
        )
        bf16_weights = any(p.dtype == torch.bfloat16 for p in self.model.parameters())
        if bf16_weights:  # e.g. another Matter's model: it runs as it is
            self.precision = "bf16"
        #: The weights as loaded (float32): what :mod:`mattingkit.apps.export` writes.
        self.weights_module = self.model
        #: How many BatchNorm layers of the base network were folded into convolutions.
        self.folded_batchnorms = 0
        if not self.scripted and self.has_refiner and not is_accelerated(self.model):
            # The refiner's window path (mattingkit.speed.windows), on a copy to run.
            if self.model is self.weights_module:
                self.model = copy.deepcopy(self.model).eval()
            accelerate(self.model)
        if (
            fold_batchnorm
            and self.device.type == "cpu"
            and not self.scripted
            and has_foldable_batchnorm(self.model)
        ):
            # BatchNorm folded into the convolutions (one pass over the activations fewer per
            # layer), on a copy: the weights as loaded (or the caller's module) stay.
            if self.model is self.weights_module:
                self.model = copy.deepcopy(self.model).eval()
            self.folded_batchnorms = fold_batchnorms(self.model)
        if self.precision == "bf16" and self.device.type == "cpu" and not bf16_weights:
            # A bfloat16 copy to run; the float32 weights (or the caller's module) stay.
            if self.model is self.weights_module:
                self.model = copy.deepcopy(self.model)
            self.model = self.model.to(torch.bfloat16)
        self.model.eval().to(self.device)
        if self.device.type in ("cpu", "cuda"):
            # Channels-last lets oneDNN / cuDNN pick their fastest convolution kernels.
            self.model.to(memory_format=torch.channels_last)
        self.compile = self._compile_mode(compile)
        self._forward: Callable[..., Any] = self._build_forward()

    # --- loading ---------------------------------------------------------------------
    def _load(
        self,
        weights: Any,
        backbone: str | None,
        build_options: dict[str, Any],
        allow_fallback: bool,
    ) -> nn.Module:
        if isinstance(weights, nn.Module):
            if build_options:
                raise TypeError(
                    f"{sorted(build_options)} shape the network and cannot be changed on an "
                    "existing model; build the MattingRefine with them instead"
                )
            found = infer_backbone(weights.state_dict())
            if backbone is not None and backbone != found:
                raise ValueError(f"the model is a {found} model but backbone={backbone!r}")
            self.weights_name = f"{type(weights).__name__}({found}) given as a module"
            return weights
        if weights is None:
            weights = backbone or "mattingkit"
        if not isinstance(weights, (str, os.PathLike)):
            raise TypeError(
                "weights must be None, a registry name, a file path or an nn.Module, got "
                f"{type(weights).__name__}"
            )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load_pretrained(
                weights,
                backbone=backbone,
                device="cpu",
                allow_fallback=allow_fallback,
                **build_options,
            )
        for warning in caught:  # pass them on to the caller, and note a fallback
            if issubclass(warning.category, OfflineFallbackWarning):
                self.used_fallback = True
            warnings.warn(warning.message, warning.category, stacklevel=3)
        name = str(weights)
        self.weights_name = (
            f"mattingkit_mobilenetv2_fp16 (offline fallback for {name})"
            if self.used_fallback
            else name
        )
        return model

    def _compile_mode(self, compile: bool | str) -> str | None:
        mode = {False: None, None: None, True: "compile"}.get(compile, compile)  # type: ignore[call-overload]
        if mode not in (None, "compile", "script"):
            raise ValueError(f"compile must be False, True, 'compile' or 'script', got {compile!r}")
        if mode is not None and self.scripted:
            raise ValueError("the model is already TorchScript; leave compile=False")
        return mode

    def _build_forward(self) -> Callable[..., Any]:
        if self.compile == "script":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated
                self.model = torch.jit.script(self.model)
            self.scripted = True
            return self.model
        if self.compile == "compile":
            return torch.compile(self.model, dynamic=True)
        return self.model

    # --- settings --------------------------------------------------------------------
    def settings_for(self, height: int, width: int) -> dict[str, Any]:
        """The refine settings a height x width frame runs with.

        The model's own settings, overridden by the preset (``"auto"``: by frame size), then
        by the options given to the Matter. Empty for a model without refiner.
        """
        if not self.has_refiner:
            return {}
        settings = dict(self._base_settings)
        if self.preset == "auto":
            rule = capped_settings if self.shipped else scaled_settings
            settings.update(rule(height, width))
        else:
            settings.update(PRESETS[self.preset])
        settings.update(self.options)
        return settings

    def _apply(self, settings: dict[str, Any]) -> None:
        for name, value in settings.items():
            setattr(self.model, name, PER_CALL_SETTINGS[name](value))

    # --- running ---------------------------------------------------------------------
    def __call__(self, src: ImageLike, bgr: ImageLike) -> MatteResult:
        """Matte ``src`` against its clean plate ``bgr``; see :func:`to_tensor` for input types."""
        src_t, bgr_t = to_tensor(src, name="src"), to_tensor(bgr, name="bgr")
        if src_t.shape[-2:] != bgr_t.shape[-2:]:
            raise ValueError(
                f"src is {src_t.size(2)}x{src_t.size(3)} but bgr is {bgr_t.size(2)}x"
                f"{bgr_t.size(3)} (HxW); the plate must be the same camera view at the same size"
            )
        if bgr_t.size(0) != src_t.size(0):
            if bgr_t.size(0) != 1:
                raise ValueError(
                    f"src is a batch of {src_t.size(0)} but bgr a batch of {bgr_t.size(0)}; "
                    "give one plate, or one per frame"
                )
            bgr_t = bgr_t.expand(src_t.size(0), -1, -1, -1)
        aligned = None
        if self.align:
            from mattingkit.apps.align import align_plate

            plates, aligned = [], []
            for frame, plate in zip(src_t, bgr_t):
                warped, ok = align_plate(plate.cpu(), frame.cpu())
                plates.append(warped)
                aligned.append(ok)
            bgr_t = torch.stack(plates)
        height, width = src_t.shape[-2:]
        settings = self.settings_for(height, width)
        self._apply(settings)
        src_d, bgr_d = self._to_device(src_t), self._to_device(bgr_t)

        start = time.perf_counter()
        with torch.inference_mode(), self._autocast():
            out = self._forward(src_d, bgr_d)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start

        if len(out) == 6:  # MattingRefine: pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm
            err_small, ref_small = out[4], out[5]
        else:  # MattingBase: pha, fgr, err, hid, already at full resolution; nothing refined
            err_small, ref_small = out[2], torch.zeros_like(out[0])
        return MatteResult(
            pha=_plain(out[0]),
            fgr=_plain(out[1]),
            err_small=_plain(err_small),
            ref_small=_plain(ref_small),
            src=src_t.to(self.device),  # the inputs as given (bgr after alignment)
            bgr=bgr_t.to(self.device),
            seconds=seconds,
            settings=settings,
            aligned=aligned,
        )

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda" and x.device.type == "cpu":
            x = x.pin_memory().to(self.device, non_blocking=True)
        else:
            x = x.to(self.device)
        if self._half_weights:
            x = x.half()
        elif self.precision == "bf16" and self.device.type == "cpu":
            x = x.to(torch.bfloat16)
        if self.device.type in ("cpu", "cuda"):
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp16" and not self._half_weights:
            return torch.autocast(self.device.type, dtype=torch.float16)
        if self.precision == "bf16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def __repr__(self) -> str:
        return (
            f"Matter(weights={self.weights_name!r}, backbone={self.backbone!r}, "
            f"preset={self.preset!r}, device={str(self.device)!r}, precision={self.precision!r}, "
            f"compile={self.compile!r}, align={self.align}, options={self.options})"
        )


def _plain(x: torch.Tensor) -> torch.Tensor:
    """An ordinary float32 tensor in the standard layout (not an inference-mode tensor)."""
    return x.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
