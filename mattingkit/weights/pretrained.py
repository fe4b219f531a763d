"""The official Background Matting V2 weights, and one safe way to load any weights file.

Chapter 03 loads a pretrained network with :func:`load_pretrained`; chapter 04 compares its
speed and size with the paper using the figures stored here.

The registry follows torchvision's weights API: one frozen :class:`Weights` entry per
released file, carrying where to download it, what it is (state_dict, TorchScript or ONNX),
its backbone, parameter count, recommended settings and the paper's numbers, so a notebook
can print "paper says / we measured" from one source::

    >>> from mattingkit.weights.pretrained import get_weights, list_pretrained
    >>> w = get_weights("resnet50")                 # aliases work too
    >>> w.filename, w.num_params, w.paper["fps_hd"]
    ('pytorch_resnet50.pth', 40247703, 60.0)

:func:`load_pretrained` first finds out what a file *is* without unpickling it, because the
official repository's most common support questions (issues #17, #40, #65, #93) came from
passing a TorchScript file where a state_dict was expected and vice versa, and a Google
Drive "quota exceeded" page saved as ``model.pth`` fails with baffling errors. State dicts
are read with ``torch.load(..., weights_only=True)``: a file that tries to run code is
refused and its code never runs.
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Union

import torch
from torch import nn

from mattingkit.core.backbones import BACKBONES
from mattingkit.core.paper import RESOLUTIONS, TABLE3, TABLE4, TABLE6
from mattingkit.runtime import asset_path
from mattingkit.weights.download import DownloadError, fetch
from mattingkit.weights.names import (
    RELEASE_URL,
    SHIPPED_FILENAME,
    official_sources,
    require_shipped,
    resolve_name,
    unknown_name_message,
    unknown_weights_message,
)

__all__ = [
    "fetch_weights",
    "BACKBONES",
    "RELEASE_URL",
    "Weights",
    "OfflineFallbackWarning",
    "WeightsFormatError",
    "detect_format",
    "get_weights",
    "infer_backbone",
    "list_pretrained",
    "load_pretrained",
    "load_torchscript",
    "read_state_dict",
    "shipped_weights_path",
]

PathLike = Union[str, os.PathLike]


_HD = MappingProxyType(RESOLUTIONS["hd"].settings())
_4K = MappingProxyType(RESOLUTIONS["4k"].settings())
_SETTINGS = MappingProxyType({"hd": _HD, "4k": _4K})


class OfflineFallbackWarning(UserWarning):
    """Official weights could not be fetched, so mattingkit's own shipped model is used.

    Its own class, so a caller can tell this notice from any other warning by type
    (``Matter.used_fallback``, the studio, the demo) instead of by its wording.
    """


class WeightsFormatError(ValueError):
    """A weights file is not what was expected (wrong kind, damaged, HTML, unsafe, ...)."""


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Weights:
    """One released weights file. Chapter 03.

    Attributes:
        name: registry name (the file name without suffix).
        filename: the file name on Drive and in the GitHub release.
        kind: ``"state_dict"`` (load into :class:`mattingkit.MattingRefine`),
            ``"torchscript"`` (``torch.jit.load``, architecture included) or ``"onnx"``
            (onnxruntime only).
        backbone: ``"resnet50"``, ``"resnet101"`` or ``"mobilenetv2"``.
        precision: ``"fp32"`` or ``"fp16"``.
        drive_id / drive_folder_id: Google Drive file id, or the shared folder holding it.
        urls: mirrors (the GitHub release).
        sha256, size: checksum and byte count when known (None: not published).
        num_params: parameters of the full model (paper Table 4).
        settings: recommended ``backbone_scale`` / ``refine_sample_pixels`` per resolution.
        paper: figures from the paper (fps on an RTX 2080 Ti, GMac, size, Distinctions
            quality metrics) to print beside your own measurements.
        doc: a short description; says when the file name is not verified.
        verified: False when the file name was inferred, not seen in the official sources.
        local_path: for weights shipped inside this repository instead of downloaded.
    """

    name: str
    filename: str
    kind: str
    backbone: str
    precision: str = "fp32"
    drive_id: str | None = None
    drive_folder_id: str | None = None
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    size: int | None = None
    num_params: int | None = None
    settings: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: _SETTINGS)
    paper: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    doc: str = ""
    verified: bool = True
    local_path: Callable[[], Path] | None = field(default=None, repr=False)

    @property
    def is_shipped(self) -> bool:
        """True for weights that come with mattingkit instead of being downloaded."""
        return self.local_path is not None

    def summary(self) -> str:
        """A few lines for a notebook: what the file is and what the paper reports."""
        lines = [f"{self.name}: {self.kind}, {self.backbone}, {self.precision}"]
        if self.num_params:
            lines.append(f"  parameters: {self.num_params:,}")
        if self.paper:
            lines.append("  paper: " + ", ".join(f"{k}={v}" for k, v in self.paper.items()))
        if self.doc:
            lines.append(f"  {self.doc}")
        return "\n".join(lines)


def _paper_figures(backbone: str) -> Mapping[str, float]:
    """The paper's figures for a backbone (:mod:`mattingkit.core.paper`), flat for ``summary()``."""
    figures: dict[str, float] = {}
    for resolution in RESOLUTIONS:
        speed = TABLE3[backbone, resolution]
        figures[f"fps_{resolution}"] = speed.fps
        figures[f"gmacs_{resolution}"] = speed.gmacs
    figures["size_mb"] = TABLE4[backbone].size_mb
    for name, value in TABLE6[backbone]._asdict().items():
        figures[f"distinctions_{name}"] = value
    return MappingProxyType(figures)


