"""Tests for mattingkit.io: image round-trips, refusal to overwrite, atomic writes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mattingkit.io import atomic_write, read_alpha, read_image, write_image


def _gradient_rgb(h: int = 6, w: int = 10) -> torch.Tensor:
    """A small RGB image whose channels differ, so a BGR/RGB swap would show."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([x, y, torch.full_like(x, 0.25)])


def test_png_round_trip_is_exact_to_8_bits(tmp_path):
    image = _gradient_rgb()
    path = write_image(tmp_path / "a.png", image)
    back = read_image(path)
    assert back.shape == (3, 6, 10) and back.dtype == torch.float32
    assert torch.allclose(back, torch.round(image * 255) / 255, atol=1e-6)


def test_channel_order_is_rgb_on_disk_as_opencv_expects(tmp_path):
    red = torch.zeros(3, 2, 2)
    red[0] = 1.0
    write_image(tmp_path / "red.png", red)
    bgr = cv2.imread(str(tmp_path / "red.png"))
    assert bgr[0, 0].tolist() == [0, 0, 255]  # OpenCV sees red in its last (R) channel
    assert read_image(tmp_path / "red.png")[:, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_jpeg_round_trip_is_close(tmp_path):
    image = _gradient_rgb(16, 16)
    write_image(tmp_path / "a.jpg", image)
    assert (read_image(tmp_path / "a.jpg") - image).abs().mean() < 0.02


def test_grey_and_matte(tmp_path):
    matte = torch.linspace(0, 1, 12).reshape(1, 3, 4)
    write_image(tmp_path / "pha.png", matte)
    assert cv2.imread(str(tmp_path / "pha.png"), cv2.IMREAD_UNCHANGED).ndim == 2
    assert read_image(tmp_path / "pha.png").shape == (3, 3, 4)  # grey repeated to RGB
    assert torch.allclose(read_alpha(tmp_path / "pha.png"), torch.round(matte * 255) / 255)


def test_rgba_alpha_dropped_or_kept(tmp_path):
    rgba = torch.rand(4, 5, 7)
    write_image(tmp_path / "fg.png", rgba)
    assert read_image(tmp_path / "fg.png").shape == (3, 5, 7)
    full = read_image(tmp_path / "fg.png", with_alpha=True)
    assert torch.allclose(full, torch.round(rgba * 255) / 255, atol=1e-6)
    assert torch.allclose(read_alpha(tmp_path / "fg.png"), full[3:])
    # An image without alpha gets an opaque alpha channel.
    write_image(tmp_path / "rgb.png", rgba[:3])
    assert torch.equal(read_image(tmp_path / "rgb.png", with_alpha=True)[3], torch.ones(5, 7))


def test_16_bit_png_keeps_precision(tmp_path):
    array = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000).astype(np.uint16)
    write_image(tmp_path / "deep.png", array)
    back = read_alpha(tmp_path / "deep.png")
    assert torch.allclose(back[0], torch.from_numpy(array.astype(np.float32) / 65535))


def test_numpy_hwc_input(tmp_path):
    array = (np.random.default_rng(0).random((4, 6, 3)) * 255).astype(np.uint8)
    write_image(tmp_path / "np.png", array)
    back = read_image(tmp_path / "np.png")
    assert np.array_equal((back * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), array)


