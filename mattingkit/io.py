"""Reading and writing images, and writing any file atomically.

Chapter 01 reads its first frame/clean-plate pair with :func:`read_image`; every chapter
that saves something goes through :func:`write_image` or :func:`atomic_write`.

Conventions (the same everywhere in mattingkit):

* Inside the library images are ``torch.float32`` tensors ``(C, H, W)`` in ``[0, 1]``,
  channels in **RGB** order. OpenCV works in BGR: we convert once, here, at the boundary.
* EXIF orientation is **ignored**: pixels come back exactly as stored in the file. A frame
  and its clean plate must line up pixel for pixel, video frames carry no EXIF at all, and
  ground-truth mattes are stored unrotated, so honouring the tag for some files and not for
  others would silently misalign pairs. (Decoding with ``cv2.IMREAD_UNCHANGED`` ignores
  the tag; plain ``cv2.imread`` would rotate JPEGs, so do not mix the two.)
* Writes go to a temporary file in the destination folder that is renamed over the target
  only once it is complete, so an interrupted run never leaves half an image behind, and an
  existing file is never replaced unless you pass ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Union

import cv2
import numpy as np
import torch

from mattingkit.outputs import check_writable, exists_message

__all__ = ["atomic_write", "read_alpha", "read_image", "write_image"]

PathLike = Union[str, os.PathLike]

# Read once: NamedTemporaryFile creates files with mode 0600, and a finished file should get
# the permissions an ordinary ``open(path, "w")`` would give it.
_UMASK = os.umask(0)
os.umask(_UMASK)


# --------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_write(
    path: PathLike, mode: str = "wb", *, overwrite: bool = True, encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` and move it onto ``path`` only on success.

    Chapter 01. Use it like ``open``::

        with atomic_write("model.pth") as f:
            torch.save(state_dict, f)

    The temporary file lives in the same folder (so the final ``os.replace`` is atomic on
    every OS), is flushed and ``fsync``-ed before the rename, and is deleted if the block
    raises, so readers see either the old file or the complete new one, never a torn one.
    Missing parent folders are created; a folder that cannot be written raises
    :class:`mattingkit.outputs.NotWritableError`, naming it and why.

    Args:
        path: the final file.
        mode: ``"wb"`` (default) or ``"w"`` (text, UTF-8 unless ``encoding`` says otherwise).
        overwrite: if False and ``path`` exists, raise ``FileExistsError`` before writing.
        encoding: text encoding for ``mode="w"``.
    """
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_write supports mode 'w' or 'wb', got {mode!r}")
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(exists_message([path]))
    binary = "b" in mode
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError:
        check_writable([path])  # the folder and why, not the hidden temporary file's name
        raise
    tmp = Path(tmp_name)
    try:
        with os.fdopen(
            fd, "wb" if binary else "w", encoding=None if binary else (encoding or "utf-8")
        ) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        if not overwrite and path.exists():  # appeared while we were writing
            raise FileExistsError(exists_message([path]))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------
def _decode(path: PathLike) -> np.ndarray:
    """Decode an image file with OpenCV, keeping bit depth and channels as stored."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"expected an image file but {path} is a folder")
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)  # also works for non-ASCII paths
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(
            f"could not read {path} as an image ({data.size} bytes): the file is empty, "
            "truncated, or not in a format OpenCV can decode (PNG, JPEG, BMP, TIFF, WebP, ...)"
        )
    return image


def _to_unit_float(image: np.ndarray, path: PathLike) -> np.ndarray:
    """Scale 8-bit, 16-bit or float pixels to float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if np.issubdtype(image.dtype, np.floating):  # e.g. 32-bit TIFF/EXR: clip HDR values
        return np.clip(image.astype(np.float32), 0.0, 1.0)
    raise ValueError(f"{path}: unsupported pixel type {image.dtype}")


