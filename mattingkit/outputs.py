"""Output names and the checks made before any work, without torch, OpenCV or FFmpeg.

Chapter 07. The ``mattingkit`` command runs these checks before its slow imports, so a wrong
suffix or an existing output fails in a fraction of a second instead of after ``import torch``;
:mod:`mattingkit.apps.video`, :mod:`mattingkit.io` and the command use the same functions, so the
library and the command say the same thing in the same words.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Union

__all__ = [
    "ALPHA_SUFFIXES",
    "IMAGE_SUFFIXES",
    "OUTPUT_TYPES",
    "TIMESTAMPS_FILE",
    "VIDEO_FORMATS",
    "NotWritableError",
    "check_output_types",
    "check_video_targets",
    "check_writable",
    "command_line_message",
    "exists_message",
    "image_output_paths",
    "is_png_sequence",
    "looks_like_colour",
    "output_paths",
]

PathLike = Union[str, os.PathLike]

#: What can be written: the composite, alpha, foreground, error map and refinement map
#: (1 where a 4x4 patch was refined).
OUTPUT_TYPES = ("composite", "pha", "fgr", "err", "ref")
#: Video files that can be written (suffix -> FFmpeg muxer); no suffix: a PNG sequence folder.
VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
#: Image files that can be written.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
#: Image formats that can store a transparent cut-out.
ALPHA_SUFFIXES = {".png", ".tif", ".tiff", ".webp"}
#: Written beside the frames of a PNG sequence: each frame's timestamp (variable frame rates).
TIMESTAMPS_FILE = "timestamps.csv"


def exists_message(paths: Sequence[PathLike]) -> str:
    """The one wording for outputs that exist: ``X already exists; pass overwrite=True ...``.

    The command line shows it with ``--overwrite`` in place of ``overwrite=True``.
    """
    names = ", ".join(str(p) for p in paths)
    if len(paths) == 1:
        return f"{names} already exists; pass overwrite=True to replace it"
    return f"{names} already exist; pass overwrite=True to replace them"


def command_line_message(error: BaseException) -> str:
    """An error as the one line a command prints, in the command's terms.

    Whitespace folded, the quotes ``KeyError`` adds removed, and :func:`exists_message`'s
    ``overwrite=True`` written as ``--overwrite``.
    """
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, KeyError) and text.startswith(("'", '"')):
        text = text[1:-1]  # KeyError quotes its message
    if isinstance(error, FileExistsError):
        text = text.replace("overwrite=True", "--overwrite")
    return text


def check_output_types(output_types: Sequence[str] | str) -> list[str]:
    """The output types as a list; ``ValueError`` for an unknown, repeated or empty choice."""
    types = [output_types] if isinstance(output_types, str) else list(output_types)
    if not types:
        raise ValueError(f"give at least one output type out of {OUTPUT_TYPES}")
    unknown = [t for t in types if t not in OUTPUT_TYPES]
    if unknown:
        hint = " (the alpha matte is 'pha')" if "alpha" in unknown else ""
        raise ValueError(f"unknown output type(s) {unknown}; choose from {OUTPUT_TYPES}{hint}")
    if len(set(types)) != len(types):
        raise ValueError(f"output types repeat: {types}")
    return types


def _beside(output: Path, types: list[str]) -> dict[str, Path]:
    paths = {types[0]: output}
    for kind in types[1:]:
        paths[kind] = output.with_name(f"{output.stem}_{kind}{output.suffix}")
    return paths


def output_paths(output: PathLike, output_types: Sequence[str] = ("composite",)) -> dict[str, Path]:
    """Where each output of a video goes: the first at ``output``, the others beside it.

    ``out.mp4`` with ``("composite", "pha")`` gives ``out.mp4`` and ``out_pha.mp4``; a path
    without a suffix is a PNG sequence folder: ``frames`` and ``frames_pha``. Raises
    ``ValueError`` for an unknown type, a repeated type or an unsupported suffix.
    """
    types = check_output_types(output_types)
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix and suffix not in VIDEO_FORMATS:
        raise ValueError(
            f"{output}: cannot write {suffix!r}; use a video file ({', '.join(VIDEO_FORMATS)}) "
            "or a folder name without a suffix for a PNG sequence"
        )
    return _beside(output, types)


def image_output_paths(output: PathLike, output_types: Sequence[str]) -> dict[str, Path]:
    """Where each output of an image goes: ``cut.png``, ``cut_pha.png``, ..."""
    types = check_output_types(output_types)
    output = Path(output)
    if output.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(
            f"{output}: an image output needs one of the suffixes {sorted(IMAGE_SUFFIXES)}"
        )
    return _beside(output, types)


def looks_like_colour(text: str) -> bool:
    """'white', '#00ff00', '0,177,64' are colours; 'beach.jpg', 'media/beach' are not."""
    if "," in text or text.startswith("#"):
        return True
    return "/" not in text and "\\" not in text and not Path(text).suffix


def is_png_sequence(path: PathLike) -> bool:
    """An output path without a video suffix is a folder of PNG frames."""
    return Path(path).suffix.lower() not in VIDEO_FORMATS


def check_video_targets(targets: dict[str, Path], source: PathLike, overwrite: bool) -> None:
    """Refuse every problem with the outputs of a video before any work, naming all the paths.

    An existing PNG-sequence folder is replaced (with ``overwrite``) only if it holds nothing
    but frames and their ``timestamps.csv``: anything else in it would be deleted with it.
    """
    source = Path(source)
    for path in targets.values():
        if source.exists() and path.resolve() == source.resolve():
            raise ValueError(f"the output {path} is the source video itself; choose another name")
    existing = [path for path in targets.values() if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(exists_message(existing))
    for path in existing:
        if is_png_sequence(path):
            if not path.is_dir():
                raise ValueError(f"{path} is a file; a PNG sequence output must be a folder")
            strays = [
                p.name
                for p in path.iterdir()
                if p.suffix.lower() != ".png" and p.name != TIMESTAMPS_FILE
            ]
            if strays:  # replacing the folder would delete them
                raise ValueError(
                    f"{path} holds files that are not PNG frames ({', '.join(strays[:3])}); "
                    "not replacing it: choose another output name"
                )
        elif path.is_dir():
            raise ValueError(f"{path} is a folder; a video output must be a file")


class NotWritableError(PermissionError):
    """An output folder that cannot be written (read-only disk, no permission, a file in the
    way), found before any work: ``str()`` names the folder, why, and what to do."""


#: Why a folder cannot be written, in the user's words (by ``errno``).
_WHY = {
    errno.EROFS: "is on a read-only file system",
    errno.EACCES: "is not writable for you (no permission)",
    errno.EPERM: "is not writable for you (no permission)",
    errno.ENOSPC: "is on a full disk",
    getattr(errno, "EDQUOT", -1): "is over your disk quota",
}


def _write_problem(folder: Path) -> str | None:
    """Why nothing can be written to ``folder`` (which may not exist yet) and what to do,
    or None when it can be."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent  # the folder would be created there: it must be writable
    if not existing.is_dir():
        return f"{existing} is a file, not a folder; choose another output folder"
    try:  # a real file, not os.access: as root, access() says yes even on a read-only disk
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".mattingkit-write-check-")
    except OSError as error:
        why = _WHY.get(error.errno or 0, "cannot take new files")
        detail = f"[Errno {error.errno}] {error.strerror}" if error.errno else str(error)
        where = "it" if existing == folder else f"it would be created in {existing}, which"
        return f"{where} {why} ({detail}); choose another output folder, or make it writable"
    os.close(fd)
    os.unlink(probe)
    return None


def check_writable(paths: Iterable[PathLike]) -> None:
    """Refuse outputs whose folder cannot be written, before any work. Chapter 07.

    Each path's folder must exist and take a new file, or be creatable: a small hidden
    probe file is created and deleted there (as root, permissions say yes even on a
    read-only disk). Raises :class:`NotWritableError` naming the folder, why, and what to do.
    """
    seen: set[Path] = set()
    for path in paths:
        folder = Path(path).parent
        if folder in seen:
            continue
        seen.add(folder)
        problem = _write_problem(folder)
        if problem is not None:
            shown = Path.cwd() if folder == Path(".") else folder
            raise NotWritableError(f"cannot write to {shown}: {problem}")
