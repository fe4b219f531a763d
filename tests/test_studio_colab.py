"""Chapter 07's studio on Colab: uploads take Colab's own file picker, not the widget.

Colab's ``FileUpload`` widget silently drops files of about 1 MB or more (ipywidgets issue
3452). With ``google.colab`` imported (the stand-in of ``tests/colab_stub``), the studio
shows buttons that call ``google.colab.files.upload()`` and mount Google Drive instead;
elsewhere the widget stays (``tests/test_studio.py``).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import ipywidgets as w
import numpy as np
import pytest
import torch

from mattingkit.data.synthetic import load_sample
from mattingkit.io import read_image, write_image
from mattingkit.notebook import studio_logic
from mattingkit.notebook.studio import Studio
from mattingkit.notebook.studio_logic import COLAB_UPLOAD_LIMIT, fit_size

STUB = Path(__file__).resolve().parent / "colab_stub" / "google" / "colab"


def _load(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"google.colab.{name}", STUB / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def colab(monkeypatch):
    """The stand-in ``google.colab`` (files, drive, output), its calls in ``colab.calls``."""
    package = types.ModuleType("google.colab")
    package.calls = []
    package.record = lambda call, **details: package.calls.append({"call": call, **details})
    google = types.ModuleType("google")
    google.colab = package
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", package)
    for name in ("files", "drive", "output"):
        module = _load(name)
        setattr(package, name, module)
        monkeypatch.setitem(sys.modules, f"google.colab.{name}", module)
    return package


def _widgets(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _widgets(child)


def test_outside_colab_the_upload_widget_stays():
    studio = Studio()
    assert isinstance(studio.source_upload, w.FileUpload) and studio.drive_button is None


def test_on_colab_uploads_over_the_widget_limit_take_colabs_file_picker(colab, tmp_path):
    studio = Studio(weights="shipped", backbone="mobilenetv2", max_side=160, repeats=1)
    studio.cache = tmp_path
    assert not any(isinstance(x, w.FileUpload) for x in _widgets(studio.widget))
    assert "files.upload" in studio.upload_note.value
    studio.media_choice.value = "own"
    assert studio.drive_button.layout.display is None  # shown with the upload buttons
    portrait = load_sample("portrait")
    plate = write_image(tmp_path / "plate.png", fit_size(portrait.bgr, 160))
    # A frame far above the widget's ~1 MB limit: noise does not compress.
    frame = np.random.default_rng(0).integers(0, 256, (900, 1600, 3), dtype=np.uint8)
    big = write_image(tmp_path / "big frame.png", torch.from_numpy(frame).permute(2, 0, 1) / 255)
    assert big.stat().st_size > 2 * COLAB_UPLOAD_LIMIT
    colab.files.PICKED[:] = [str(big)]
    studio.source_upload.click()
    colab.files.PICKED[:] = [str(plate)]
    studio.plate_upload.click()
    assert [c["call"] for c in colab.calls] == ["files.upload", "files.upload"]
    assert colab.calls[0]["sizes"] == [big.stat().st_size]
    assert "big frame.png" in studio.upload_status.value
    studio.run_button.click()
    assert studio.stats is not None, studio.messages
    saved = tmp_path / "uploads" / "big_frame.png"
    assert saved.read_bytes() == big.read_bytes()
    assert studio.result.src.shape[-1] == 160  # resized to the working size, from the upload
    torch.testing.assert_close(read_image(saved), read_image(big))


def test_on_colab_nothing_chosen_and_drive(colab, tmp_path, monkeypatch):
    studio = Studio()
    colab.files.PICKED[:] = []
    studio.source_upload.click()
    assert "no file was chosen" in studio.upload_status.value
    assert studio.mount_drive() == studio_logic.COLAB_DRIVE
    studio.drive_button.click()
    assert [c["call"] for c in colab.calls] == ["files.upload", "drive.mount", "drive.mount"]
    assert colab.calls[1]["mountpoint"] == "/content/drive"
    with pytest.raises(studio_logic.MediaError, match="Colab's file picker"):
        studio_logic.save_upload((), tmp_path)


def test_a_drive_path_mounts_drive_before_the_run(colab, monkeypatch):
    studio = Studio(weights="shipped", backbone="mobilenetv2", max_side=160, repeats=1)
    studio.media_choice.value = "own"
    studio.source.value = "/content/drive/MyDrive/clip.mp4"
    studio.run_button.click()
    assert colab.calls and colab.calls[0]["call"] == "drive.mount"