def _split_channels(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Return (RGB (H,W,3), alpha (H,W) or None) from a decoded OpenCV array."""
    if image.ndim == 2:  # grey
        return np.repeat(image[:, :, None], 3, axis=2), None
    channels = image.shape[2]
    if channels == 1:
        return np.repeat(image, 3, axis=2), None
    if channels == 2:  # grey + alpha
        return np.repeat(image[:, :, :1], 3, axis=2), image[:, :, 1]
    if channels == 3:
        return image[:, :, ::-1], None  # BGR -> RGB
    if channels == 4:
        return image[:, :, 2::-1], image[:, :, 3]  # BGRA -> RGB, A
    raise ValueError(f"unsupported number of channels: {channels}")


def read_image(path: PathLike, *, with_alpha: bool = False) -> torch.Tensor:
    """Read an image as a float32 RGB tensor ``(3, H, W)`` in ``[0, 1]``.

    Chapter 01. 8-bit and 16-bit files are scaled to [0, 1]; grey images are repeated to
    three channels. An alpha channel is **dropped** (the colours are returned as stored,
    not composited) unless ``with_alpha=True``, which returns ``(4, H, W)`` RGBA, alpha last
    (1 where the file has no alpha). That is how PhotoMatte85 ships its ground truth: RGBA
    PNGs whose alpha channel is the matte. EXIF orientation is ignored (see module doc).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a decodable image (message names the path).
    """
    raw = _decode(path)
    rgb, alpha = _split_channels(raw)
    rgb = _to_unit_float(np.ascontiguousarray(rgb), path)
    tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
    if not with_alpha:
        return tensor
    if alpha is None:
        alpha_t = torch.ones((1, *tensor.shape[1:]), dtype=torch.float32)
    else:
        alpha_t = torch.from_numpy(_to_unit_float(np.ascontiguousarray(alpha), path))[None]
    return torch.cat([tensor, alpha_t], dim=0)


def read_alpha(path: PathLike) -> torch.Tensor:
    """Read a matte as a float32 tensor ``(1, H, W)`` in ``[0, 1]``.

    Chapter 02. Accepts the ways mattes are stored in practice: a grey image (the usual
    ``pha/*.png``), an RGBA image whose alpha channel is the matte (PhotoMatte85), or an RGB
    image whose three channels are equal. Anything else is ambiguous and raises ValueError.
    """
    raw = _decode(path)
    if raw.ndim == 2:
        matte = raw
    elif raw.shape[2] in (2, 4):
        matte = raw[:, :, -1]
    elif raw.shape[2] == 1:
        matte = raw[:, :, 0]
    elif np.array_equal(raw[:, :, 0], raw[:, :, 1]) and np.array_equal(raw[:, :, 1], raw[:, :, 2]):
        matte = raw[:, :, 0]
    else:
        raise ValueError(
            f"{path} is a colour image, not a matte: expected grey, RGBA or equal RGB channels"
        )
    return torch.from_numpy(_to_unit_float(np.ascontiguousarray(matte), path))[None]


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------
_JPEG_SUFFIXES = {".jpg", ".jpeg", ".jpe"}


def _to_hwc_array(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Torch tensors are (C,H,W) or (1,C,H,W); numpy arrays are (H,W,C); 2-D is grey."""
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError(
                    f"write_image takes one image, got a batch of {t.shape[0]} (shape "
                    f"{tuple(t.shape)}); index it, e.g. image[0]"
                )
            t = t[0]
        if t.ndim == 3:
            if t.shape[0] not in (1, 3, 4):
                raise ValueError(
                    f"a tensor image must be (C, H, W) with C in 1, 3, 4; got shape {tuple(t.shape)}"
                )
            t = t.permute(1, 2, 0)
        elif t.ndim != 2:
            raise ValueError(f"expected a (C, H, W) or (H, W) tensor, got shape {tuple(t.shape)}")
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        array = t.numpy()
    elif isinstance(image, np.ndarray):
        array = image
        if array.ndim == 3 and array.shape[2] not in (1, 3, 4):
            raise ValueError(
                f"a numpy image must be (H, W, C) with C in 1, 3, 4; got shape {array.shape}"
            )
        if array.ndim not in (2, 3):
            raise ValueError(f"expected an (H, W, C) or (H, W) array, got shape {array.shape}")
    else:
        raise TypeError(f"expected a torch.Tensor or numpy.ndarray, got {type(image).__name__}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return array


def _to_storable(array: np.ndarray, suffix: str) -> np.ndarray:
    """Convert to uint8 (or keep uint16 for PNG/TIFF), RGB(A) -> BGR(A)."""
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("image contains NaN or infinite values")
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype == np.uint16:
        if suffix not in (".png", ".tif", ".tiff"):
            raise ValueError(f"16-bit images can only be written as PNG or TIFF, not {suffix}")
    elif array.dtype != np.uint8:
        raise ValueError(
            f"unsupported pixel type {array.dtype}: use float in [0, 1], uint8 or uint16"
        )
    if array.ndim == 3:
        if array.shape[2] == 4 and suffix in _JPEG_SUFFIXES:
            raise ValueError("JPEG cannot store an alpha channel; write a .png instead")
        conversion = cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        array = cv2.cvtColor(np.ascontiguousarray(array), conversion)
    return np.ascontiguousarray(array)


def write_image(
    path: PathLike,
    image: torch.Tensor | np.ndarray,
    *,
    overwrite: bool = False,
    jpeg_quality: int = 95,
) -> Path:
    """Write an RGB, RGBA or single-channel image atomically; return its path.

    Chapter 01. ``image`` is a torch tensor ``(C, H, W)`` (or ``(1, C, H, W)``) or a numpy
    array ``(H, W, C)``, with C = 1 (matte), 3 (RGB) or 4 (RGBA), or 2-D grey. Floats are
    clipped to [0, 1] and stored as 8 bits; uint8 is stored as is; uint16 only in PNG/TIFF.
    The format follows the suffix (``.png``, ``.jpg``, ...). An existing file is kept and
    ``FileExistsError`` raised unless ``overwrite=True``: nothing you made is replaced
    silently.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not suffix:
        raise ValueError(f"{path} has no suffix: add .png or .jpg so the format is known")
    if not overwrite and path.exists():
        raise FileExistsError(exists_message([path]))
    array = _to_storable(_to_hwc_array(image), suffix)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if suffix in _JPEG_SUFFIXES else []
    try:
        ok, encoded = cv2.imencode(suffix, array, params)
    except cv2.error as error:
        raise ValueError(f"OpenCV cannot write {suffix} files ({path}): {error}") from None
    if not ok:
        raise ValueError(f"OpenCV could not encode the image as {suffix} for {path}")
    with atomic_write(path, "wb", overwrite=overwrite) as f:
        f.write(encoded.tobytes())
    return path


# --------------------------------------------------------------------------------------
# Fitting an image to a frame
# --------------------------------------------------------------------------------------
