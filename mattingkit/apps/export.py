"""Export a matting model to TorchScript or ONNX, and check the file against PyTorch. Chapter 04.

Deployment runtimes do not run Python: C++ loads TorchScript (``torch::jit::load``), and
onnxruntime / TensorRT load ONNX. The official repository ships both; this module makes the
same files from any mattingkit model (the shipped one, official weights, your own):

* :func:`export_torchscript` scripts ``MattingRefine`` in fp32 or fp16. The refine settings
  stay settable on the loaded file (``model.refine_sample_pixels = 320_000``; in C++
  ``model.setattr(...)``), as in the official export.
* :func:`export_onnx` traces the model with the ONNX-friendly implementation choices
  (``roi_align`` crops, ``scatter_element`` replacement; every crop/replace method gives the
  same result). ``refine_mode="thresholding"`` avoids ONNX ``TopK``, which TensorRT rejects
  (official issue #131).
* :func:`validate_export` runs the exported file (``torch.jit.load`` / onnxruntime) and the
  PyTorch model on the same random frame/plate pair and reports the differences.

Notes on ONNX with torch >= 2.9: ``torch.onnx.export`` defaults to the new ``torch.export``
exporter, which needs the extra ``onnxscript`` package and has to capture a data-dependent
number of refined patches. mattingkit uses the TorchScript-based exporter
(``dynamo=False``), still shipped and working in torch 2.14 (it prints a deprecation
warning, silenced here) and the one the official ``export_onnx.py`` used. Tracing fixes two things at export time: the padding to a multiple
of 4 (so feed ONNX frames whose height and width are multiples of 4, as the official
export required) and, in sampling mode, the number of refined patches is clamped to the
export frame's patch count (so export at a size with at least ``refine_sample_pixels``
pixels; :func:`export_onnx` checks this). Batch size, height and width stay dynamic.
onnxruntime and onnx are optional: ``pip install "mattingkit[export]"``.
"""

from __future__ import annotations

import io
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from mattingkit.core.model import PER_CALL_SETTINGS, MattingBase, MattingRefine
from mattingkit.io import atomic_write
from mattingkit.weights.pretrained import infer_backbone

__all__ = ["ExportCheck", "export_onnx", "export_torchscript", "random_pair", "validate_export"]

PathLike = Union[str, os.PathLike]
REFINE_OUTPUTS = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm")
BASE_OUTPUTS = ("pha", "fgr", "err", "hid")
OPSETS = range(12, 18)


# --------------------------------------------------------------------------------------
# A clean float32 copy of any model
# --------------------------------------------------------------------------------------
def _unwrap(model: Any) -> nn.Module:
    from mattingkit.apps.inference import Matter

    if isinstance(model, Matter):
        return model.weights_module  # the float32 weights, not a bfloat16 copy
    if isinstance(model, nn.Module):
        return model
    raise TypeError(
        f"expected a Matter, a MattingRefine or a TorchScript model, got {type(model).__name__}"
    )


def rebuild(model: Any, **options: Any) -> nn.Module:
    """A fresh float32 CPU ``MattingRefine`` (or ``MattingBase``) with ``model``'s weights.

    Works for eager, channels-last, compiled-for-a-GPU and TorchScript models alike; the
    original is never modified. The refine settings are copied from ``model`` unless given
    in ``options`` (any ``MattingRefine`` argument).
    """
    source = _unwrap(model)
    state = {k: v.detach().float().cpu() for k, v in source.state_dict().items()}
    backbone = infer_backbone(state)
    if not any(k.startswith("refiner.") for k in state):
        if options:
            raise TypeError(
                f"a MattingBase (no refiner) takes no refine options; got {sorted(options)}"
            )
        fresh: nn.Module = MattingBase(backbone)
    else:
        settings = _settings_of(source)
        settings["refine_kernel_size"] = int(state["refiner.conv1.weight"].shape[-1])
        settings.update(options)
        fresh = MattingRefine(backbone, **settings)
    fresh.load_state_dict(state, strict=True)
    return fresh.eval().requires_grad_(False)


def _settings_of(module: Any) -> dict[str, Any]:
    """The refine settings a (possibly scripted) model carries; empty for a MattingBase."""
    return {name: getattr(module, name) for name in PER_CALL_SETTINGS if hasattr(module, name)}


def _write_bytes(data: bytes, path: PathLike, overwrite: bool) -> Path:
    path = Path(path)
    with atomic_write(path, "wb", overwrite=overwrite) as f:
        f.write(data)
    return path


