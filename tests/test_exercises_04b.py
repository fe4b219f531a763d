"""Chapter 04b's exercise checks: a right answer passes, the usual mistakes get a hint."""

from __future__ import annotations

from mattingkit.notebook.exercises import check_fixed_preset_share, check_window_share


def right_window_share(patches, window_side, height, width):
    return patches * window_side**2 / ((height // 2) * (width // 2))


def test_window_share_passes_the_right_answer():
    assert check_window_share(right_window_share)


def test_window_share_names_full_resolution_mistake(capsys):
    def at_full_resolution(patches, window_side, height, width):
        return patches * window_side**2 / (height * width)

    assert not check_window_share(at_full_resolution)
    assert not check_window_share(lambda *args: None)
    assert "half-resolution map" in capsys.readouterr().out


def test_fixed_share_needs_the_cap(capsys):
    assert check_fixed_preset_share(
        lambda pixels, h, w: min(pixels, (h // 4) * (w // 4) * 16) / (h * w)
    )
    assert not check_fixed_preset_share(lambda pixels, h, w: pixels / (h * w))
    assert "cap it" in capsys.readouterr().out
