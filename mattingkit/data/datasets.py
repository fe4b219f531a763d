"""Matting data sets and dataset downloads.

Chapter 06 (training on a subset).

* Readers for the official layouts: :class:`VideoMatteDataset` (VideoMatte240K),
  :class:`PhotoMatteDataset` (PhotoMatte85) and :class:`BackgroundDataset` (a folder of
  photos). Each item is a dict of float32 tensors in [0, 1].
* :class:`CompositionDataset` pairs every foreground with a random background and applies
  the per-sample augmentations of the official ``train_base.py`` / ``train_refine.py``
  (paired affine + resize, flip, box blur, sharpen, colour jitter), reproducibly.
* ``download_*`` fetch the public subsets through :func:`mattingkit.weights.download.fetch`.

The augmentations themselves live in :mod:`mattingkit.data.augment` (as the official
``dataset/augmentation.py``); ``augment_batch``, ``augment_foreground`` and
``augment_background`` are importable from here too.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from mattingkit.core.matting import resize_to_cover
from mattingkit.data.augment import (
    Size,
    _as_hw,
    augment_background,
    augment_batch,
    augment_foreground,
)
from mattingkit.io import read_image
from mattingkit.weights.download import extract_archive, fetch

__all__ = [
    "BackgroundDataset",
    "CompositionDataset",
    "PhotoMatteDataset",
    "VideoMatteDataset",
    "augment_batch",
    "augment_background",
    "augment_foreground",
    "download_backgrounds_validation",
    "download_photomatte85",
    "download_videomatte240k_sd",
    "DATASET_DRIVE_IDS",
]

PathLike = Union[str, os.PathLike]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


# --------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------


def _check_folder(folder: Path, what: str) -> Path:
    if not folder.exists():
        raise FileNotFoundError(f"{what} folder not found: {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"{what} path is not a folder: {folder}")
    return folder


def _list_images(folder: Path, what: str) -> list[Path]:
    """All .jpg/.jpeg/.png files under ``folder`` (recursive), sorted by relative path."""
    _check_folder(folder, what)
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise FileNotFoundError(
            f"{what} folder {folder} contains no images ({', '.join(IMAGE_SUFFIXES)}, searched recursively)"
        )
    return files


class VideoMatteDataset(Dataset):
    """VideoMatte240K frames: ``root/fgr/<clip>/<frame>.jpg`` with ``root/pha/<clip>/<frame>.jpg``.

    Chapter 06. ``root`` is the folder holding ``fgr/`` and ``pha/`` (e.g.
    ``VideoMatte240K_JPEG_SD/train``; pass ``split="train"`` to add that part). Frames are
    paired by their path relative to ``fgr/`` and ``pha/``, so every clip must have the
    same frames in both. Item ``i`` is ``{"fgr": (3, H, W), "pha": (1, H, W)}`` float32 in
    [0, 1]; the foreground is straight (not premultiplied) colour.
    """

    def __init__(self, root: PathLike, split: str | None = None) -> None:
        root = Path(root) if split is None else Path(root) / split
        self.root = _check_folder(root, "VideoMatte240K")
        fgr_dir, pha_dir = root / "fgr", root / "pha"
        if not fgr_dir.is_dir() or not pha_dir.is_dir():
            hint = ""
            if (root / "train").is_dir():
                hint = " (it has a train/ folder: pass split='train' or point root at it)"
            raise FileNotFoundError(
                f"VideoMatte240K root {root} must contain fgr/ and pha/ folders{hint}"
            )
        fgr = _list_images(fgr_dir, "VideoMatte240K fgr")
        pha = _list_images(pha_dir, "VideoMatte240K pha")
        if len(fgr) != len(pha):
            raise ValueError(
                f"VideoMatte240K: {len(fgr)} frames in {fgr_dir} but {len(pha)} in {pha_dir}; "
                "every foreground frame needs its alpha frame"
            )
        fgr_keys = [p.relative_to(fgr_dir).with_suffix("") for p in fgr]
        pha_keys = [p.relative_to(pha_dir).with_suffix("") for p in pha]
        for f, a in zip(fgr_keys, pha_keys):
            if f != a:
                raise ValueError(
                    f"VideoMatte240K: frame {fgr_dir / f} has no alpha twin (next alpha is {pha_dir / a})"
                )
        self.fgr_files, self.pha_files = fgr, pha

    @property
    def clips(self) -> list[str]:
        """Clip folder names, sorted."""
        return sorted({p.parent.name for p in self.fgr_files})

    def __len__(self) -> int:
        return len(self.fgr_files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"fgr": read_image(self.fgr_files[index]), "pha": _read_matte(self.pha_files[index])}


def _read_matte(path: Path) -> torch.Tensor:
    """A matte stored as an image, as (1, H, W) float32 in [0, 1].

    VideoMatte240K stores its mattes as JPEGs, which may be 3-channel files whose channels
    differ by compression noise; like the official loader (PIL ``convert("L")``) we take the
    ITU-R 601 luma instead of insisting on one channel.
    """
    rgb = read_image(path)
    if torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2]):  # a grey file: exact
        return rgb[0:1].clone()
    return (0.299 * rgb[0:1] + 0.587 * rgb[1:2] + 0.114 * rgb[2:3]).clamp(0, 1)


class PhotoMatteDataset(Dataset):
    """PhotoMatte85: RGBA PNGs whose alpha channel is the ground-truth matte.

    Chapter 06. Every ``*.png`` under ``root`` (recursive) is one subject. ``fgr`` is the
    RGB as stored and ``pha`` the alpha channel: PNG stores *straight* (un-premultiplied)
    colour, so the frame is ``pha * fgr + (1 - pha) * bgr`` and we do not divide by alpha.
    Colours where ``pha == 0`` carry no meaning (losses mask them out). Files without an
    alpha channel are refused with an error naming them.
    """

    def __init__(self, root: PathLike) -> None:
        self.root = _check_folder(Path(root), "PhotoMatte85")
        files = [p for p in _list_images(self.root, "PhotoMatte85") if p.suffix.lower() == ".png"]
        if not files:
            raise FileNotFoundError(f"PhotoMatte85 folder {self.root} contains no .png files")
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        path = self.files[index]
        if not _png_has_alpha(path):
            raise ValueError(
                f"PhotoMatte85 image {path} has no alpha channel (expected an RGBA PNG)"
            )
        rgba = read_image(path, with_alpha=True)
        return {"fgr": rgba[:3], "pha": rgba[3:]}


def _png_has_alpha(path: Path) -> bool:
    """True when the PNG header says grey+alpha or RGBA (colour type 4 or 6), or a tRNS chunk."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 26:
        return False
    return head[25] in (4, 6) or b"tRNS" in head