# --------------------------------------------------------------------------------------
# TorchScript
# --------------------------------------------------------------------------------------
def export_torchscript(
    model: Any, path: PathLike, *, precision: str = "fp32", overwrite: bool = False, **settings: Any
) -> Path:
    """Script ``model`` and save it to ``path`` (atomically); returns the path. Chapter 04.

    Args:
        model: a :class:`~mattingkit.apps.inference.Matter`, ``MattingRefine`` or TorchScript model.
        precision: ``"fp32"`` or ``"fp16"`` (half-precision weights: run on a GPU with
            ``.half()`` inputs, like the official ``torchscript_*_fp16.pth``).
        overwrite: replace an existing file (otherwise ``FileExistsError``).
        **settings: refine settings stored as the file's defaults, e.g.
            ``backbone_scale=0.125, refine_sample_pixels=320_000``; they stay settable.

    The file loads with :func:`mattingkit.load_pretrained` or ``Matter(path)``.
    """
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be 'fp32' or 'fp16', got {precision!r}")
    unknown = sorted(set(settings) - set(PER_CALL_SETTINGS))
    if unknown:
        raise TypeError(f"unknown setting(s) {unknown}; settable: {sorted(PER_CALL_SETTINGS)}")
    if not overwrite and Path(path).exists():
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    fresh = rebuild(model, **settings)
    if precision == "fp16":
        fresh = fresh.half()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still works
        scripted = torch.jit.script(fresh)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
    return _write_bytes(buffer.getvalue(), path, overwrite)