def shipped_weights_path() -> Path:
    """Where mattingkit's own small model lives: ``<assets>/weights/<file>``. Chapter 06.

    ``assets`` is the checkout's ``assets/`` folder, or ``$MATTINGKIT_ASSETS``
    (:func:`mattingkit.runtime.asset_path`); the file may not exist yet.
    """
    return asset_path("weights", SHIPPED_FILENAME)


def _official(
    filename: str,
    kind: str,
    backbone: str,
    precision: str = "fp32",
    *,
    doc: str,
    verified: bool = True,
    settings: Mapping[str, Mapping[str, float]] = _SETTINGS,
) -> Weights:
    return Weights(
        name=Path(filename).stem,
        filename=filename,
        kind=kind,
        backbone=backbone,
        precision=precision,
        **official_sources(filename),  # one copy, read without torch by `mattingkit download`
        num_params=TABLE4[backbone].num_params,
        settings=settings,
        paper=_paper_figures(backbone),
        doc=doc,
        verified=verified,
    )


_UNVERIFIED = "File name inferred from the naming pattern, not seen in official sources."
_ENTRIES = [
    _official(
        "pytorch_resnet50.pth", "state_dict", "resnet50",
        doc="The paper's main model (ResNet-50 base + refiner) as a plain state_dict.",
    ),
    _official(
        "pytorch_resnet101.pth", "state_dict", "resnet101",
        doc="ResNet-101 base + refiner as a plain state_dict: slightly better alpha, slower.",
    ),
    _official(
        "pytorch_mobilenetv2.pth", "state_dict", "mobilenetv2",
        doc="MobileNetV2 base + refiner as a plain state_dict: 8x fewer parameters, fastest.",
    ),
    _official(
        "torchscript_resnet50_fp32.pth", "torchscript", "resnet50",
        doc="Scripted ResNet-50 model (used by the official image Colab); torch.jit.load it.",
    ),
    _official(
        "torchscript_resnet50_fp16.pth", "torchscript", "resnet50", "fp16",
        doc="Scripted ResNet-50 model in half precision (GPU; feed .half() tensors).",
    ),
    _official(
        "torchscript_resnet101_fp32.pth", "torchscript", "resnet101",
        doc="Scripted ResNet-101 model. " + _UNVERIFIED, verified=False,
    ),
    _official(
        "torchscript_resnet101_fp16.pth", "torchscript", "resnet101", "fp16",
        doc="Scripted ResNet-101 model in half precision. " + _UNVERIFIED, verified=False,
    ),
    _official(
        "torchscript_mobilenetv2_fp32.pth", "torchscript", "mobilenetv2",
        doc="Scripted MobileNetV2 model; torch.jit.load it.",
    ),
    _official(
        "torchscript_mobilenetv2_fp16.pth", "torchscript", "mobilenetv2", "fp16",
        doc="Scripted MobileNetV2 model in half precision (GPU; feed .half() tensors).",
    ),
    _official(
        "onnx_mobilenetv2_hd.onnx", "onnx", "mobilenetv2", settings=MappingProxyType({"hd": _HD}),
        doc="ONNX export for onnxruntime, fixed HD settings (roi_align + scatter_element); "
        "much slower than PyTorch.",
    ),
    _official(
        "onnx_mobilenetv2_4k.onnx", "onnx", "mobilenetv2", settings=MappingProxyType({"4k": _4K}),
        doc="ONNX export for onnxruntime, fixed 4K settings. " + _UNVERIFIED, verified=False,
    ),
    Weights(
        name="mattingkit_mobilenetv2_fp16",
        filename=SHIPPED_FILENAME,
        kind="state_dict",
        backbone="mobilenetv2",
        precision="fp16",
        num_params=TABLE4["mobilenetv2"].num_params,
        doc="mattingkit's own MobileNetV2 model, trained offline on synthetic data (chapter "
        "06) and shipped with the repository: works without a network, far below the "
        "official weights in quality.",
        local_path=shipped_weights_path,
    ),
]  # fmt: skip
_REGISTRY: dict[str, Weights] = {w.name: w for w in _ENTRIES}


