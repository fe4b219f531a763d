"""Downloads that survive flaky networks, and archive extraction that cannot escape its folder.

Chapter 03 fetches the official weights with :func:`fetch`; the dataset chapters use
:func:`extract_archive`. The rules, because a half-downloaded 150 MB file or a Drive
"quota exceeded" page saved as ``model.pth`` costs students an afternoon:

* A file appears under its final name only after it was downloaded completely and checked
  (size and SHA-256 when known, and "is this an HTML page?" always). Until then it lives
  under a ``*.part`` name, which gdown can resume.
* Sources are tried in order (Google Drive first, then mirrors such as GitHub releases). If
  all fail, you get **one** :class:`DownloadError` that lists every source with a short
  reason and the exact path where a copy downloaded by hand will be picked up next time.
  Offline, that takes milliseconds, not a minute of retries.
* Archives are checked member by member before anything is written: no absolute paths, no
  ``..``, no links pointing outside. They are unpacked into a temporary folder that is
  renamed into place at the end, so an interrupted extraction leaves nothing half-done.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Union

from mattingkit.outputs import exists_message

__all__ = [
    "DownloadError",
    "UnsafeArchiveError",
    "cache_dir",
    "default_downloader",
    "drive_file_url",
    "drive_folder_url",
    "extract_archive",
    "fetch",
    "sha256sum",
]

PathLike = Union[str, os.PathLike]
Downloader = Callable[[str, Path], None]
"""``downloader(source, dest)`` writes the file found at ``source`` (a URL) to ``dest``."""

DEFAULT_TIMEOUT_S = 30.0


class DownloadError(RuntimeError):
    """A file could not be obtained from any source.

    Attributes:
        filename: the file that was wanted.
        attempts: ``[(source, reason), ...]`` in the order they were tried.
        manual_path: where a copy downloaded by hand will be found by the next call.
    """

    def __init__(
        self,
        message: str,
        *,
        filename: str | None = None,
        attempts: Sequence[tuple[str, str]] = (),
        manual_path: Path | None = None,
    ) -> None:
        super().__init__(message)
        self.filename = filename
        self.attempts = list(attempts)
        self.manual_path = manual_path

    def reasons(self) -> str:
        """Why the sources failed, each different reason once: ``"no network: ..."``."""
        unique = dict.fromkeys(reason for _, reason in self.attempts)
        return "; ".join(unique) or "no source is known for it"

    def one_line(self) -> str:
        """The error in one line, for commands that print one: what, why, where a copy goes."""
        tried = len(self.attempts)
        sources = f"{tried} source{'s' if tried != 1 else ''} tried: " if tried else ""
        line = f"could not download {self.filename} ({sources}{self.reasons()})"
        if self.manual_path is not None:
            line += f"; save a copy downloaded by hand as {self.manual_path}"
        return line


class UnsafeArchiveError(ValueError):
    """An archive member would be written (or link) outside the extraction folder."""


class _Rejected(Exception):
    """A download finished but is not the wanted file (its message is the reason)."""


# --------------------------------------------------------------------------------------
# Cache folder and checksums
# --------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """The folder where downloads are kept, created on demand.

    Chapter 03. ``$MATTINGKIT_HOME`` if set, else ``$XDG_CACHE_HOME/mattingkit``, else
    ``~/.cache/mattingkit``. Point ``MATTINGKIT_HOME`` at Google Drive on Colab to keep
    weights across sessions.
    """
    if os.environ.get("MATTINGKIT_HOME"):
        folder = Path(os.environ["MATTINGKIT_HOME"]).expanduser()
    elif os.environ.get("XDG_CACHE_HOME"):
        folder = Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "mattingkit"
    else:
        folder = Path.home() / ".cache" / "mattingkit"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


_cache_dir = cache_dir  # fetch() has a parameter with the same name


def sha256sum(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (fine for multi-GB files). Chapter 03."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml"))


def _verification_problem(
    path: Path, filename: str, sha256: str | None, size: int | None
) -> str | None:
    """Why ``path`` is not the wanted file, or None when every known check passes."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"has {actual_size:,} bytes, expected {size:,}"
    if not filename.lower().endswith((".html", ".htm", ".xml")) and _looks_like_html(path):
        return (
            "is an HTML page, not the file (Google Drive shows such a page when the daily "
            "download quota is exceeded or the file is not shared publicly)"
        )
    if sha256 is not None:
        digest = sha256sum(path)
        if not digest.startswith(sha256.lower()):  # a prefix (torchvision style) is enough
            return f"has SHA-256 {digest}, expected {sha256.lower()}"
    return None


