"""Tests for mattingkit.training.metrics: hand-computed cases with the benchmark's units."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from mattingkit.training import metrics


def disc(size: int = 101, radius: int = 30) -> np.ndarray:
    """A hard-edged disc: 1 inside (distance <= radius), 0 outside, centred."""
    yy, xx = np.mgrid[:size, :size]
    c = size // 2
    return ((yy - c) ** 2 + (xx - c) ** 2 <= radius**2).astype(np.float32)


def soft_disc(size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    c = size / 2
    return np.clip(1.5 - np.hypot(yy - c, xx - c) / 12, 0, 1).astype(np.float32)


# ------------------------------------------------------------------------ perfect prediction


@pytest.mark.parametrize("trimap", [None, "auto"])
def test_perfect_prediction_scores_zero_everywhere(trimap):
    true = soft_disc()
    fgr = np.random.default_rng(0).random((3, 64, 64))
    results = metrics.evaluate(true.copy(), true, fgr.copy(), fgr, trimap=trimap)
    for name in ("sad", "mse", "grad", "conn", "fg_mse"):
        assert results[name] == 0.0, name
    assert metrics.dtssd(np.stack([true] * 3), np.stack([true] * 3)) == 0.0


# ---------------------------------------------------------------------------------- SAD, MSE


def test_constant_error_gives_hand_computed_sad_and_mse():
    true = np.full((40, 50), 0.5)
    pred = true + 0.1
    # 2000 pixels * 0.1 = 200, divided by 1000 as the benchmark does.
    assert metrics.sad(pred, true) == pytest.approx(0.2)
    assert metrics.mse(pred, true) == pytest.approx(0.01)
    assert metrics.to_paper_units({"mse": metrics.mse(pred, true)})["mse"] == pytest.approx(10.0)


def test_trimap_restricts_the_region():
    true = np.zeros((4, 4))
    pred = np.zeros((4, 4))
    pred[0, 0] = 1.0  # error in a pixel outside the unknown region
    pred[2, 2] = 0.5  # error inside it
    trimap = np.zeros((4, 4), dtype=np.uint8)
    trimap[2:, 2:] = 128  # 4 unknown pixels
    trimap[0, 0] = 255
    assert metrics.sad(pred, true, trimap) == pytest.approx(0.5 / 1000)
    assert metrics.mse(pred, true, trimap) == pytest.approx(0.25 / 4)
    assert metrics.sad(pred, true) == pytest.approx(1.5 / 1000)
    assert metrics.mse(pred, true) == pytest.approx(1.25 / 16)
    # An empty region has no mean.
    assert math.isnan(metrics.mse(pred, true, np.zeros((4, 4), dtype=np.uint8)))


def test_torch_tensors_and_batched_shapes_are_accepted():
    true = soft_disc(32)
    pred = np.clip(true + 0.05, 0, 1)
    expected = metrics.sad(pred, true)
    as_tensor = torch.from_numpy(pred)[None, None]  # (1, 1, H, W)
    assert metrics.sad(as_tensor, torch.from_numpy(true)[None]) == pytest.approx(expected)
    # uint8 arrays are read as 0..255.
    assert metrics.sad(np.full((2, 2), 255, np.uint8), np.zeros((2, 2))) == pytest.approx(0.004)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(10, 12\) and \(10, 13\)"):
        metrics.sad(np.zeros((10, 12)), np.zeros((1, 10, 13)))
    with pytest.raises(ValueError, match=r"trimap.*\(5, 5\) and \(4, 4\)"):
        metrics.mse(np.zeros((4, 4)), np.zeros((4, 4)), trimap=np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match=r"\(2, 4, 4\)"):
        metrics.grad(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))


def test_values_outside_zero_one_are_rejected():
    with pytest.raises(ValueError, match=r"pred must be in \[0, 1\].*255"):
        metrics.sad(np.full((3, 3), 255.0), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.mse(np.full((3, 3), np.nan), np.zeros((3, 3)))


# ------------------------------------------------------------------------------------ trimap


def test_trimap_from_alpha_on_a_disc_has_a_band_of_twice_the_iterations():
    alpha = disc(101, radius=30)
    trimap = metrics.trimap_from_alpha(alpha)
    assert trimap.dtype == np.uint8 and set(np.unique(trimap)) == {0, 128, 255}
    row = trimap[50]  # through the centre: edge pixels at columns 20 and 80
    # Foreground eroded 10 px (keeps |x - 50| <= 20), background eroded 10 px (keeps > 40).
    assert np.flatnonzero(row == 255).tolist() == list(range(30, 71))
    assert np.flatnonzero(row == 128).tolist() == list(range(10, 30)) + list(range(71, 91))
    assert (row[:10] == 0).all() and (row[91:] == 0).all()
    # Fewer iterations, thinner band; no iterations and a hard alpha: no unknown region at all.
    assert (metrics.trimap_from_alpha(alpha, iterations=3)[50] == 128).sum() == 12
    assert (metrics.trimap_from_alpha(alpha, iterations=0) == 128).sum() == 0


def test_trimap_thresholds_mark_soft_pixels_unknown():
    alpha = np.array([[0.0, 0.06, 0.07, 0.5, 0.95, 0.96, 1.0]])
    trimap = metrics.trimap_from_alpha(alpha, iterations=0)
    assert trimap.tolist() == [[0, 0, 128, 128, 128, 255, 255]]


# -------------------------------------------------------------------------------------- Grad


def test_gauss_gradient_kernel_matches_the_benchmark_recipe():
    kernel = metrics.gauss_gradient_kernel(1.4)
    # half size = ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) * 1.4 * 0.01))) = ceil(3.62) = 4
    assert kernel.shape == (9, 9)
    assert (kernel**2).sum() == pytest.approx(1.0)
    np.testing.assert_allclose(kernel, -kernel[:, ::-1])  # odd in x
    np.testing.assert_allclose(kernel, kernel[::-1, :])  # even in y
    assert kernel[4, 4] == 0.0


def test_gauss_gradient_of_a_vertical_step_points_along_x():
    image = np.zeros((20, 20))
    image[:, 10:] = 1.0
    gx, gy = metrics.gauss_gradient(image)
    np.testing.assert_allclose(gy, 0.0, atol=1e-12)
    magnitude = np.abs(gx[10])
    assert magnitude.argmax() in (9, 10) and magnitude[0] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(
        gx,
        cv2.filter2D(image, -1, metrics.gauss_gradient_kernel(), borderType=cv2.BORDER_REPLICATE),
        atol=1e-12,
    )


def test_grad_is_zero_for_identical_and_positive_for_blurred():
    true = disc(64, radius=20)
    blurred = cv2.GaussianBlur(true, (9, 9), 3)
    assert metrics.grad(true, true) == 0.0
    whole = metrics.grad(blurred, true)
    assert whole > 1.0
    # Restricted to the band around the edge it keeps most of the error, far away none of it.
    trimap = metrics.trimap_from_alpha(true)
    assert 0 < metrics.grad(blurred, true, trimap) <= whole
    far = np.zeros_like(trimap)
    far[:3, :3] = 128
    assert metrics.grad(blurred, true, far) == pytest.approx(0.0, abs=1e-12)


def test_grad_normalises_like_mat2gray():
    # A matte and the same matte at half contrast have the same min-max normalised gradients.
    true = soft_disc()
    assert metrics.grad(true * 0.5, true) == pytest.approx(0.0, abs=1e-9)
    assert metrics.mse(true * 0.5, true) > 0


# -------------------------------------------------------------------------------------- Conn


def test_conn_hand_worked_hard_example():
    # Intersection at every threshold is columns 0-1; columns 2-3 round down to 0 at t = 0.1.
    # true_d = [0, 0, 0, 1] -> phi_true = [1, 1, 1, 0]; pred_d = 0 -> phi_pred = 1: error 1.
    true = np.array([[1.0, 1.0, 0.0, 1.0]])
    pred = np.array([[1.0, 1.0, 0.0, 0.0]])
    assert metrics.conn(pred, true) == pytest.approx(1.0)


def test_conn_hand_worked_soft_example():
    # t = 0.1..0.3: the largest component is columns 0-2 (pixel 3 leaves at 0.1: l = 0).
    # t = 0.4: pred[2] = 0.35 drops out: l = 0.3. Columns 0-1 never leave: l = 1.
    # true_d = [0, 0, 0.25, 1] -> phi_true = [1, 1, 0.75, 0]
    # pred_d = [0, 0, 0.05, 0] -> phi_pred = [1, 1, 1, 1] (0.05 < theta = 0.15)
    true = np.array([[1.0, 1.0, 0.55, 1.0]])
    pred = np.array([[1.0, 1.0, 0.35, 0.0]])
    assert metrics.conn(pred, true) == pytest.approx(1.25)
    trimap = np.array([[0, 0, 128, 0]], dtype=np.uint8)
    assert metrics.conn(pred, true, trimap) == pytest.approx(0.25)


def test_conn_uses_4_connectivity():
    # Two blocks touch only at a corner: with 4-connectivity they are two components, the smaller
    # (lower right) is cut off at t = 0.1, so l = 0 there: true_d = 1 -> phi 0, pred_d = 0.9 ->
    # phi 0.1, error 4 * 0.1. (With 8-connectivity it would stay attached up to t = 0.9,
    # l = 0.9, both d < 0.15, error 0.)
    true = np.zeros((5, 5))
    true[:3, :3] = 1.0
    true[3:, 3:] = 1.0
    pred = true.copy()
    pred[3:, 3:] = 0.9
    assert metrics.conn(pred, true) == pytest.approx(0.4)


def naive_conn(pred: np.ndarray, true: np.ndarray) -> float:
    """compute_connectivity_error.m transcribed literally: whole image, two masks per step."""
    thresholds = np.round(np.arange(11) * 0.1, 10)
    level = -np.ones_like(true)
    for i in range(1, 11):
        both = ((pred >= thresholds[i]) & (true >= thresholds[i])).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(both, connectivity=4)
        omega = np.zeros(true.shape, bool)
        if count > 1:
            omega = labels == 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])
        level[(level == -1) & ~omega] = thresholds[i - 1]
    level[level == -1] = 1
    pred_d, true_d = pred - level, true - level
    return float(np.abs((1 - pred_d * (pred_d >= 0.15)) - (1 - true_d * (true_d >= 0.15))).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conn_matches_a_literal_transcription_of_the_benchmark(seed):
    rng = np.random.default_rng(seed)
    true = np.zeros((40, 60))
    true[5:30, 35:58] = soft_disc(25)[:, :23]  # off-centre, touching nothing
    true[0, 0] = 0.7  # an isolated speck far from the rest
    pred = np.clip(true + rng.normal(0, 0.1, true.shape) * (rng.random(true.shape) < 0.3), 0, 1)
    pred = np.round(pred * 255) / 255
    assert metrics.conn(pred, true) == pytest.approx(naive_conn(pred, true))
    # Nothing above the first threshold: every level is 0, phi = 1 - alpha * (alpha >= 0.15).
    assert metrics.conn(np.zeros((4, 4)), np.ones((4, 4))) == pytest.approx(16.0)


# ------------------------------------------------------------------------------ FG MSE, dtSSD


def test_foreground_mse_counts_only_pixels_with_alpha_above_zero():
    true_fgr = np.zeros((3, 2, 2))
    pred_fgr = np.zeros((3, 2, 2))
    pred_fgr[:, 0, 0] = 0.2  # visible pixel, error 0.04 in every channel
    pred_fgr[:, 1, 1] = 1.0  # transparent pixel: not scored
    true_pha = np.array([[0.5, 1.0], [1.0, 0.0]])
    assert metrics.foreground_mse(pred_fgr, true_fgr, true_pha) == pytest.approx(0.04 / 3)
    # benchmark.m divides by all region pixels instead.
    assert metrics.foreground_mse(
        pred_fgr, true_fgr, true_pha, count_transparent=True
    ) == pytest.approx(0.04 / 4)
    trimap = np.array([[128, 0], [0, 128]], dtype=np.uint8)
    assert metrics.foreground_mse(pred_fgr, true_fgr, true_pha, trimap) == pytest.approx(0.04)
    with pytest.raises(ValueError, match=r"\(2, 2\) and \(3, 3\)"):
        metrics.foreground_mse(pred_fgr, true_fgr, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"\(2, 2, 3\)"):
        metrics.foreground_mse(np.zeros((2, 2, 3)), true_fgr, true_pha)


def test_dtssd_of_a_constant_change_is_hand_computable():
    true = np.zeros((4, 8, 8))
    true[1:] = 0.2  # the truth changes by 0.2 once, at t = 1
    pred = np.zeros((4, 8, 8))  # the prediction never changes
    # e_1 = sqrt(mean(0.2^2)) = 0.2, e_2 = e_3 = 0: mean 0.2 / 3
    assert metrics.dtssd(pred, true) == pytest.approx(0.2 / 3)
    # A constant offset in every frame is not flicker.
    assert metrics.dtssd(np.clip(true + 0.3, 0, 1), true) == pytest.approx(0.0)
    # Flicker: the prediction alternates by 0.1 around a static truth.
    flicker = np.stack([np.full((8, 8), 0.5 + 0.1 * (-1) ** t) for t in range(5)])
    assert metrics.dtssd(flicker, np.full((5, 1, 8, 8), 0.5)) == pytest.approx(0.2)


def test_dtssd_checks_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4, 4\) and \(2, 4, 4\)"):
        metrics.dtssd(np.zeros((3, 4, 4)), np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="at least 2 frames"):
        metrics.dtssd(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)))


# ---------------------------------------------------------------------------------- evaluate


def test_evaluate_collects_everything_and_converts_to_paper_units():
    true = soft_disc()
    pred = np.clip(true + 0.02, 0, 1)
    trimap = metrics.trimap_from_alpha(true)
    results = metrics.evaluate(pred, true, trimap="auto")
    assert set(results) == {"sad", "mse", "grad", "conn", "unknown_pixels"}
    assert results["unknown_pixels"] == float((trimap == 128).sum())
    assert results["sad"] == pytest.approx(metrics.sad(pred, true, trimap))
    assert results["conn"] == pytest.approx(metrics.conn(pred, true, trimap))
    shown = metrics.to_paper_units(results)
    assert shown["mse"] == pytest.approx(results["mse"] * 1000)
    assert shown["unknown_pixels"] == results["unknown_pixels"]
    with pytest.raises(ValueError, match="both"):
        metrics.evaluate(pred, true, pred_fgr=np.zeros((3, 64, 64)))
    with pytest.raises(ValueError, match="auto"):
        metrics.evaluate(pred, true, trimap="manual")
