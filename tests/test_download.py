"""Tests for mattingkit.weights.download, all offline: fake downloaders and archives made here."""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from mattingkit.weights.download import (
    DownloadError,
    UnsafeArchiveError,
    cache_dir,
    drive_file_url,
    extract_archive,
    fetch,
    sha256sum,
)

PAYLOAD = b"pretend these are weights " * 100
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class FakeDownloader:
    """Records calls; per source either writes bytes or raises."""

    def __init__(self, behaviour: dict[str, bytes | Exception]):
        self.behaviour = behaviour
        self.calls: list[str] = []

    def __call__(self, source: str, dest: Path) -> None:
        self.calls.append(source)
        outcome = self.behaviour[source]
        if isinstance(outcome, Exception):
            dest.write_bytes(b"partial")  # a failed download may leave bytes behind
            raise outcome
        dest.write_bytes(outcome)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_cache_dir_honours_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MATTINGKIT_HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" and (tmp_path / "home").is_dir()
    monkeypatch.delenv("MATTINGKIT_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "mattingkit"


def test_fake_download_succeeds_and_verifies(tmp_path):
    url = "https://mirror.example/w.pth"
    fake = FakeDownloader({url: PAYLOAD})
    path = fetch(
        "w.pth", urls=[url], sha256=PAYLOAD_SHA, size=len(PAYLOAD), cache_dir=tmp_path,
        downloader=fake,
    )  # fmt: skip
    assert path == tmp_path / "w.pth" and path.read_bytes() == PAYLOAD
    assert sha256sum(path) == PAYLOAD_SHA
    assert _files(tmp_path) == ["w.pth"]  # no .part left behind


def test_cached_file_is_reused_without_downloading(tmp_path):
    (tmp_path / "w.pth").write_bytes(PAYLOAD)
    fake = FakeDownloader({})
    assert fetch("w.pth", urls=["https://x/w.pth"], sha256=PAYLOAD_SHA[:10], cache_dir=tmp_path,
                 downloader=fake) == tmp_path / "w.pth"  # fmt: skip
    assert fake.calls == []


def test_cached_file_that_fails_verification_is_kept_and_reported(tmp_path):
    (tmp_path / "w.pth").write_bytes(b"something else")
    with pytest.raises(DownloadError, match="SHA-256") as info:
        fetch("w.pth", urls=["u"], sha256=PAYLOAD_SHA, cache_dir=tmp_path,
              downloader=FakeDownloader({}))  # fmt: skip
    assert (tmp_path / "w.pth").read_bytes() == b"something else"  # user's file untouched
    assert info.value.manual_path == tmp_path / "w.pth"


@pytest.mark.parametrize(
    ("check", "message"),
    [({"sha256": "0" * 64}, "SHA-256"), ({"size": 5}, "expected 5")],
)
def test_checksum_or_size_mismatch_leaves_no_file(tmp_path, check, message):
    fake = FakeDownloader({"https://m/w.pth": PAYLOAD})
    with pytest.raises(DownloadError, match=message):
        fetch("w.pth", urls=["https://m/w.pth"], cache_dir=tmp_path, downloader=fake, **check)
    assert _files(tmp_path) == []


def test_html_page_instead_of_weights_is_rejected(tmp_path):
    quota = b"<!DOCTYPE html><html><title>Google Drive - Quota exceeded</title></html>"
    fake = FakeDownloader({drive_file_url("abc"): quota})
    with pytest.raises(DownloadError, match="HTML page"):
        fetch("w.pth", drive_id="abc", cache_dir=tmp_path, downloader=fake)
    assert _files(tmp_path) == []


def test_first_mirror_fails_second_succeeds(tmp_path):
    fake = FakeDownloader(
        {
            drive_file_url("abc"): ConnectionError("Failed to resolve 'drive.google.com'"),
            "https://github.example/w.pth": PAYLOAD,
        }
    )
    path = fetch("w.pth", drive_id="abc", urls=["https://github.example/w.pth"],
                 sha256=PAYLOAD_SHA, cache_dir=tmp_path, downloader=fake)  # fmt: skip
    assert fake.calls == [drive_file_url("abc"), "https://github.example/w.pth"]
    assert path.read_bytes() == PAYLOAD and _files(tmp_path) == ["w.pth"]


def test_all_sources_fail_gives_one_error_listing_everything(tmp_path, capsys):
    sources = {
        drive_file_url("abc"): ConnectionError(
            "HTTPSConnectionPool(host='drive.google.com', port=443): Max retries exceeded "
            "(Caused by NameResolutionError(\"Failed to resolve 'drive.google.com'\"))"
        ),
        "https://drive.google.com/drive/folders/F#w.pth": TimeoutError("read timed out"),
        "https://github.example/w.pth": RuntimeError("HTTP 404"),
    }
    fake = FakeDownloader(sources)
    with pytest.raises(DownloadError) as info:
        fetch("w.pth", drive_id="abc", drive_folder_id="F", urls=["https://github.example/w.pth"],
              cache_dir=tmp_path, downloader=fake)  # fmt: skip
    message = str(info.value)
    lines = message.splitlines()
    # A header, one plain line per source (its address and why it failed), one line of advice.
    assert lines[0] == "Could not download w.pth:" and len(lines) == len(sources) + 2, lines
    for line, source in zip(lines[1:], sources):
        assert line.startswith(f"  {source}: ")
    assert lines[1].endswith("no network: cannot resolve host drive.google.com")
    assert lines[2].endswith("timed out (slow or blocked network)")
    assert str(tmp_path / "w.pth") in lines[-1]  # where to put a manual copy
    assert info.value.reasons() == (
        "no network: cannot resolve host drive.google.com; timed out (slow or blocked network); "
        "RuntimeError: HTTP 404"
    )
    printed = capsys.readouterr()
    assert printed.out == printed.err == ""  # nothing claimed to be downloading
    assert [s for s, _ in info.value.attempts] == list(sources)
    assert _files(tmp_path) == []  # partial bytes removed
    # Putting a copy at the advertised path makes the next call succeed offline.
    info.value.manual_path.write_bytes(PAYLOAD)
    assert fetch("w.pth", drive_id="abc", cache_dir=tmp_path, downloader=fake).exists()


def test_no_source_at_all(tmp_path):
    with pytest.raises(DownloadError, match="no source"):
        fetch("w.pth", cache_dir=tmp_path)


@pytest.mark.parametrize("bad", ["../w.pth", "/etc/passwd", "", "w.pth.part"])
def test_filename_must_stay_inside_cache(tmp_path, bad):
    with pytest.raises(ValueError, match="filename"):
        fetch(bad, urls=["u"], cache_dir=tmp_path, downloader=FakeDownloader({}))


def test_real_gdown_offline_gives_one_error_and_prints_nothing(tmp_path, capfd):
    """The default downloader (gdown + requests) on an offline machine, progress on: one
    error naming each source, and not a word on stdout or stderr (no "Downloading ...",
    no gdown "Retrieving folder contents")."""
    pytest.importorskip("gdown")
    try:
        fetch("pytorch_mobilenetv2.pth", drive_id="1b2FQH0yULaiBwe4ORUvSxXpdWLipjLsI",
              drive_folder_id="1cbetlrKREitIgjnIikG1HdM4x72FtgBh",
              urls=["https://github.com/PeterL1n/BackgroundMattingV2/releases/download/v1.0.0/"
                    "pytorch_mobilenetv2.pth"],
              cache_dir=tmp_path, progress=True, timeout=3)  # fmt: skip
    except DownloadError as error:
        assert len(error.attempts) == 3
        assert len(str(error).splitlines()) == 3 + 2
    else:  # pragma: no cover - only with network access
        pytest.skip("network available: the file was downloaded")
    printed = capfd.readouterr()
    assert printed.out == printed.err == ""
    assert not list(tmp_path.glob("*.pth"))


# --------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------
def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def test_good_zip_extracts(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"set/fgr/0.png": b"f", "set/pha/0.png": b"p"})
    out = extract_archive(archive, tmp_path / "out")
    assert (out / "set/fgr/0.png").read_bytes() == b"f"
    assert (out / "set/pha/0.png").read_bytes() == b"p"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "out"]  # no temp folder
    with pytest.raises(FileExistsError, match="overwrite=True"):
        extract_archive(archive, out)
    (out / "mine.txt").write_text("x")
    extract_archive(archive, out, overwrite=True)
    assert not (out / "mine.txt").exists() and (out / "set/pha/0.png").exists()