# --------------------------------------------------------------------------------------
# Sources and the default downloader
# --------------------------------------------------------------------------------------
def drive_file_url(file_id: str) -> str:
    """The Google Drive address of one shared file (what gdown and a browser accept)."""
    return f"https://drive.google.com/uc?id={file_id}"


def drive_folder_url(folder_id: str, filename: str) -> str:
    """A source string for a file named ``filename`` somewhere inside a shared Drive folder.

    The ``#filename`` fragment tells :func:`default_downloader` which file to pick; a browser
    simply opens the folder.
    """
    return f"https://drive.google.com/drive/folders/{folder_id}#{filename}"


_FOLDER_RE = re.compile(r"^https://drive\.google\.com/drive/folders/([\w-]+)#(.+)$")


def default_downloader(
    source: str, dest: Path, *, progress: bool = True, timeout: float = DEFAULT_TIMEOUT_S
) -> None:
    """Download ``source`` to ``dest`` with gdown (Drive files, Drive folders, plain URLs).

    gdown keeps its own partial file next to ``dest`` and resumes it on the next call, and
    ``timeout`` bounds every network wait, so an unreachable host fails in seconds. With
    ``progress``, gdown announces a download (and draws its bar) only once the server has
    answered, so nothing claims to be downloading when nothing is.
    """
    import gdown  # imported lazily: only needed when something is really downloaded

    quiet = not progress
    folder = _FOLDER_RE.match(source)
    if folder:
        folder_id, name = folder.groups()
        # Listing the folder is not the download: quiet, so that offline it prints nothing
        # (gdown would write "Retrieving folder contents" before failing).
        listing = gdown.download_folder(
            id=folder_id, skip_download=True, quiet=True, timeout=timeout
        )
        matches = [item for item in listing or [] if Path(item.path).name == name]
        if not matches:
            raise FileNotFoundError(f"no file named {name} in Drive folder {folder_id}")
        result = gdown.download(
            id=matches[0].id, output=str(dest), quiet=quiet, resume=True, timeout=timeout
        )
    else:
        result = gdown.download(
            url=source, output=str(dest), quiet=quiet, resume=True, timeout=timeout
        )
    if result is None:  # older gdown versions return None instead of raising
        raise ConnectionError("gdown could not download the file")


def _short_reason(error: BaseException) -> str:
    """One line saying why a source failed, instead of a 40-line requests traceback."""
    text = str(error)
    host = re.search(r"Failed to resolve '([^']+)'", text) or re.search(r"host='([^']+)'", text)
    if re.search(
        r"Failed to resolve|Name or service not known|Temporary failure in name resolution|"
        r"nodename nor servname|getaddrinfo failed|No address associated",
        text,
    ):
        where = f" {host.group(1)}" if host else ""
        return f"no network: cannot resolve host{where}"
    if re.search(r"timed out|Timeout", text) or isinstance(error, TimeoutError):
        return "timed out (slow or blocked network)"
    if "Connection refused" in text:
        return "connection refused"
    status = getattr(getattr(error, "response", None), "status_code", None) or getattr(
        error, "code", None
    )
    if isinstance(status, int):
        return f"HTTP error {status}"
    if type(error).__name__ == "FileURLRetrievalError":
        return (
            "Google Drive refused the download (daily quota exceeded, or the file is not "
            "shared publicly); try again later or download it in a browser"
        )
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(error).__name__}: {first_line[:200]}".rstrip(": ")


