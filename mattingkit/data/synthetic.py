"""Deterministic synthetic matting samples with exact ground truth.

Chapter 01 (what a matte is) and Chapter 06 (training on a subset).

Real matting data sets are large downloads; this module draws a new sample in a few
milliseconds on a CPU, with a ground truth that is exact by construction:

* a subject (a head-and-shoulders "person" with hair strands, arms, holes and sometimes a
  veil, or a group of generic blobs), built as premultiplied colour layers stacked with the
  *over* operator, so the alpha ``pha`` and foreground colour ``fgr`` are consistent even
  where strands, soft edges and motion blur make the alpha fractional;
* a clean plate ``bgr`` cut from a real photograph shipped inside an installed package
  (matplotlib's ``grace_hopper.jpg``, scikit-image's ``skimage/data`` pictures when
  scikit-image is installed) or drawn procedurally (noise walls, gradients, blurred rooms);
* the frame ``src = pha * fgr + (1 - pha) * bgr``, computed in float32 from the returned
  tensors, so the matting equation holds bit for bit.

Every random choice comes from one ``numpy.random.default_rng(seed)``: the same
``(seed, size)`` gives a bit-identical sample on a machine with the same photo sources
(:func:`photo_sources` lists them).

The public API comes first (:func:`load_sample`, :func:`make_sample`, the data set, clips,
the triangulation pair); the drawing code behind :func:`make_background` and
:func:`make_foreground` lives in the private module :mod:`mattingkit.data.drawing`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from mattingkit.data.drawing import (
    Size,
    _check_size,
    _fractal_noise,
    _jitter,
    _unpremultiply,
    make_background,
    make_foreground,
    photo_sources,
)
from mattingkit.io import read_alpha, read_image
from mattingkit.runtime import asset_path

__all__ = [
    "MattingSample",
    "MattingClip",
    "SyntheticMattingDataset",
    "CLIP_SPEC",
    "SAMPLE_SPECS",
    "TRIANGULATION_SPEC",
    "TriangulationSample",
    "generate_named_sample",
    "load_clip",
    "load_triangulation_sample",
    "make_triangulation_sample",
    "load_sample",
    "make_background",
    "make_clip",
    "make_foreground",
    "make_sample",
    "photo_sources",
]

Seed = Union[int, Sequence[int]]


class MattingSample(NamedTuple):
    """One matting example; every tensor is float32 in [0, 1].

    ``src`` (3, H, W) is the frame, ``bgr`` (3, H, W) the clean plate, ``fgr`` (3, H, W)
    the foreground colour and ``pha`` (1, H, W) the alpha, with
    ``src == pha * fgr + (1 - pha) * bgr`` exactly.
    """

    src: torch.Tensor
    bgr: torch.Tensor
    fgr: torch.Tensor
    pha: torch.Tensor


class MattingClip(NamedTuple):
    """A short clip of a moving subject over one static plate (for the video chapters).

    ``src``, ``fgr`` are (T, 3, H, W), ``pha`` is (T, 1, H, W) and ``bgr`` (3, H, W) is
    the plate shared by all frames; ``src[t] == pha[t] * fgr[t] + (1 - pha[t]) * bgr``.
    """

    src: torch.Tensor
    bgr: torch.Tensor
    fgr: torch.Tensor
    pha: torch.Tensor


class TriangulationSample(NamedTuple):
    """One subject shot over two known plates (Smith & Blinn's triangulation matting).

    ``src1 = pha * fgr + (1 - pha) * bgr1`` and ``src2 = pha * fgr + (1 - pha) * bgr2``
    exactly; all tensors float32 in [0, 1], (3, H, W) except ``pha`` (1, H, W).
    """

    src1: torch.Tensor
    src2: torch.Tensor
    bgr1: torch.Tensor
    bgr2: torch.Tensor
    fgr: torch.Tensor
    pha: torch.Tensor


#: name -> (seed, (H, W), subject) of the samples written by ``scripts/make_assets.py``.
SAMPLE_SPECS: dict[str, tuple[int, Size, str | None]] = {
    "portrait": (2001, (540, 960), "person"),
    "square": (9, (512, 512), "person"),
}
#: (seed, (H, W)) of the triangulation pair and of the short clip in ``assets/samples``.
TRIANGULATION_SPEC: tuple[int, Size] = (17, (384, 512))
CLIP_SPEC: tuple[int, Size, int] = (14, (270, 480), 72)


# --------------------------------------------------------------------------------------
# Public API: named teaching samples, random samples, a data set, clips.
# --------------------------------------------------------------------------------------


def load_sample(name: str = "portrait") -> MattingSample:
    """A named teaching sample, read from ``assets/samples`` (or regenerated if missing).

    Chapter 01. Reads ``<name>_fgr.png``, ``<name>_pha.png`` and ``<name>_bgr.png`` (8-bit)
    and recomputes ``src = pha * fgr + (1 - pha) * bgr`` from them, so the matting
    equation holds exactly for what is returned. Without the files (e.g. a pip install
    without assets) the same sample is regenerated from its seed and quantised to 8 bits
    like the files, so both paths agree.
    """
    if name not in SAMPLE_SPECS:
        raise ValueError(f"unknown sample {name!r}; choose one of {sorted(SAMPLE_SPECS)}")
    folder = _samples_dir()
    paths = {part: folder / f"{name}_{part}.png" for part in ("fgr", "pha", "bgr")}
    if all(p.is_file() for p in paths.values()):
        fgr, pha, bgr = read_image(paths["fgr"]), read_alpha(paths["pha"]), read_image(paths["bgr"])
    else:
        sample = generate_named_sample(name)
        fgr, pha, bgr = (_quantize(t) for t in (sample.fgr, sample.pha, sample.bgr))
    return MattingSample(_compose(fgr, pha, bgr), bgr, fgr, pha)


def make_sample(seed: Seed, size: Size = (256, 256), subject: str | None = None) -> MattingSample:
    """A deterministic synthetic matting sample.

    Chapter 01. ``seed`` is an int (or a sequence of ints, e.g. ``(dataset_seed, index)``);
    ``size`` is ``(H, W)``. Returns :class:`MattingSample` with float32 tensors in [0, 1]:
    ``src``, ``bgr``, ``fgr`` (3, H, W) and ``pha`` (1, H, W), where
    ``src == pha * fgr + (1 - pha) * bgr`` exactly. ``subject`` ("person" or "blobs")
    forces the kind of subject; by default about 70 % are people.

    >>> s = make_sample(0, size=(64, 96))
    >>> tuple(s.pha.shape), bool(torch.equal(s.src, s.pha * s.fgr + (1 - s.pha) * s.bgr))
    ((1, 64, 96), True)
    """
    return _sample_from_rng(np.random.default_rng(seed), size, subject)


class SyntheticMattingDataset(Dataset):
    """A map-style dataset of synthetic samples, deterministic per index.

    Chapter 06. Item ``i`` is ``{"fgr": (3,H,W), "pha": (1,H,W), "bgr": (3,H,W)}`` (float32 in
    [0, 1]) drawn from ``default_rng((seed, i))``; training composes ``src`` itself after its
    own augmentations. ``with_src=True`` adds ``"src"`` for plotting.
    """

    def __init__(
        self, length: int, size: Size = (256, 256), seed: int = 0, with_src: bool = False
    ) -> None:
        if int(length) < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        self.length = int(length)
        self.size = _check_size(size)
        self.seed = int(seed)
        self.with_src = with_src

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of length {self.length}")
        index = index % self.length
        sample = make_sample((self.seed, index), self.size)
        item = {"fgr": sample.fgr, "pha": sample.pha, "bgr": sample.bgr}
        if self.with_src:
            item["src"] = sample.src
        return item


def make_clip(
    seed: Seed, size: Size = (144, 256), frames: int = 24, subject: str | None = None
) -> MattingClip:
    """A short clip: one subject moving smoothly over a static clean plate.

    For the video chapters. The subject is drawn once and moved per frame with a sub-pixel
    affine warp (a sway and a slow drift) applied to the premultiplied colour and the alpha
    together, so every frame has exact ground truth. ``subject`` as in :func:`make_sample`.
    """
    if int(frames) < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    h, w = _check_size(size)
    rng = np.random.default_rng(seed)
    bgr = make_background(rng, (h, w))
    fgr, pha = make_foreground(rng, (h, w), background=bgr, subject=subject)
    premul = fgr * pha[:, :, None]
    drift = rng.uniform(-0.15, 0.15) * w
    sway = rng.uniform(0.02, 0.06) * w
    turn = rng.uniform(2.0, 6.0)
    cycles = rng.uniform(0.5, 1.5)
    pivot = (w / 2, h * 0.95)
    bgr_t = _to_tensor(bgr)
    srcs, fgrs, phas = [], [], []
    for t in range(int(frames)):
        phase = 2 * math.pi * cycles * t / max(1, frames)
        matrix = cv2.getRotationMatrix2D(pivot, turn * math.sin(phase), 1.0)
        matrix[0, 2] += drift * t / max(1, frames) + sway * math.sin(phase)
        p = cv2.warpAffine(premul, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        a = cv2.warpAffine(pha, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        f, a = _unpremultiply(p, a, fgr)
        f_t, a_t = _to_tensor(f), _to_tensor(a)
        srcs.append(_compose(f_t, a_t, bgr_t))
        fgrs.append(f_t)
        phas.append(a_t)
    return MattingClip(torch.stack(srcs), bgr_t, torch.stack(fgrs), torch.stack(phas))


def load_clip() -> MattingClip:
    """The exact clip behind ``assets/samples/clip_src.mp4`` and ``clip_pha.mp4``.

    For the video chapters. The mp4 files are lossy (H.264) copies for the video-reading lessons; this
    regenerates the float ground truth from ``CLIP_SPEC`` in about a second.
    """
    seed, size, frames = CLIP_SPEC
    return make_clip(seed, size, frames, subject="person")


def load_triangulation_sample() -> TriangulationSample:
    """The triangulation pair from ``assets/samples/tri_*.png`` (regenerated if missing).

    Chapter 01. As with :func:`load_sample`, the two frames are recomputed from the 8-bit
    ``fgr``, ``pha`` and plates so that both matting equations hold exactly.
    """
    folder = _samples_dir()
    parts = ("fgr", "pha", "bgr1", "bgr2")
    paths = {part: folder / f"tri_{part}.png" for part in parts}
    if all(p.is_file() for p in paths.values()):
        fgr, pha = read_image(paths["fgr"]), read_alpha(paths["pha"])
        bgr1, bgr2 = read_image(paths["bgr1"]), read_image(paths["bgr2"])
    else:
        tri = make_triangulation_sample(*TRIANGULATION_SPEC)
        fgr, pha, bgr1, bgr2 = (_quantize(t) for t in (tri.fgr, tri.pha, tri.bgr1, tri.bgr2))
    return TriangulationSample(
        _compose(fgr, pha, bgr1), _compose(fgr, pha, bgr2), bgr1, bgr2, fgr, pha
    )


def make_triangulation_sample(
    seed: Seed, size: Size = (384, 512), subject: str | None = "person"
) -> TriangulationSample:
    """The same subject over two plates of very different colour (blue-green, orange-yellow).

    Chapter 01 (triangulation matting). The plates differ strongly at every pixel, which
    is what lets two equations per pixel pin down alpha and the foreground colour.
    """
    h, w = _check_size(size)
    rng = np.random.default_rng(seed)
    cool = [
        _jitter(rng, np.array(c, np.float32), 0.04) for c in ([0.1, 0.3, 0.8], [0.15, 0.65, 0.55])
    ]
    warm = [
        _jitter(rng, np.array(c, np.float32), 0.04) for c in ([0.95, 0.55, 0.1], [0.9, 0.85, 0.25])
    ]
    bgr1 = _two_tone_plate(rng, h, w, *cool)
    bgr2 = _two_tone_plate(rng, h, w, *warm)
    fgr, pha = make_foreground(rng, (h, w), subject=subject)
    fgr_t, pha_t = _to_tensor(fgr), _to_tensor(pha)
    fgr_t = torch.where(pha_t > 0, fgr_t, torch.zeros_like(fgr_t))
    b1, b2 = _to_tensor(bgr1), _to_tensor(bgr2)
    return TriangulationSample(
        _compose(fgr_t, pha_t, b1), _compose(fgr_t, pha_t, b2), b1, b2, fgr_t, pha_t
    )


def generate_named_sample(name: str) -> MattingSample:
    """The full-precision sample behind ``assets/samples/<name>_*.png`` (see SAMPLE_SPECS).

    Its ``fgr`` is set to 0 where ``pha == 0`` (the colour there is meaningless, and black
    makes the figure clearer and the PNG smaller); ``src`` is unchanged by that.
    """
    if name not in SAMPLE_SPECS:
        raise ValueError(f"unknown sample {name!r}; choose one of {sorted(SAMPLE_SPECS)}")
    seed, size, subject = SAMPLE_SPECS[name]
    sample = make_sample(seed, size, subject=subject)
    fgr = torch.where(sample.pha > 0, sample.fgr, torch.zeros_like(sample.fgr))
    return sample._replace(fgr=fgr)


# --------------------------------------------------------------------------------------
# Private helpers.
# --------------------------------------------------------------------------------------


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) or (H, W) float32 numpy -> (C, H, W) contiguous torch tensor."""
    if image.ndim == 2:
        image = image[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


def _compose(fgr: torch.Tensor, pha: torch.Tensor, bgr: torch.Tensor) -> torch.Tensor:
    """The matting equation, in this exact form everywhere in the module."""
    return pha * fgr + (1 - pha) * bgr


def _sample_from_rng(
    rng: np.random.Generator, size: Size, subject: str | None = None
) -> MattingSample:
    bgr = make_background(rng, size)
    fgr, pha = make_foreground(rng, size, background=bgr, subject=subject)
    fgr_t, pha_t, bgr_t = _to_tensor(fgr), _to_tensor(pha), _to_tensor(bgr)
    return MattingSample(_compose(fgr_t, pha_t, bgr_t), bgr_t, fgr_t, pha_t)


def _two_tone_plate(
    rng: np.random.Generator, h: int, w: int, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """A lightly textured gradient between colours ``a`` and ``b`` (3,), float32 (H, W, 3)."""
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[:h, :w].astype(np.float32)
    t = xs / w * math.cos(angle) + ys / h * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    plate = a + (b - a) * t[:, :, None]
    plate = plate * (0.95 + 0.1 * _fractal_noise(rng, h, w))[:, :, None]
    return np.clip(plate, 0.0, 1.0).astype(np.float32)


def _samples_dir() -> Path:
    """``assets/samples`` of the checkout (or of ``$MATTINGKIT_ASSETS``), even if missing."""
    return asset_path("samples")


def _quantize(x: torch.Tensor) -> torch.Tensor:
    """What an 8-bit PNG round trip does to a [0, 1] image."""
    return torch.round(x.clamp(0, 1) * 255) / 255