def test_good_tar_gz_extracts_with_internal_link(tmp_path):
    file = tarfile.TarInfo("data/a.txt")
    link = tarfile.TarInfo("data/b.txt")
    link.type, link.linkname = tarfile.SYMTYPE, "a.txt"
    archive = _tar(tmp_path / "a.tar.gz", [file, link], {"data/a.txt": b"hello"})
    out = extract_archive(archive, tmp_path / "out")
    assert (out / "data/b.txt").read_bytes() == b"hello"


def test_zip_with_parent_traversal_is_refused_and_nothing_written(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    archive = _zip(tmp_path / "evil.zip", {"ok.txt": b"ok", "../evil.txt": b"pwned"})
    with pytest.raises(UnsafeArchiveError, match=r"\.\./evil\.txt"):
        extract_archive(archive, work / "out")
    assert not (tmp_path / "evil.txt").exists() and not (work / "evil.txt").exists()
    assert list(work.iterdir()) == []  # no target, no temp folder


@pytest.mark.parametrize(
    ("name", "kind", "linkname"),
    [
        ("../evil.txt", tarfile.REGTYPE, ""),
        ("/tmp/evil_abs.txt", tarfile.REGTYPE, ""),
        ("link", tarfile.SYMTYPE, "../../outside"),
        ("link", tarfile.SYMTYPE, "/etc/passwd"),
        ("hard", tarfile.LNKTYPE, "../outside"),
    ],
)
def test_tar_escapes_are_refused(tmp_path, name, kind, linkname):
    work = tmp_path / "work"
    work.mkdir()
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    data = {name: b"pwned"} if kind == tarfile.REGTYPE else {}
    archive = _tar(tmp_path / "evil.tar.gz", [info], data)
    with pytest.raises(UnsafeArchiveError, match="refused"):
        extract_archive(archive, work / "out")
    assert list(work.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil_abs.txt").exists()


def test_not_an_archive(tmp_path):
    fake = tmp_path / "data.zip"
    fake.write_bytes(b"<html>quota exceeded</html>")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        extract_archive(fake, tmp_path / "out")
    with pytest.raises(FileNotFoundError):
        extract_archive(tmp_path / "missing.zip", tmp_path / "out")


def test_interrupted_extraction_leaves_nothing(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "a.zip", {"x.txt": b"x"})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile.ZipFile, "extractall", crash)
    with pytest.raises(KeyboardInterrupt):
        extract_archive(archive, tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["a.zip"]


def test_default_downloader_finds_a_file_inside_a_drive_folder(tmp_path, monkeypatch):
    """The folder source lists the folder with gdown and downloads the file of that name."""
    gdown = pytest.importorskip("gdown")
    entry = importlib.import_module("gdown.download").GoogleDriveFileToDownload
    calls = []

    def fake_folder(id, skip_download, **kwargs):  # noqa: A002 - gdown's parameter name
        assert skip_download
        return [
            entry("id-other", "PyTorch/other.pth", None),
            entry("id-w", "TorchScript/w.pth", None),
        ]

    def fake_download(url=None, output=None, id=None, **kwargs):  # noqa: A002
        calls.append((url, id, kwargs.get("resume"), kwargs.get("timeout")))
        Path(output).write_bytes(PAYLOAD)
        return output

    monkeypatch.setattr(gdown, "download_folder", fake_folder)
    monkeypatch.setattr(gdown, "download", fake_download)
    path = fetch("w.pth", drive_folder_id="FOLDER", cache_dir=tmp_path, progress=False, timeout=7)
    assert path.read_bytes() == PAYLOAD
    assert calls == [(None, "id-w", True, 7)]
    with pytest.raises(DownloadError, match="no file named missing.pth"):
        fetch("missing.pth", drive_folder_id="FOLDER", cache_dir=tmp_path, progress=False)