class BackgroundDataset(Dataset):
    """A folder of background photos (``.jpg``/``.jpeg``/``.png``, searched recursively).

    Chapter 06. Item ``i`` is ``{"bgr": (3, H, W)}`` float32 RGB in [0, 1].
    """

    def __init__(self, root: PathLike) -> None:
        self.root = _check_folder(Path(root), "backgrounds")
        self.files = _list_images(self.root, "backgrounds")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"bgr": read_image(self.files[index])}


# --------------------------------------------------------------------------------------
# Foregrounds on backgrounds
# --------------------------------------------------------------------------------------


def _get(item: Any, key: str) -> torch.Tensor:
    if isinstance(item, dict):
        return item[key]
    if isinstance(item, torch.Tensor) and key == "bgr":
        return item
    if hasattr(item, key):  # e.g. a MattingSample
        return getattr(item, key)
    raise TypeError(
        f"expected a dict with {key!r} (or a tensor for backgrounds), got {type(item).__name__}"
    )


class CompositionDataset(Dataset):
    """Foregrounds paired with random backgrounds, augmented per sample, at one size.

    Chapter 06. Item ``i`` is ``{"fgr", "pha", "bgr"}`` at ``size`` (int or (H, W)), with
    foreground ``i`` and a background drawn at random; :func:`augment_batch` then makes
    ``src`` inside the training loop, as the official scripts do.

    Why random backgrounds: the official code ``zip``\\ s the two lists, so foreground ``i``
    always meets background ``i`` and the shorter list truncates the epoch. Drawing a
    background per sample (and per epoch) shows each subject in front of many scenes, which
    matters when only ~200 public backgrounds exist.

    Reproducible: the parameters of item ``i`` come from ``default_rng((seed, epoch, i))``;
    call :meth:`set_epoch` at the start of every epoch for fresh augmentations.
    ``augment=False`` only resizes and centre-crops (for validation).
    ``fgr_scale`` is (0.4, 1) for the base network and (0.3, 1) for the refiner.
    """

    def __init__(
        self,
        foregrounds: Sequence[Any],
        backgrounds: Sequence[Any],
        size: Size = 512,
        augment: bool = True,
        seed: int = 0,
        fgr_scale: tuple[float, float] = (0.4, 1.0),
    ) -> None:
        if len(foregrounds) == 0:
            raise ValueError("CompositionDataset needs at least one foreground, got none")
        if len(backgrounds) == 0:
            raise ValueError("CompositionDataset needs at least one background, got none")
        self.foregrounds, self.backgrounds = foregrounds, backgrounds
        self.size = _as_hw(size)
        self.augment = augment
        self.seed = int(seed)
        self.fgr_scale = fgr_scale
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the augmentation parameters of ``epoch`` (like DistributedSampler.set_epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.foregrounds)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} foregrounds")
        rng = np.random.default_rng((self.seed, self.epoch if self.augment else 0, index))
        item = self.foregrounds[index]
        fgr, pha = _get(item, "fgr"), _get(item, "pha")
        if fgr.shape[-2:] != pha.shape[-2:]:
            raise ValueError(
                f"foreground {index}: fgr is {tuple(fgr.shape[-2:])} but pha is {tuple(pha.shape[-2:])}"
            )
        bgr = _get(self.backgrounds[int(rng.integers(len(self.backgrounds)))], "bgr")
        if self.augment:
            fgr, pha = augment_foreground(fgr, pha, self.size, rng, self.fgr_scale)
            bgr = augment_background(bgr, self.size, rng)
        else:
            both = resize_to_cover(torch.cat([fgr, pha]), *self.size).contiguous()
            fgr, pha = both[:3], both[3:].clamp(0, 1)
            bgr = resize_to_cover(bgr, *self.size).contiguous()
        return {"fgr": fgr, "pha": pha, "bgr": bgr}