def test_exif_orientation_is_ignored(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    pixels = np.zeros((4, 8, 3), np.uint8)
    pixels[:, :4] = 255
    image = pil.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees" tag
    image.save(tmp_path / "rot.jpg", exif=exif)
    assert read_image(tmp_path / "rot.jpg").shape == (3, 4, 8)  # as stored, not rotated


def test_refuses_to_overwrite(tmp_path):
    path = write_image(tmp_path / "a.png", torch.zeros(3, 2, 2))
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_image(path, torch.ones(3, 2, 2))
    assert path.read_bytes() == before
    write_image(path, torch.ones(3, 2, 2), overwrite=True)
    assert read_image(path).min() == 1.0


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="JPEG cannot store an alpha"):
        write_image(tmp_path / "a.jpg", torch.zeros(4, 2, 2))
    with pytest.raises(ValueError, match="batch of 2"):
        write_image(tmp_path / "b.png", torch.zeros(2, 3, 2, 2))
    with pytest.raises(ValueError, match="no suffix"):
        write_image(tmp_path / "noext", torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="C in 1, 3, 4"):
        write_image(tmp_path / "c.png", torch.zeros(5, 2, 2))
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_missing_and_unreadable_files_name_the_path(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(missing)
    junk = tmp_path / "junk.png"
    junk.write_text("this is not a picture")
    with pytest.raises(ValueError, match="junk.png"):
        read_image(junk)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.jpg"):
        read_image(empty)
    colourful = write_image(tmp_path / "colour.png", _gradient_rgb())
    with pytest.raises(ValueError, match="not a matte"):
        read_alpha(colourful)


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "sub" / "file.bin"
    with atomic_write(path) as f:
        f.write(b"first")
    assert path.read_bytes() == b"first"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as f:
            f.write(b"half of the second")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"first"  # old content intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.bin"]  # temp file removed


def test_atomic_write_text_and_no_overwrite(tmp_path):
    path = tmp_path / "notes.txt"
    with atomic_write(path, "w") as f:
        f.write("héllo")
    assert path.read_text(encoding="utf-8") == "héllo"
    with pytest.raises(FileExistsError):
        with atomic_write(path, "w", overwrite=False) as f:
            f.write("other")
    assert path.read_text(encoding="utf-8") == "héllo"


def test_a_folder_that_cannot_be_written_is_named_not_the_temporary_file(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    target = tmp_path / "notes.txt" / "cut.png"
    with pytest.raises(PermissionError) as error:
        write_image(target, torch.zeros(3, 4, 4))
    assert str(error.value) == (
        f"cannot write to {target.parent}: {tmp_path / 'notes.txt'} is a file, not a folder; "
        "choose another output folder"
    )
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_atomic_write_works_with_torch_save(tmp_path):
    path = tmp_path / "weights.pth"
    with atomic_write(path) as f:
        torch.save({"w": torch.arange(3)}, f)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(3))


def test_a_camera_sized_jpeg_pair_reads_back_as_stored(tmp_path):
    """A 1080x1920 frame and plate saved as JPEGs, as a camera would: the pair comes back
    the same size, in [0, 1], RGB and unrotated (made from the bundled sample, so the test
    needs no data the project does not ship)."""
    from mattingkit.core.matting import resize_to_cover
    from mattingkit.data.synthetic import load_sample

    sample = load_sample("portrait")
    src, bgr = (resize_to_cover(x, 1080, 1920).clamp(0, 1) for x in (sample.src, sample.bgr))
    a = read_image(write_image(tmp_path / "frame.jpg", src))
    b = read_image(write_image(tmp_path / "plate.jpg", bgr))
    assert a.shape == b.shape == (3, 1080, 1920) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert (a - src).abs().mean() < 0.02 and (b - bgr).abs().mean() < 0.02  # JPEG, quality 95


def test_resize_to_cover_keeps_aspect_and_centres_the_crop():
    from mattingkit.core.matting import resize_to_cover

    # A wide image onto a square: the height fits, the sides are cropped evenly.
    image = torch.zeros(3, 10, 30)
    image[:, :, 10:20] = 1.0  # the middle third
    out = resize_to_cover(image, 20, 20)
    assert out.shape == (3, 20, 20)
    assert torch.all(out[:, :, 2:-2] > 0.9)  # the middle third now spans the frame
    assert torch.equal(resize_to_cover(image, 10, 30), image)  # already the size: unchanged
    batch = torch.rand(2, 4, 1, 37, 211)  # any leading dimensions, any channel count
    assert resize_to_cover(batch, 60, 80).shape == (2, 4, 1, 60, 80)
    with pytest.raises(ValueError, match="positive"):
        resize_to_cover(image, 0, 5)