def _check_relative_name(filename: str) -> None:
    path = Path(filename)
    if not filename or path.is_absolute() or ".." in path.parts or filename.endswith(".part"):
        raise ValueError(
            f"filename must be a relative name inside the cache folder, got {filename!r}"
        )


# --------------------------------------------------------------------------------------
# fetch
# --------------------------------------------------------------------------------------
def fetch(
    filename: str,
    *,
    drive_id: str | None = None,
    drive_folder_id: str | None = None,
    urls: Sequence[str] = (),
    sha256: str | None = None,
    size: int | None = None,
    cache_dir: PathLike | None = None,
    downloader: Downloader | None = None,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Return the local path of ``filename``, downloading and verifying it if needed.

    Chapter 03. If ``<cache>/<filename>`` exists and passes the known checks it is returned
    at once (no network). Otherwise the sources are tried in this order: the Drive file
    ``drive_id``, the file of that name inside the Drive folder ``drive_folder_id``, then
    each of ``urls``. Each download goes to ``<filename>.<source>.part``, is checked (size,
    SHA-256 or a prefix of it, not an HTML page) and only then renamed to its final name.

    Args:
        filename: name (or relative path) of the file inside the cache folder.
        drive_id / drive_folder_id / urls: where to look, in that order.
        sha256, size: expected checksum (full hex or a prefix) and byte count, when known.
        cache_dir: folder to use instead of :func:`cache_dir`.
        downloader: ``downloader(source, dest)``; defaults to :func:`default_downloader`
            (gdown). Tests pass a fake one.
        progress: show gdown's progress bar.
        timeout: seconds for each network wait.

    Raises:
        DownloadError: every source failed (message lists each with its reason and the
            path where a copy downloaded by hand will be found), or a file already at the
            final path fails verification (it is left untouched for you to inspect).
    """
    _check_relative_name(filename)
    # Absolute, so that the advice "save a copy as PATH" holds from any folder.
    folder = Path(cache_dir).expanduser().absolute() if cache_dir is not None else _cache_dir()
    final = folder / filename
    final.parent.mkdir(parents=True, exist_ok=True)

    if final.exists():
        problem = _verification_problem(final, filename, sha256, size)
        if problem is None:
            return final
        raise DownloadError(
            f"{final} exists but {problem}. mattingkit only ever puts verified files there, "
            "so it was copied by hand or damaged: delete it (a fresh download follows) or "
            "replace it with a good copy.",
            filename=filename,
            manual_path=final,
        )

    sources: list[str] = []
    if drive_id:
        sources.append(drive_file_url(drive_id))
    if drive_folder_id:
        sources.append(drive_folder_url(drive_folder_id, Path(filename).name))
    sources.extend(urls)
    if downloader is None:
        downloader = functools.partial(default_downloader, progress=progress, timeout=timeout)

    attempts: list[tuple[str, str]] = []
    for source in sources:
        tag = hashlib.sha1(source.encode()).hexdigest()[:8]
        staging = final.with_name(f"{final.name}.{tag}.part")
        staging.unlink(missing_ok=True)  # a finished-but-unverified leftover: start over
        try:
            downloader(source, staging)
            if not staging.exists():
                raise _Rejected("the download produced no file")
            problem = _verification_problem(staging, filename, sha256, size)
            if problem is not None:
                raise _Rejected(f"the downloaded file {problem}")
            os.replace(staging, final)
        except KeyboardInterrupt:
            staging.unlink(missing_ok=True)
            raise
        except Exception as error:  # noqa: BLE001 -- every failure is reported below
            staging.unlink(missing_ok=True)
            reason = str(error) if isinstance(error, _Rejected) else _short_reason(error)
            attempts.append((source, reason))
            continue
        for leftover in final.parent.glob(f"{glob.escape(final.name)}.*.part*"):
            leftover.unlink(missing_ok=True)  # resumable pieces from other sources
        return final

    raise _all_sources_failed(filename, final, attempts, sha256)


def _all_sources_failed(
    filename: str, final: Path, attempts: list[tuple[str, str]], sha256: str | None
) -> DownloadError:
    """One line per failed source, then one line saying where a copy made by hand goes."""
    if attempts:
        lines = [f"Could not download {filename}:"]
        lines += [f"  {source}: {reason}" for source, reason in attempts]
    else:
        lines = [f"Could not download {filename}: no source (Drive id or URL) is known for it."]
    check = f" (its SHA-256 must start with {sha256.lower()})" if sha256 else ""
    lines.append(
        f"A copy downloaded by hand is used if saved as {final}{check}; MATTINGKIT_HOME sets "
        "the folder."
    )
    return DownloadError("\n".join(lines), filename=filename, attempts=attempts, manual_path=final)


# --------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------
def _inside(root: str, candidate: str) -> bool:
    root = os.path.normpath(root)
    candidate = os.path.normpath(candidate)
    return candidate == root or candidate.startswith(root + os.sep)


def _check_member(archive: Path, root: str, name: str, link: str | None, hard: bool) -> None:
    """Refuse a member that would land, or point, outside ``root``."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refused")
    if not _inside(root, os.path.join(root, name)):
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} would be written outside the target folder; refused"
        )
    if link is not None:
        if link.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", link):
            raise UnsafeArchiveError(
                f"{archive}: link {name!r} -> {link!r} points to an absolute path; refused"
            )
        base = root if hard else os.path.join(root, os.path.dirname(name))
        if not _inside(root, os.path.join(base, link)):
            raise UnsafeArchiveError(
                f"{archive}: link {name!r} -> {link!r} points outside the target folder; refused"
            )