# --------------------------------------------------------------------------------------
# Downloads (Colab-sized subsets of the official data)
# --------------------------------------------------------------------------------------

#: Google Drive file ids of the public BGMv2 data (bmv2-facts.md, old README revisions).
DATASET_DRIVE_IDS = {
    "PhotoMatte85.zip": "1KpHKYW986Dax9-ZIM7I-HyBoWVcLPuaQ",
    "Backgrounds_Validation.zip": "1FqD-HfwXwbeTswQEIFaQkaVWUh_i6cSy",
    "VideoMatte240K_JPEG_SD.zip": "1-S4F-rB75E8I7YUpHfu3itIl1knFhhFF",
}


_LAYOUT = {"train", "test", "valid", "fgr", "pha"}


def _single_child(folder: Path) -> Path:
    """An archive that wraps everything in one top folder: return that folder.

    A lone ``train``/``test``/``fgr``/``pha`` folder is part of the layout, not a wrapper.
    """
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name.lower() not in _LAYOUT:
        return entries[0]
    return folder


def _download_and_extract(
    archive_name: str,
    root: PathLike,
    folder_name: str,
    downloader: Any,
    keep_archive: bool,
    progress: bool,
) -> Path:
    root = Path(root)
    target = root / folder_name
    if target.is_dir() and any(target.iterdir()):
        return _single_child(target)  # already there: no network
    root.mkdir(parents=True, exist_ok=True)
    archive = fetch(
        archive_name,
        drive_id=DATASET_DRIVE_IDS[archive_name],
        cache_dir=root,
        downloader=downloader,
        progress=progress,
    )
    extract_archive(archive, target, overwrite=target.exists())
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return _single_child(target)


def download_photomatte85(
    root: PathLike, *, downloader: Any = None, keep_archive: bool = False, progress: bool = True
) -> Path:
    """Download and unpack PhotoMatte85 (85 RGBA portraits) under ``root``; return its folder.

    Chapter 06. Skips the download if ``root/PhotoMatte85`` already holds files. The zip is
    saved in ``root`` and deleted after a safe extraction unless ``keep_archive``.
    Read the result with :class:`PhotoMatteDataset`.
    """
    return _download_and_extract(
        "PhotoMatte85.zip", root, "PhotoMatte85", downloader, keep_archive, progress
    )


def download_backgrounds_validation(
    root: PathLike, *, downloader: Any = None, keep_archive: bool = False, progress: bool = True
) -> Path:
    """Download and unpack the ~200 CC-licensed validation backgrounds; return their folder.

    Chapter 06. The 8,000+ training backgrounds of the paper were never released; these
    are the only official ones. Read them with :class:`BackgroundDataset`.
    """
    return _download_and_extract(
        "Backgrounds_Validation.zip", root, "Backgrounds", downloader, keep_archive, progress
    )


VIDEOMATTE_SD_BYTES = 6 * 1024**3


def download_videomatte240k_sd(
    root: PathLike,
    *,
    downloader: Any = None,
    keep_archive: bool = False,
    progress: bool = True,
    check_space: bool = True,
) -> Path:
    """Download and unpack VideoMatte240K JPEG SD (about 6 GB); return its folder.

    Chapter 06. A big download (minutes on Colab, and Drive's daily quota may refuse it):
    a warning says so, and unless ``check_space=False`` we first check that ``root`` has
    room for the archive plus its contents (about 13 GB). Read the result with
    :class:`VideoMatteDataset` (``split="train"`` or ``"test"``).
    """
    root = Path(root)
    target = root / "VideoMatte240K_JPEG_SD"
    if not (target.is_dir() and any(target.iterdir())):
        warnings.warn(
            "VideoMatte240K JPEG SD is a ~6 GB download that unpacks to about as much again; "
            "on Colab put it on the local disk (/content), not on Google Drive.",
            UserWarning,
            stacklevel=2,
        )
        if check_space:
            root.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(root).free
            needed = int(VIDEOMATTE_SD_BYTES * 2.2)
            if free < needed:
                raise OSError(
                    f"not enough free space in {root}: {free / 1e9:.1f} GB free, about "
                    f"{needed / 1e9:.1f} GB needed (pass check_space=False to try anyway)"
                )
    return _download_and_extract(
        "VideoMatte240K_JPEG_SD.zip",
        root,
        "VideoMatte240K_JPEG_SD",
        downloader,
        keep_archive,
        progress,
    )