def list_pretrained(kind: str | None = None) -> list[str]:
    """Names of all registry entries (optionally only one ``kind``). Chapter 03."""
    return [name for name, w in _REGISTRY.items() if kind is None or w.kind == kind]


def get_weights(name: str) -> Weights:
    """The registry entry for a name, file name or alias (``"resnet50"``, ``"mattingkit"``).

    Chapter 03. Raises ``KeyError`` listing the valid names.
    """
    key = resolve_name(name)
    if key is not None:
        return _REGISTRY[key]
    raise KeyError(unknown_name_message(name))


# --------------------------------------------------------------------------------------
# What is this file? (no unpickling)
# --------------------------------------------------------------------------------------
def detect_format(path: PathLike) -> str:
    """Tell what a weights file is by looking at its bytes, never by unpickling it.

    Chapter 03. Returns one of ``"torchscript"`` (zip with ``constants.pkl``/``code/``),
    ``"state_dict"`` (a ``torch.save`` zip with ``data.pkl``), ``"legacy_pickle"`` (the
    pre-1.6 ``torch.save`` format or any raw pickle), ``"onnx"``, ``"html"``,
    ``"lfs_pointer"`` (a Git LFS pointer instead of the file), ``"text"``, ``"empty"``,
    ``"corrupt_zip"`` (e.g. a truncated download), ``"zip"`` (some other zip) or
    ``"unknown"``.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(1024)
    if not head:
        return "empty"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile:
            return "corrupt_zip"
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return "state_dict"
        return "zip"
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:  # pickle protocol 2-5 header
        return "legacy_pickle"
    if head[:1] == b"\x08" and (b"pytorch" in head[:64] or b"onnx" in head.lower()):
        return "onnx"  # protobuf ModelProto: field 1 (ir_version), then producer name
    if path.suffix.lower() == ".onnx" and head[:1] == b"\x08":
        return "onnx"
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "html"
    if stripped.startswith(b"version https://git-lfs"):
        return "lfs_pointer"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "unknown"
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return "text" if printable >= 0.95 * len(text) else "unknown"


def _format_problem(path: Path, fmt: str, wanted: str) -> str:
    """The message for a file that cannot be loaded as ``wanted``."""
    name = path.name
    if fmt == "torchscript":
        return (
            f"{path} is a TorchScript archive, not a state_dict: load it with "
            f"`torch.jit.load({name!r})` or pass it to `load_pretrained({name!r})`, which "
            "returns the scripted model (official repo issues #17, #65, #93)."
        )
    if fmt in ("state_dict", "legacy_pickle"):
        return (
            f"{path} is a state_dict (a dict of tensors), not a TorchScript archive: create "
            "the model with `MattingRefine(backbone)` and call `model.load_state_dict(torch."
            f"load({name!r}, weights_only=True))`, or pass it to `load_pretrained({name!r})`, "
            "which does both (official repo issues #40, #65)."
        )
    if fmt == "onnx":
        return (
            f"{path} is an ONNX model: it runs with onnxruntime "
            f"(`onnxruntime.InferenceSession({name!r})`), not in PyTorch. For PyTorch use "
            "'pytorch_mobilenetv2' or 'torchscript_mobilenetv2_fp32'."
        )
    if fmt == "html":
        text = path.read_bytes()[:4096].decode("utf-8", "replace").lower()
        why = (
            "Google Drive's daily download quota for this file is exceeded"
            if "quota" in text
            else "the server sent a web page (Drive quota, sign-in or virus-scan page?)"
        )
        return (
            f"{path} is an HTML page, not weights: {why}. Delete it, then download again "
            "later or from the GitHub release, or save a copy downloaded in a browser there."
        )
    if fmt == "lfs_pointer":
        return (
            f"{path} is a Git LFS pointer, not the weights: run `git lfs pull` in the "
            "repository (or download the file) to get the real content."
        )
    if fmt == "text":
        first = path.read_bytes()[:60].decode("utf-8", "replace").splitlines()
        return f"{path} is a text file (it starts with {first[0] if first else ''!r}), not weights."
    if fmt == "empty":
        return f"{path} is empty (0 bytes): an interrupted copy or download? Delete it."
    if fmt == "corrupt_zip":
        return (
            f"{path} is a damaged archive ({path.stat().st_size:,} bytes), most likely a "
            "truncated download or copy: delete it and download it again."
        )
    return f"{path} is not a {wanted.replace('_', ' ')} mattingkit recognises ({fmt})."


# --------------------------------------------------------------------------------------
# State dicts
# --------------------------------------------------------------------------------------
_WRAPPER_KEYS = ("state_dict", "model_state", "model_state_dict", "model")


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Accept a bare state_dict or a training checkpoint that holds one."""
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = dict(obj)
    elif isinstance(obj, Mapping) and any(isinstance(obj.get(k), Mapping) for k in _WRAPPER_KEYS):
        key = next(k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping))
        return _unwrap(obj[key], path)
    else:
        raise WeightsFormatError(
            f"{path} holds a {type(obj).__name__}, not a state_dict of tensors"
            + (f" (keys: {list(obj)[:6]})" if isinstance(obj, Mapping) else "")
        )
    if all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def read_state_dict(path: PathLike) -> dict[str, torch.Tensor]:
    """Read a state_dict safely: format check first, then ``torch.load(weights_only=True)``.

    Chapter 03. Tensors come back on the CPU in their stored dtype. A TorchScript, ONNX,
    HTML, empty or truncated file raises :class:`WeightsFormatError` saying what the file
    is and what to do; so does a pickle that would run code (the code is never run).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    fmt = detect_format(path)
    if fmt not in ("state_dict", "legacy_pickle"):
        raise WeightsFormatError(_format_problem(path, fmt, "state_dict"))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- turned into one clear message below
        text = str(error)
        code = re.search(r"GLOBAL ([\w.]+)", text)
        if code:
            raise WeightsFormatError(
                f"refused to load {path}: it contains Python objects other than tensors (it "
                f"references {code.group(1)}). Unpickling such a file can run arbitrary code, "
                "so mattingkit loads weights only with torch.load(weights_only=True) and the "
                "code did not run. Use a plain state_dict from a source you trust."
            ) from None
        inner = re.search(r"WeightsUnpickler error: (.*)", text)
        reason = inner.group(1) if inner else (text.strip().splitlines() or [""])[0]
        raise WeightsFormatError(
            f"{path} could not be read ({type(error).__name__}{': ' if reason else ''}"
            f"{reason[:200]}); it is "
            "probably truncated or damaged: delete it and download it again."
        ) from None
    return _unwrap(obj, path)


def infer_backbone(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Which backbone a BMV2 state_dict belongs to, from its key names. Chapter 03.

    MobileNetV2 has ``backbone.features.*``; ResNet-50 and -101 differ in the number of
    blocks of ``layer3`` (6 versus 23).
    """
    keys = list(state_dict)
    if any(k.startswith("backbone.features.") for k in keys):
        return "mobilenetv2"
    blocks = {k.split(".")[2] for k in keys if k.startswith("backbone.layer3.")}
    if len(blocks) == 6:
        return "resnet50"
    if len(blocks) == 23:
        return "resnet101"
    raise WeightsFormatError(
        "cannot tell the backbone: this does not look like a Background Matting V2 state_dict "
        f"({len(keys)} keys, e.g. {keys[:3]}; layer3 has {len(blocks)} blocks)"
    )


