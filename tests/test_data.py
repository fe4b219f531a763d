"""Tests for mattingkit.data.datasets: readers, foregrounds on backgrounds, downloads."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mattingkit.data import datasets as data
from mattingkit.data.datasets import (
    BackgroundDataset,
    CompositionDataset,
    PhotoMatteDataset,
    VideoMatteDataset,
    download_backgrounds_validation,
    download_photomatte85,
    download_videomatte240k_sd,
)
from mattingkit.data.synthetic import SyntheticMattingDataset
from mattingkit.weights.download import UnsafeArchiveError

torch.set_num_threads(1)


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def _rgb(h=20, w=30, value=128):
    return np.full((h, w, 3), value, np.uint8)


# --------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------


def _videomatte_tree(root: Path, clips=("0000", "0001"), frames=3) -> None:
    for clip in clips:
        for f in range(frames):
            _write(root / "fgr" / clip / f"{f:05d}.jpg", _rgb(value=40 + f))
            _write(root / "pha" / clip / f"{f:05d}.jpg", np.full((20, 30), 255, np.uint8))


def test_videomatte_reads_pairs(tmp_path):
    _videomatte_tree(tmp_path / "train")
    ds = VideoMatteDataset(tmp_path, split="train")
    assert len(ds) == 6 and ds.clips == ["0000", "0001"]
    item = ds[4]
    assert item["fgr"].shape == (3, 20, 30) and item["pha"].shape == (1, 20, 30)
    assert item["fgr"].dtype == torch.float32 and float(item["pha"].min()) == 1.0


def test_videomatte_errors_name_folders_and_counts(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        VideoMatteDataset(tmp_path / "missing")
    _videomatte_tree(tmp_path / "train")
    with pytest.raises(FileNotFoundError, match="split='train'"):
        VideoMatteDataset(tmp_path)
    (tmp_path / "train" / "pha" / "0001" / "00002.jpg").unlink()
    with pytest.raises(ValueError, match=r"6 frames in .*fgr.* but 5 in .*pha"):
        VideoMatteDataset(tmp_path / "train")
    empty = tmp_path / "empty"
    (empty / "fgr").mkdir(parents=True)
    (empty / "pha").mkdir()
    with pytest.raises(FileNotFoundError, match="contains no images"):
        VideoMatteDataset(empty)


def test_videomatte_mismatched_names(tmp_path):
    _videomatte_tree(tmp_path, clips=("a",), frames=2)
    (tmp_path / "pha" / "a" / "00001.jpg").rename(tmp_path / "pha" / "a" / "00009.jpg")
    with pytest.raises(ValueError, match="no alpha twin"):
        VideoMatteDataset(tmp_path)


def test_photomatte_reads_rgba_alpha_as_ground_truth(tmp_path):
    bgra = np.zeros((16, 24, 4), np.uint8)
    bgra[..., 0] = 200  # blue in OpenCV's BGR order
    bgra[..., 3] = 0
    bgra[4:12, 6:18, 3] = 255
    bgra[4:12, 6, 3] = 128
    _write(tmp_path / "sub" / "person.png", bgra)
    ds = PhotoMatteDataset(tmp_path)
    item = ds[0]
    assert len(ds) == 1
    assert item["fgr"].shape == (3, 16, 24) and item["pha"].shape == (1, 16, 24)
    assert item["pha"][0, 5, 10] == 1.0 and item["pha"][0, 0, 0] == 0.0
    assert item["pha"][0, 5, 6] == pytest.approx(128 / 255)
    assert item["fgr"][2, 0, 0] == pytest.approx(200 / 255)  # RGB order, straight colour
    assert item["fgr"][0, 0, 0] == 0.0


def test_photomatte_refuses_png_without_alpha(tmp_path):
    _write(tmp_path / "flat.png", _rgb())
    with pytest.raises(ValueError, match="no alpha channel"):
        PhotoMatteDataset(tmp_path)[0]
    with pytest.raises(FileNotFoundError):
        PhotoMatteDataset(tmp_path / "nothing-here")


def test_background_dataset_is_recursive_and_sorted(tmp_path):
    _write(tmp_path / "b" / "2.png", _rgb(value=10))
    _write(tmp_path / "a" / "1.jpg", _rgb(value=200))
    (tmp_path / "notes.txt").write_text("not an image")
    ds = BackgroundDataset(tmp_path)
    assert [p.name for p in ds.files] == ["1.jpg", "2.png"]
    assert ds[1]["bgr"].shape == (3, 20, 30)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        BackgroundDataset(empty)


# --------------------------------------------------------------------------------------
# Foregrounds on backgrounds (the augmentations themselves: tests/test_augment.py)
# --------------------------------------------------------------------------------------


def test_composition_dataset_is_reproducible_and_epoch_dependent():
    foregrounds = SyntheticMattingDataset(3, size=(40, 56), seed=1)
    backgrounds = [torch.full((3, 30, 30), v) for v in (0.1, 0.5, 0.9)]
    ds = CompositionDataset(foregrounds, backgrounds, size=(32, 48), seed=5)
    assert len(ds) == 3
    a, b = ds[1], CompositionDataset(foregrounds, backgrounds, size=(32, 48), seed=5)[1]
    assert set(a) == {"fgr", "pha", "bgr"}
    assert a["fgr"].shape == (3, 32, 48) and a["pha"].shape == (1, 32, 48)
    assert a["bgr"].shape == (3, 32, 48)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ds.set_epoch(1)
    c = ds[1]
    assert not torch.equal(a["pha"], c["pha"])
    plain = CompositionDataset(foregrounds, backgrounds, size=(32, 48), augment=False)[0]
    assert plain["pha"].shape == (1, 32, 48)
    with pytest.raises(ValueError, match="background"):
        CompositionDataset(foregrounds, [], size=32)


def test_composition_dataset_with_readers(tmp_path):
    _videomatte_tree(tmp_path / "vm")
    _write(tmp_path / "bg" / "x.jpg", _rgb(40, 60, 90))
    ds = CompositionDataset(
        VideoMatteDataset(tmp_path / "vm"), BackgroundDataset(tmp_path / "bg"), size=24
    )
    item = ds[0]
    assert item["bgr"].shape == (3, 24, 24) and item["pha"].shape == (1, 24, 24)


# --------------------------------------------------------------------------------------
# Downloads with a fake downloader
# --------------------------------------------------------------------------------------


def _png_bytes(bgra: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", bgra)
    assert ok
    return buf.tobytes()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return buf.getvalue()


class FakeDrive:
    def __init__(self, payload: bytes) -> None:
        self.payload, self.calls = payload, []

    def __call__(self, source: str, dest: Path) -> None:
        self.calls.append(source)
        Path(dest).write_bytes(self.payload)


def test_download_photomatte85_with_fake_downloader(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[2:6, 2:6] = 255
    fake = FakeDrive(_zip_bytes({"PhotoMatte85/a.png": _png_bytes(rgba)}))
    folder = download_photomatte85(tmp_path, downloader=fake, progress=False)
    assert folder == tmp_path / "PhotoMatte85" / "PhotoMatte85"
    assert len(fake.calls) == 1 and "1KpHKYW986Dax9-ZIM7I-HyBoWVcLPuaQ" in fake.calls[0]
    assert PhotoMatteDataset(folder)[0]["pha"].max() == 1.0
    assert not (tmp_path / "PhotoMatte85.zip").exists(), "archive removed after extraction"
    # A second call finds the data and does not download again.
    assert download_photomatte85(tmp_path, downloader=fake, progress=False) == folder
    assert len(fake.calls) == 1


def test_download_backgrounds_with_fake_downloader(tmp_path):
    ok, jpg = cv2.imencode(".jpg", _rgb())
    fake = FakeDrive(_zip_bytes({"bg1.jpg": jpg.tobytes(), "deep/bg2.jpg": jpg.tobytes()}))
    folder = download_backgrounds_validation(
        tmp_path, downloader=fake, keep_archive=True, progress=False
    )
    assert len(BackgroundDataset(folder)) == 2
    assert (tmp_path / "Backgrounds_Validation.zip").exists()


def test_malicious_archive_is_refused(tmp_path):
    fake = FakeDrive(_zip_bytes({"../escaped.png": b"x", "ok.png": b"y"}))
    with pytest.raises(UnsafeArchiveError):
        download_photomatte85(tmp_path / "root", downloader=fake, progress=False)
    assert not (tmp_path / "escaped.png").exists()
    assert not (tmp_path / "root" / "PhotoMatte85").exists()


def test_videomatte_download_warns_and_checks_space(tmp_path, monkeypatch):
    fake = FakeDrive(_zip_bytes({"train/fgr/0000/00000.jpg": b"", "train/pha/0000/00000.jpg": b""}))
    monkeypatch.setattr(data, "VIDEOMATTE_SD_BYTES", 10**18)
    with pytest.warns(UserWarning, match="6 GB"), pytest.raises(OSError, match="free space"):
        download_videomatte240k_sd(tmp_path, downloader=fake, progress=False)
    assert fake.calls == []
    with pytest.warns(UserWarning):
        folder = download_videomatte240k_sd(
            tmp_path, downloader=fake, progress=False, check_space=False
        )
    assert (folder / "train" / "fgr" / "0000" / "00000.jpg").exists()


def test_videomatte_accepts_colour_jpeg_mattes(tmp_path):
    """Mattes saved as 3-channel JPEGs (channels differ by compression noise) still load."""
    _videomatte_tree(tmp_path, clips=("c",), frames=1)
    matte = np.zeros((20, 30, 3), np.uint8)
    matte[5:15, 5:25] = (250, 255, 252)
    _write(tmp_path / "pha" / "c" / "00000.jpg", matte)
    pha = VideoMatteDataset(tmp_path)[0]["pha"]
    assert pha.shape == (1, 20, 30)
    assert float(pha[0, 10, 15]) > 0.95 and float(pha[0, 0, 0]) < 0.05


def test_an_hd_photo_as_background(tmp_path):
    """An HD JPEG background, made from the bundled sample's plate (textured with real
    photographs), so the test needs no data the project does not ship."""
    from mattingkit.core.matting import resize_to_cover
    from mattingkit.data.synthetic import load_sample
    from mattingkit.io import write_image

    plate = resize_to_cover(load_sample("portrait").bgr, 1080, 1920).clamp(0, 1)
    write_image(tmp_path / "plate.jpg", plate)
    backgrounds = BackgroundDataset(tmp_path)
    assert len(backgrounds) == 1
    photo = backgrounds[0]["bgr"]
    assert photo.shape[0] == 3 and min(photo.shape[1:]) >= 500
    ds = CompositionDataset(SyntheticMattingDataset(2, size=(64, 64)), backgrounds, size=(96, 128))
    item = ds[1]
    assert item["bgr"].shape == (3, 96, 128) and item["fgr"].shape == (3, 96, 128)
    # A real photo keeps its texture through resize and augmentation.
    assert float(item["bgr"].std()) > 0.02