def _extract_zip(archive: Path, tmp: str) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            mode = info.external_attr >> 16
            link = zf.read(info).decode("utf-8", "replace") if stat.S_ISLNK(mode) else None
            _check_member(archive, tmp, info.filename, link, hard=False)
        zf.extractall(tmp)  # zipfile writes symlinks as small text files, never as links


def _extract_tar(archive: Path, tmp: str) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for member in members:
            if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                raise UnsafeArchiveError(
                    f"{archive}: member {member.name!r} is a device or pipe; refused"
                )
            link = member.linkname if (member.issym() or member.islnk()) else None
            _check_member(archive, tmp, member.name, link, hard=member.islnk())
        if hasattr(tarfile, "data_filter"):  # Python >= 3.9.17 / 3.11.4: belt and braces
            tf.extractall(tmp, members=members, filter="data")
        else:  # pragma: no cover - old Pythons; every member was checked above
            tf.extractall(tmp, members=members)


def extract_archive(archive: PathLike, target: PathLike, *, overwrite: bool = False) -> Path:
    """Unpack a zip or tar(.gz/.bz2/.xz) archive into the folder ``target``; return it.

    Chapter 06. Every member is checked first; one that would escape ``target`` (absolute
    path, ``..``, or a symlink/hardlink pointing outside) raises :class:`UnsafeArchiveError`
    before anything is written. The archive is unpacked into a hidden temporary folder next
    to ``target`` that is renamed to ``target`` only when complete.

    Raises:
        FileNotFoundError: the archive is missing.
        FileExistsError: ``target`` exists and ``overwrite`` is False.
        ValueError: the file is neither zip nor tar (e.g. a truncated download).
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    if target.exists() and not overwrite:
        raise FileExistsError(exists_message([target]))
    if zipfile.is_zipfile(archive):
        extract = _extract_zip
    elif tarfile.is_tarfile(archive):
        extract = _extract_tar
    else:
        raise ValueError(
            f"{archive} is neither a zip nor a tar archive (an incomplete download, or an "
            "HTML error page saved under the archive's name?)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".extracting")
    try:
        extract(archive, tmp)
        if target.exists():  # overwrite=True: swap, then remove the old tree
            old = tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old")
            os.rmdir(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