# --------------------------------------------------------------------------------------
# ONNX
# --------------------------------------------------------------------------------------
def export_onnx(
    model: Any,
    path: PathLike,
    *,
    opset: int = 12,
    refine_mode: str = "sampling",
    refine_sample_pixels: int = 80_000,
    refine_threshold: float = 0.1,
    backbone_scale: float = 0.25,
    export_size: tuple[int, int] = (1080, 1920),
    overwrite: bool = False,
) -> Path:
    """Export ``model`` to ONNX at ``path`` (atomically); returns the path. Chapter 04.

    Args:
        model: a :class:`~mattingkit.apps.inference.Matter`, ``MattingRefine`` (or
            ``MattingBase``) or TorchScript model; it is copied, never modified.
        opset: ONNX opset, 12 (the official default) to 17.
        refine_mode: ``"sampling"`` (a fixed number of patches, uses ``TopK``),
            ``"thresholding"`` (patches with error above ``refine_threshold``; no ``TopK``,
            for TensorRT) or ``"full"``.
        refine_sample_pixels, refine_threshold, backbone_scale: fixed in the file. The
            defaults are the HD settings; use 320,000 and 0.125 for 4K.
        export_size: (height, width) of the example traced; multiples of 4, and at least
            ``refine_sample_pixels`` pixels in sampling mode (see the module notes).
        overwrite: replace an existing file (otherwise ``FileExistsError``).

    Inputs ``src``, ``bgr`` and all outputs have dynamic batch, height and width axes.
    """
    if opset not in OPSETS:
        raise ValueError(f"opset must be {OPSETS.start} to {OPSETS.stop - 1}, got {opset}")
    height, width = (int(v) for v in export_size)
    if height <= 0 or width <= 0 or height % 4 or width % 4:
        raise ValueError(f"export_size must be positive multiples of 4, got {export_size}")
    if not overwrite and Path(path).exists():
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "ONNX export needs the onnx package: pip install onnx (in a notebook, %pip install"
            ' onnx: Colab lacks it), or pip install "mattingkit[export]"'
        ) from None

    if any(k.startswith("refiner.") for k in _unwrap(model).state_dict()):
        if refine_mode == "sampling" and height * width < refine_sample_pixels:
            raise ValueError(
                f"export_size {height}x{width} has {height * width:,} pixels, fewer than "
                f"refine_sample_pixels={refine_sample_pixels:,}: tracing would fix the number "
                "of refined patches to what this small frame holds. Export at a larger size."
            )
        fresh = rebuild(
            model,
            refine_mode=refine_mode,
            refine_sample_pixels=int(refine_sample_pixels),
            refine_threshold=float(refine_threshold),
            backbone_scale=float(backbone_scale),
            refine_patch_crop_method="roi_align",
            refine_patch_replace_method="scatter_element",
        )
        outputs = REFINE_OUTPUTS
    else:
        fresh = rebuild(model)
        outputs = BASE_OUTPUTS
    src, bgr = random_pair(1, height, width, seed=0)
    axes = {name: {0: "batch", 2: "height", 3: "width"} for name in ("src", "bgr", *outputs)}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about shape checks; legacy-exporter notice
        torch.onnx.export(
            fresh,
            (src, bgr),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=["src", "bgr"],
            output_names=list(outputs),
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto)
    for key, value in {
        **_settings_of(fresh),
        "backbone": infer_backbone(fresh.state_dict()),
    }.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"mattingkit.{key}", str(value)
    return _write_bytes(proto.SerializeToString(), path, overwrite)


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------
def random_pair(
    batch: int, height: int, width: int, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random but matting-like frame/plate pair: a smooth random plate, and the frame =
    that plate with a few random soft-edged coloured blobs in front. Pure noise would give
    an error map with many near-ties, and then a few different patches get refined for
    rounding reasons alone; this pair has a clear subject."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, max(2, height // 16), max(2, width // 16), generator=g)
    plate = torch.nn.functional.interpolate(
        coarse, (height, width), mode="bilinear", align_corners=False
    )
    plate = (plate + 0.05 * torch.rand(batch, 3, height, width, generator=g)).clamp(0, 1)
    ys = torch.linspace(0, 1, height).view(1, 1, height, 1)
    xs = torch.linspace(0, 1, width).view(1, 1, 1, width)
    frame = plate.clone()
    for _ in range(3):
        cy, cx, r = (
            torch.rand(batch, 3, 1, 1, generator=g) * torch.tensor([1, 1, 0.3]).view(1, 3, 1, 1)
        ).split(1, 1)
        distance = ((ys - cy) ** 2 + (xs - cx) ** 2).sqrt()
        alpha = ((r + 0.1 - distance) / 0.05).clamp(0, 1)
        colour = torch.rand(batch, 3, 1, 1, generator=g)
        frame = alpha * colour + (1 - alpha) * frame
    return frame.contiguous(), plate.contiguous()


@dataclass
class ExportCheck:
    """Differences between an exported file and PyTorch on the same inputs."""

    path: Path
    kind: str  # "torchscript" or "onnx"
    size: tuple[int, int]
    max_abs: dict[str, float] = field(default_factory=dict)
    mean_abs: dict[str, float] = field(default_factory=dict)
    #: share of the values off by more than 0.05: a few pixels when fp16 rounding tips the
    #: choice of one 4x4 patch (a near tie in the error map), not a broken export
    far_share: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # time of one run of the exported file

    def worst(self, name: str = "pha") -> float:
        return self.max_abs[name]

    def __str__(self) -> str:
        rows = [f"{self.kind} {self.path.name} at {self.size[0]}x{self.size[1]}:"]
        rows += [
            f"  {k}: max {self.max_abs[k]:.2e}, mean {self.mean_abs[k]:.2e}" for k in self.max_abs
        ]
        return "\n".join(rows)


def validate_export(
    path: PathLike,
    model: Any,
    *,
    size: tuple[int, int] = (720, 1280),
    batch: int = 1,
    seed: int = 0,
) -> ExportCheck:
    """Run the exported file and ``model`` on :func:`random_pair` inputs; compare outputs.

    ``model`` is the PyTorch reference (a Matter, MattingRefine or TorchScript model); it is
    copied and given the file's refine settings (read from the ONNX metadata, or from the
    TorchScript file), so both run the same computation. The official ``--validate`` used
    720x1280 and accepted a maximum difference below 0.005.
    """
    path = Path(path)
    from mattingkit.weights.pretrained import detect_format

    kind = detect_format(path)
    src, bgr = random_pair(batch, *size, seed=seed)
    if kind == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            exported = torch.jit.load(str(path), map_location="cpu")
        half = any(p.dtype == torch.float16 for p in exported.parameters())
        settings = _settings_of(exported)
        start = time.perf_counter()
        with torch.inference_mode():
            out = exported(src.half(), bgr.half()) if half else exported(src, bgr)
        seconds = time.perf_counter() - start
        got = [t.float().numpy() for t in out]
    elif kind == "onnx":
        try:
            import onnx
            import onnxruntime
        except ImportError:
            raise ImportError(
                'validating ONNX needs onnx and onnxruntime: pip install "mattingkit[export]"'
            ) from None
        meta = {
            p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props
        }
        settings = {
            k: PER_CALL_SETTINGS[k](
                meta[f"mattingkit.{k}"] == "True"
                if PER_CALL_SETTINGS[k] is bool
                else meta[f"mattingkit.{k}"]
            )
            for k in PER_CALL_SETTINGS
            if f"mattingkit.{k}" in meta
        }
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        start = time.perf_counter()
        got = session.run(None, {"src": src.numpy(), "bgr": bgr.numpy()})
        seconds = time.perf_counter() - start
    else:
        raise ValueError(f"{path} is not a TorchScript or ONNX file ({kind})")
    reference = rebuild(model, **settings)
    with torch.inference_mode():
        expected = reference(src, bgr)
    names = REFINE_OUTPUTS if len(expected) == 6 else BASE_OUTPUTS
    check = ExportCheck(path=path, kind=kind, size=(int(size[0]), int(size[1])), seconds=seconds)
    for name, a, b in zip(names, got, expected):
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(
                f"{name}: the exported file gives shape {tuple(a.shape)}, PyTorch {tuple(b.shape)}"
            )
        difference = np.abs(a.astype(np.float64) - b.double().numpy())
        check.max_abs[name] = float(difference.max())
        check.mean_abs[name] = float(difference.mean())
        check.far_share[name] = float((difference > 0.05).mean())
    return check
