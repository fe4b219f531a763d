"""Interactive sliders for the chapters, with a static fallback.

Each ``interactive_*`` function displays a figure that redraws as sliders move
(``ipywidgets.interactive``). When widgets cannot be used (ipywidgets missing, or fast
mode: tests and CI) it draws the figure once with the default values instead, so a
notebook never breaks over a widget. ``interactive=True/False`` forces either. Only core ipywidgets are
used, so they work in JupyterLab, Notebook 7, VS Code and Colab without extra setup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt
import torch

from mattingkit.core import matting
from mattingkit.notebook.plotting import color_swatches, show_images
from mattingkit.runtime import fast_mode

__all__ = [
    "widgets_enabled",
    "interactive_pixel_blend",
    "interactive_composite",
    "interactive_keying",
]


def widgets_enabled() -> bool:
    """True when sliders can be shown: ipywidgets and IPython import, and not fast mode."""
    if fast_mode():
        return False
    try:
        import IPython.display  # noqa: F401
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _hex_to_rgb(color: str) -> tuple[float, float, float]:
    value = color.lstrip("#")
    if len(value) != 6:
        raise ValueError(f"expected a colour like '#78ff9b', got {color!r}")
    return tuple(int(value[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def _run(
    render: Callable[..., None],
    defaults: dict[str, Any],
    build_controls: Callable[[Any], dict[str, Any]],
    interactive: bool | None,
) -> None:
    """Show ``render`` with sliders, or call it once with ``defaults`` (static fallback).

    Returns nothing: returning the widget would make Jupyter display it a second time.
    """
    use_widgets = widgets_enabled() if interactive is None else interactive
    if not use_widgets:
        render(**defaults)
        return
    import ipywidgets
    from IPython.display import display

    display(ipywidgets.interactive(render, **build_controls(ipywidgets)))


def _slider(ipw: Any, value: float, low: float, high: float, step: float, description: str) -> Any:
    return ipw.FloatSlider(
        value=value,
        min=low,
        max=high,
        step=step,
        description=description,
        continuous_update=False,
        style={"description_width": "initial"},
    )


def interactive_pixel_blend(
    fgr_color: str = "#e8b04a",
    bgr_color: str = "#2a6fdb",
    alpha: float = 0.5,
    interactive: bool | None = None,
) -> None:
    """One pixel of the matting equation: pick F, B and α, see ``αF + (1 − α)B``. Chapter 01."""

    def render(alpha: float, foreground: str, background: str) -> None:
        f, b = _hex_to_rgb(foreground), _hex_to_rgb(background)
        pixel = torch.full((1, 1, 1), float(alpha))
        i = matting.composite(torch.tensor(f).view(3, 1, 1), pixel, torch.tensor(b).view(3, 1, 1))
        i = i[:, 0, 0].tolist()
        rgb = ", ".join(f"{v:.2f}" for v in i)
        color_swatches(
            [f, b, i],
            ["foreground F", "background B", f"I = {alpha:.2f}·F + {1 - alpha:.2f}·B\n({rgb})"],
            ramp=(f, b, float(alpha)),
        )
        plt.show()

    _run(
        render,
        {"alpha": alpha, "foreground": fgr_color, "background": bgr_color},
        lambda ipw: {
            "alpha": _slider(ipw, alpha, 0.0, 1.0, 0.05, "α"),
            "foreground": ipw.ColorPicker(value=fgr_color, description="F"),
            "background": ipw.ColorPicker(value=bgr_color, description="B"),
        },
        interactive,
    )


def interactive_composite(
    fgr: torch.Tensor,
    pha: torch.Tensor,
    color: str = "#78ff9b",
    interactive: bool | None = None,
) -> None:
    """Composite a cut-out on a colour; compare the true soft alpha with a binary mask. Chapter 01.

    Sliders: the background colour, and a threshold that turns α into a hard mask
    (``0`` keeps the true soft alpha). ``fgr`` (3,H,W) and ``pha`` (1,H,W) in [0, 1].
    """
    matting.composite(fgr, pha, fgr)  # validates shapes with a clear error

    def render(background: str, binary_threshold: float) -> None:
        mask = pha if binary_threshold <= 0 else (pha >= binary_threshold).to(pha.dtype)
        out = matting.composite_on_color(fgr, mask, _hex_to_rgb(background))
        label = (
            "true soft α" if binary_threshold <= 0 else f"binary mask α ≥ {binary_threshold:.2f}"
        )
        show_images([mask, out], [label, "composite"], size=4.0)

    _run(
        render,
        {"background": color, "binary_threshold": 0.0},
        lambda ipw: {
            "background": ipw.ColorPicker(value=color, description="background"),
            "binary_threshold": _slider(ipw, 0.0, 0.0, 0.95, 0.05, "binary threshold (0 = soft)"),
        },
        interactive,
    )


def interactive_keying(
    src: torch.Tensor,
    bgr: torch.Tensor,
    true_pha: torch.Tensor | None = None,
    threshold: float = 0.15,
    softness: float = 0.1,
    interactive: bool | None = None,
) -> None:
    """Difference keying with threshold and softness sliders. Chapter 01.

    Shows the keyed alpha and, when ``true_pha`` is given, the error ``|α − α*|`` and its
    mean (×1000), so students can search for the best setting and see that none is good.
    ``src``/``bgr`` (3,H,W), ``true_pha`` (1,H,W), all in [0, 1].
    """

    def render(threshold: float, softness: float) -> None:
        pha = matting.difference_key(src, bgr, threshold=threshold, softness=softness)
        images, titles = [src, pha], ["frame I", f"keyed α (t={threshold:.2f}, s={softness:.2f})"]
        if true_pha is not None:
            error = (pha - true_pha).abs()
            images.append(error)
            titles.append(f"|α − α*|, mean {1000 * error.mean().item():.1f} ×10⁻³")
        show_images(images, titles, size=3.5)

    _run(
        render,
        {"threshold": threshold, "softness": softness},
        lambda ipw: {
            "threshold": _slider(ipw, threshold, 0.0, 0.8, 0.01, "threshold"),
            "softness": _slider(ipw, softness, 0.0, 0.5, 0.01, "softness"),
        },
        interactive,
    )
