"""Tests for mattingkit.notebook.exercises: right answers pass, typical wrong ones fail with a reason."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mattingkit.core import losses, matting
from mattingkit.notebook import exercises


def test_unknowns(capsys):
    assert exercises.check_unknowns_per_pixel(7)
    assert exercises.check_unknowns_per_pixel(4, known_background=True)
    assert not exercises.check_unknowns_per_pixel(3)
    assert "number of equations" in capsys.readouterr().out
    assert not exercises.check_unknowns_per_pixel(7, known_background=True)
    assert "no longer unknown" in capsys.readouterr().out


def test_composite(capsys):
    assert exercises.check_composite(lambda f, a, b: a * f + (1 - a) * b)
    assert not exercises.check_composite(lambda f, a, b: a * b + (1 - a) * f)
    out = capsys.readouterr().out
    assert "✗ composite: on one pixel" in out and "expected" in out


def test_student_errors_are_reported_not_raised(capsys):
    def broken(fgr, pha, bgr):
        raise NotImplementedError

    assert not exercises.check_composite(broken)
    assert "not written yet" in capsys.readouterr().out
    assert not exercises.check_composite(lambda f, a, b: f.reshape(5, -1))
    assert "it raised RuntimeError" in capsys.readouterr().out
    assert not exercises.check_composite(lambda f, a, b: None)
    assert "got None" in capsys.readouterr().out


def test_triangulation_alpha():
    def right(src1, src2, bgr1, bgr2):
        d = bgr1 - bgr2
        return 1 - ((src1 - src2) * d).sum(-3, keepdim=True) / d.square().sum(-3, keepdim=True)

    assert exercises.check_triangulation_alpha(right)
    assert not exercises.check_triangulation_alpha(lambda s1, s2, b1, b2: (s1 - b1).mean(-3, True))


def test_residual_roundtrip(capsys):
    assert exercises.check_residual_roundtrip(
        matting.foreground_to_residual, matting.residual_to_foreground
    )
    unclamped = lambda residual, src: src + residual  # noqa: E731
    assert not exercises.check_residual_roundtrip(matting.foreground_to_residual, unclamped)
    assert "did you clamp?" in capsys.readouterr().out


def test_upsampled_foreground():
    def right(residual_small, src):
        up = F.interpolate(
            residual_small, size=src.shape[-2:], mode="bilinear", align_corners=False
        )
        return (src + up).clamp(0, 1)

    def nearest(residual_small, src):
        return (src + F.interpolate(residual_small, size=src.shape[-2:])).clamp(0, 1)

    assert exercises.check_upsampled_foreground(right)
    assert not exercises.check_upsampled_foreground(nearest)


def test_check_loss_right_answers_pass():
    for term in ("alpha_l1", "alpha_gradient_l1", "foreground_l1", "error_mse"):
        assert exercises.check_loss(getattr(losses, term), term)


def test_check_loss_explains_typical_mistakes(capsys):
    def masked_mean(pred, true, pha):
        return (pred - true).abs()[(pha > 0).expand_as(pred)].mean()

    assert not exercises.check_loss(masked_mean, "foreground_l1")
    assert "averaged over the masked pixels only" in capsys.readouterr().out

    def not_detached(err, pha, true):
        return (err - (pha - true).abs()).square().mean()

    assert not exercises.check_loss(not_detached, "error_mse")
    assert "detach the target" in capsys.readouterr().out

    assert not exercises.check_loss(lambda p, t: (p - t).abs(), "alpha_l1")
    assert "expected a scalar" in capsys.readouterr().out


def test_mismatch_wording():
    expected = torch.zeros(2, 2)
    assert exercises.mismatch(expected.clone(), expected) is None
    assert "expected shape (2, 2)" in exercises.mismatch(torch.zeros(3), expected)
    got = expected.clone()
    got[1, 0] = 0.5
    assert exercises.mismatch(got, expected).startswith(
        "at index (1, 0) expected 0.0000, got 0.5000"
    )
    assert "NaN" in exercises.mismatch(torch.full((2, 2), float("nan")), expected)


def test_a_check_shows_nothing_as_a_cells_value(capsys):
    """Jupyter displays a cell's last value: a check must print its line and show no True/False."""
    from IPython.core.formatters import DisplayFormatter

    good = exercises.check_unknowns_per_pixel(7)
    bad = exercises.check_unknowns_per_pixel(3)
    assert good and not bad  # truthy/falsy, so `assert check(...)` and `if check(...)` work
    assert capsys.readouterr().out.count("\n") == 2  # one printed line each
    assert DisplayFormatter().format(good) == ({}, {})
    assert DisplayFormatter().format(bad) == ({}, {})
    assert repr(bad).startswith("✗ Matting from a single image")
