"""Tests for mattingkit.notebook.widgets: static fallback in fast mode, live sliders otherwise."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from mattingkit.notebook import widgets


@pytest.fixture
def drawn(monkeypatch):
    """Record what each render shows instead of drawing it."""
    calls = []
    monkeypatch.setattr(widgets, "show_images", lambda images, titles, **k: calls.append(titles))
    monkeypatch.setattr(widgets, "color_swatches", lambda colors, titles, **k: calls.append(titles))
    monkeypatch.setattr(widgets.plt, "show", lambda: None)
    return calls


def test_fast_mode_draws_once_statically(monkeypatch, drawn):
    monkeypatch.setenv("MATTINGKIT_FAST", "1")
    assert widgets.widgets_enabled() is False
    src, bgr = torch.rand(3, 8, 8), torch.rand(3, 8, 8)
    assert widgets.interactive_keying(src, bgr, torch.rand(1, 8, 8)) is None
    assert len(drawn) == 1 and drawn[0][1] == "keyed α (t=0.15, s=0.10)"
    assert drawn[0][2].startswith("|α − α*|, mean")


def test_sliders_redraw_with_new_values(monkeypatch, drawn):
    monkeypatch.delenv("MATTINGKIT_FAST", raising=False)
    pytest.importorskip("ipywidgets")
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.extend(a))
    assert widgets.interactive_composite(torch.rand(3, 6, 6), torch.rand(1, 6, 6)) is None
    assert len(shown) == 1  # displayed once, and not returned (that would display it twice)
    ui = shown[0]
    threshold = next(c for c in ui.children if getattr(c, "description", "").startswith("binary"))
    threshold.value = 0.5
    assert drawn[-1][0] == "binary mask α ≥ 0.50"


def test_pixel_blend_numbers(monkeypatch, drawn):
    widgets.interactive_pixel_blend("#ffffff", "#000000", alpha=0.25, interactive=False)
    assert drawn[0][2] == "I = 0.25·F + 0.75·B\n(0.25, 0.25, 0.25)"


def test_bad_colour_and_shapes():
    with pytest.raises(ValueError, match="#78ff9b"):
        widgets._hex_to_rgb("green")
    with pytest.raises(ValueError, match="pha must have 1 channel"):
        widgets.interactive_composite(torch.rand(3, 4, 4), torch.rand(3, 4, 4), interactive=False)