def _fit_report(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """None if ``state`` fits ``model`` exactly, else a short account of what differs."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches (file vs model, e.g. {shapes[:2]})")
    return "; ".join(parts) or None


def _model_from_state_dict(
    state: dict[str, torch.Tensor], path: Path, backbone: str | None, model_kwargs: dict[str, Any]
) -> nn.Module:
    from mattingkit.core.model import MattingBase, MattingRefine

    found = infer_backbone(state)
    if backbone is not None and backbone != found:
        raise WeightsFormatError(
            f"{path} holds {found} weights but backbone={backbone!r} was requested: "
            f"use backbone={found!r} (or leave it out) or pick the {backbone} file."
        )
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}  # fp16
    if any(k.startswith("refiner.") for k in state):
        model: nn.Module = MattingRefine(found, **model_kwargs)
    else:  # a base-network checkpoint (chapter 03 / the first training stage)
        if model_kwargs:
            raise TypeError(
                f"{path} holds a MattingBase (no refiner), which takes no refine settings; "
                f"got {sorted(model_kwargs)}"
            )
        model = MattingBase(found)
    problem = _fit_report(model, state)
    if problem:
        raise WeightsFormatError(
            f"{path} does not fit {type(model).__name__}({found!r}): {problem}. "
            "Was it saved from another version of the model?"
        )
    model.load_state_dict(state, strict=True)
    return model


# --------------------------------------------------------------------------------------
# TorchScript
# --------------------------------------------------------------------------------------


def load_torchscript(path: PathLike, *, device: str | torch.device = "cpu", **settings: Any) -> Any:
    """Load a TorchScript model and set its refine settings. Chapter 03.

    ``settings`` may contain the attributes of :data:`mattingkit.core.model.PER_CALL_SETTINGS`; the rest of the
    architecture (kernel size, crop method) was fixed when the file was exported. fp16 files
    keep their precision: run them on a GPU with ``.half()`` inputs.
    """
    from mattingkit.core.model import PER_CALL_SETTINGS

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    fmt = detect_format(path)
    if fmt != "torchscript":
        raise WeightsFormatError(_format_problem(path, fmt, "torchscript"))
    fixed = sorted(set(settings) - set(PER_CALL_SETTINGS))
    if fixed:
        raise TypeError(
            f"{fixed} cannot be changed on a TorchScript model (fixed at export); settable: "
            f"{sorted(PER_CALL_SETTINGS)}"
        )
    with warnings.catch_warnings():  # torch.jit is deprecated in new torch; still works
        warnings.simplefilter("ignore", FutureWarning)
        try:
            model = torch.jit.load(str(path), map_location=torch.device(device))
        except RuntimeError as error:
            raise WeightsFormatError(
                f"{path} could not be loaded as TorchScript ({str(error).splitlines()[0]}); "
                "it may be damaged or made by a newer PyTorch."
            ) from None
    for name, value in settings.items():
        if not hasattr(model, name):
            raise TypeError(f"the TorchScript model in {path} has no setting {name!r}")
        setattr(model, name, PER_CALL_SETTINGS[name](value))
    return model.eval()


# --------------------------------------------------------------------------------------
# load_pretrained
# --------------------------------------------------------------------------------------
def _resolve(name_or_path: Weights | PathLike) -> tuple[Weights | None, Path | None]:
    if isinstance(name_or_path, Weights):
        return name_or_path, None
    if isinstance(name_or_path, str):
        try:
            return get_weights(name_or_path), None
        except KeyError:
            pass
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return None, path
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; pass the weights file inside it")
    raise FileNotFoundError(unknown_weights_message(name_or_path))


def fetch_weights(
    weights: Weights | str,
    *,
    downloader: Any = None,
    cache_dir: PathLike | None = None,
    progress: bool = True,
) -> Path:
    """The local file of a registry entry: the shipped file, or the official one downloaded
    (cached, verified, atomic; see :func:`mattingkit.weights.download.fetch`). Used by
    ``mattingkit download NAME``."""
    if isinstance(weights, str):
        weights = get_weights(weights)
    if weights.local_path is not None:
        return require_shipped(weights.local_path())
    return fetch(
        weights.filename,
        drive_id=weights.drive_id,
        drive_folder_id=weights.drive_folder_id,
        urls=weights.urls,
        sha256=weights.sha256,
        size=weights.size,
        cache_dir=cache_dir,
        downloader=downloader,
        progress=progress,
    )


def _load_file(
    path: Path,
    expected_kind: str | None,
    backbone: str | None,
    device: str | torch.device,
    model_kwargs: dict[str, Any],
) -> nn.Module:
    fmt = detect_format(path)
    found_kind = "state_dict" if fmt == "legacy_pickle" else fmt
    loadable = ("state_dict", "torchscript", "onnx")
    if expected_kind is not None and found_kind != expected_kind and found_kind in loadable:
        raise WeightsFormatError(
            f"expected a {expected_kind} file. " + _format_problem(path, fmt, expected_kind)
        )
    if found_kind == "torchscript":
        model = load_torchscript(path, device=device, **model_kwargs)
        if backbone is not None:
            found = infer_backbone(model.state_dict())
            if found != backbone:
                raise WeightsFormatError(
                    f"{path} holds a {found} model but backbone={backbone!r} was requested."
                )
        return model
    if found_kind != "state_dict":
        raise WeightsFormatError(_format_problem(path, fmt, "weights file"))
    model = _model_from_state_dict(read_state_dict(path), path, backbone, model_kwargs)
    return model.to(device).eval()


def load_pretrained(
    name_or_path: Weights | PathLike,
    *,
    backbone: str | None = None,
    device: str | torch.device = "cpu",
    allow_fallback: bool = True,
    downloader: Callable[[str, Path], None] | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    **model_kwargs: Any,
) -> nn.Module:
    """A ready-to-run matting model (eval mode, on ``device``) from a name or a file.

    Chapter 03.

    Args:
        name_or_path: a registry name (:func:`list_pretrained`), an alias (``"resnet50"``,
            ``"resnet101"``, ``"mobilenetv2"``, ``"mattingkit"``), a :class:`Weights`, or a
            local file (official state_dict or TorchScript file, or your own checkpoint).
        backbone: checked against the file; inferred from it when None.
        device: where the model goes (``"cpu"``, ``"cuda"``, ``runtime.pick_device()``).
        allow_fallback: if the official file cannot be downloaded (offline, Drive quota),
            warn and return mattingkit's shipped MobileNetV2 instead (lower quality). On by
            default so that every notebook runs offline; the ``mattingkit`` command turns it
            off when you name weights, because a quiet swap would spoil real footage.
        downloader, cache_dir, progress: passed to :func:`mattingkit.weights.download.fetch`.
        **model_kwargs: ``MattingRefine`` settings, e.g. ``backbone_scale=0.125,
            refine_sample_pixels=320_000`` for 4K (see :func:`mattingkit.core.paper.official_settings`). For a
            TorchScript file only the :data:`mattingkit.core.model.PER_CALL_SETTINGS` can be set.

    Returns:
        ``MattingRefine`` (``MattingBase`` for a checkpoint without refiner) with float32
        weights, or the scripted module for a TorchScript file.

    Raises:
        DownloadError: the download failed and no fallback was allowed or available.
        WeightsFormatError: the file is the wrong kind, damaged, an HTML page, unsafe, or
            for another backbone; the message says which and what to do.
    """
    if backbone is not None and backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    weights, path = _resolve(name_or_path)
    if weights is None:
        return _load_file(path, None, backbone, device, model_kwargs)
    if backbone is not None and backbone != weights.backbone:
        raise ValueError(
            f"{weights.name} is a {weights.backbone} model but backbone={backbone!r} was "
            "requested; leave backbone out or choose another name."
        )
    if weights.kind == "onnx":
        raise WeightsFormatError(
            f"{weights.filename} is an ONNX model for onnxruntime and cannot be loaded as a "
            "PyTorch model; use 'pytorch_mobilenetv2' or 'torchscript_mobilenetv2_fp32'."
        )
    try:
        path = fetch_weights(weights, downloader=downloader, cache_dir=cache_dir, progress=progress)
    except DownloadError as error:
        shipped = shipped_weights_path()
        if not allow_fallback or weights.is_shipped or not shipped.is_file():
            if allow_fallback and not weights.is_shipped:
                error.args = (
                    f"{error}\nThe offline fallback (mattingkit's own model) is missing too: "
                    f"{shipped}.",
                )
            raise
        message = (
            f"Could not fetch the official {weights.filename} ({error.reasons()}). Using mattingkit's "
            f"own MobileNetV2 instead (trained offline on synthetic data: lower quality). To "
            f"use the official weights, save a copy as {error.manual_path}."
        )
        # One notice: a warning (shown once in a notebook or a script, and catchable, e.g. by
        # mattingkit.apps.inference.Matter to report ``used_fallback``), never a second copy on stdout.
        warnings.warn(message, OfflineFallbackWarning, stacklevel=2)
        return _load_file(shipped, "state_dict", None, device, model_kwargs)
    return _load_file(path, weights.kind, backbone, device, model_kwargs)
