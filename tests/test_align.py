"""mattingkit.apps.align: re-aligning a plate after a known camera move, and failing gracefully."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from mattingkit import Matter
from mattingkit.apps.align import AlignmentWarning, _implausible, align_plate, find_homography
from mattingkit.data.synthetic import load_sample


@pytest.fixture(scope="module")
def handheld():
    """The portrait's subject in front of a real brick wall (scikit-image's photo), re-shot
    after a small camera move: 2 deg rotation, 2% zoom, (9, -6) px shift and a little
    perspective. Returns (plate, moved plate, frame, sample, homography).

    Not the portrait's own plate: that one is out of focus (a blurred tripod), which leaves
    too few corners for ORB to lock on to (measured: 13 px corner error): feature matching
    needs a textured background, which is what a practitioner's room usually gives.
    """
    sample = load_sample("portrait")
    height, width = sample.bgr.shape[-2:]
    brick = cv2.imread(str(Path(skimage.data.__file__).parent / "brick.png"), cv2.IMREAD_COLOR)
    assert brick is not None, "scikit-image's brick.png (a dependency) is missing"
    plate = cv2.resize(brick, (width, height), interpolation=cv2.INTER_AREA)
    plate = plate[:, :, ::-1].astype(np.float32) / 255
    affine = cv2.getRotationMatrix2D((width / 2, height / 2), 2.0, 1.02)
    affine[:, 2] += (9.0, -6.0)
    homography = np.vstack([affine, [1e-5, 0.0, 1.0]])
    moved = cv2.warpPerspective(plate, homography, (width, height), borderMode=cv2.BORDER_REFLECT)
    pha = sample.pha[0].numpy()[:, :, None]
    frame = (pha * sample.fgr.permute(1, 2, 0).numpy() + (1 - pha) * moved).astype(np.float32)
    return plate, moved, frame, sample, homography


def _corner_error(estimated: np.ndarray, true: np.ndarray, height: int, width: int) -> float:
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]]).reshape(-1, 1, 2)
    return float(
        np.abs(
            cv2.perspectiveTransform(corners, estimated) - cv2.perspectiveTransform(corners, true)
        ).max()
    )


@pytest.mark.parametrize("method", ["orb", "sift"])
def test_known_move_is_undone(handheld, method):
    plate, moved, frame, sample, homography = handheld
    height, width = plate.shape[:2]
    estimated, why = find_homography(plate, frame, method=method)
    assert estimated is not None, why
    # Measured: corners land within 0.24 px (ORB) / 0.09 px (SIFT) of the true move.
    assert _corner_error(estimated, homography, height, width) < 2.0

    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignmentWarning)
        aligned, ok = align_plate(plate, frame, method=method)
    assert ok and aligned.shape == frame.shape and aligned.dtype == np.float32
    background = sample.pha[0].numpy() == 0
    before = np.abs(plate - moved)[background].mean()
    after = np.abs(aligned - moved)[background].mean()
    # Measured: 0.072 before; 0.0007 (ORB) and 0.0004 (SIFT) after.
    assert before > 0.03 and after < before / 8


def test_tensors_in_tensors_out(handheld):
    plate, _, frame, _, _ = handheld
    plate_t = torch.from_numpy(plate).permute(2, 0, 1)
    frame_t = torch.from_numpy(frame).permute(2, 0, 1)
    aligned, ok = align_plate(plate_t, frame_t)
    assert ok and isinstance(aligned, torch.Tensor) and aligned.shape == plate_t.shape
    assert 0 <= aligned.min() and aligned.max() <= 1
    # Where the moved plate does not reach, the frame's own pixels fill in.
    numpy_aligned, _ = align_plate(plate, frame)
    np.testing.assert_allclose(aligned.permute(1, 2, 0).numpy(), numpy_aligned, atol=1e-6)


def test_flat_plate_falls_back_with_a_warning(handheld):
    _, _, frame, _, _ = handheld
    flat = np.full_like(frame, 0.5)
    with pytest.warns(AlignmentWarning, match="too few keypoints"):
        out, ok = align_plate(flat, frame)
    assert not ok and out is flat


def test_unrelated_image_falls_back_with_a_warning(handheld):
    _, _, frame, _, _ = handheld
    noise = np.random.default_rng(0).random(frame.shape).astype(np.float32)
    with pytest.warns(AlignmentWarning, match="could not align"):
        out, ok = align_plate(noise, frame)
    assert not ok and out is noise
    out, ok = align_plate(noise, frame, warn=False)  # quietly, when asked
    assert not ok


def test_degenerate_homographies_are_rejected():
    size = (100, 200)
    assert _implausible(np.eye(3), size) is None
    assert "degenerate" in _implausible(np.full((3, 3), np.nan), size)
    assert "scales the area" in _implausible(np.diag([10.0, 10.0, 1.0]), size)
    # Area-preserving in its linear part, but the right edge goes through infinity.
    assert "folds" in _implausible(np.array([[1.0, 0, 0], [0, 1, 0], [-0.01, 0, 1]]), size)
    mirror = np.array([[-1.0, 0, 200], [0, 1, 0], [0, 0, 1]])
    assert _implausible(mirror, size) is not None


def test_bad_inputs():
    with pytest.raises(ValueError, match="H x W x 3"):
        align_plate(np.zeros((10, 10)), np.zeros((10, 10, 3)))
    with pytest.raises(TypeError, match="numpy array or torch tensor"):
        align_plate([[0]], np.zeros((10, 10, 3)))
    with pytest.raises(ValueError, match="method"):
        align_plate(np.zeros((10, 10, 3)), np.zeros((10, 10, 3)), method="surf")


def test_matter_aligns_handheld_frames(handheld):
    plate, _, frame, sample, _ = handheld
    half = (plate.shape[1] // 2, plate.shape[0] // 2)  # 270 x 480: faster, still aligns
    plate, frame = (cv2.resize(x, half, interpolation=cv2.INTER_AREA) for x in (plate, frame))
    truth = torch.nn.functional.interpolate(sample.pha[None], size=plate.shape[:2], mode="area")
    plain = Matter(device="cpu")(frame, plate)
    aligned = Matter(device="cpu", align=True)(frame, plate)
    assert plain.aligned is None and aligned.aligned == [True]
    error_plain = (plain.pha - truth).abs().mean()
    error_aligned = (aligned.pha - truth).abs().mean()
    assert error_aligned < error_plain

    with pytest.warns(AlignmentWarning):
        fallback = Matter(device="cpu", align=True)(
            frame[:64, :64], np.full((64, 64, 3), 0.5, np.float32)
        )
    assert fallback.aligned == [False] and fallback.pha.shape == (1, 1, 64, 64)
