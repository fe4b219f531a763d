"""Record every image panel a notebook draws, and say whether it shows anything.

A figure can run without error and still show nothing: an 8-bit frame cast to float
without dividing by 255 is clipped to pure white, an alpha drawn over the wrong value
range saturates, a map of zeros is one flat colour. This module catches those panels.

* In a kernel, :func:`install` wraps ``matplotlib.axes.Axes.imshow`` (every ``imshow``,
  ``plt.imshow`` and the ``mattingkit.notebook.plotting`` helpers go through it) and, after each
  cell, appends one JSON line per image drawn in that cell to a report file: what the
  panel is called and :func:`panel_stats` of what it shows. ``scripts/run_notebook.py``
  loads it into the kernel with ``probe_figures=True``; nothing in the notebook changes.
* :func:`panel_problem` judges those statistics (``tests/test_figures.py``).

Only the values the viewer sees are judged: for a single-channel image, the data through
its colour map and value range; for a colour image, the RGB values as matplotlib draws
them (floats clipped to [0, 1], 8-bit divided by 255).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

# A panel whose shown colours span less than one 8-bit step is blank.
MIN_SPREAD = 1.0 / 255
# A single-channel panel with more of its values outside the colour range than this is
# clipped: its colour scale does not fit its data (an alpha in [0, 1] drawn with a 0 to 0.5
# scale, a 0/1 mask drawn over 0 to 0.3). Amplified difference maps stay well below.
MAX_CLIPPED = 0.25
# A colour panel with more pure-white pixels than this is washed out (e.g. an 8-bit frame
# cast to float without dividing by 255: every non-zero value becomes 1.0).
MAX_WHITE = 0.85
# A single-channel panel whose values span less than this share of its colour scale has a
# scale far wider than its data (an error map below 0.4 drawn over 0 to 1 looks black).
MIN_COVERAGE = 0.4
# A single-channel panel is ruled by outliers when, of its lit pixels (above the bottom 1%
# of the scale), 99% sit in the bottom DIM_LEVEL of the scale: one hot pixel set the
# contrast and everything else is near black. A sparse map whose lit pixels are bright
# (a mask, a few refined patches) is fine.
DIM_LEVEL = 0.10
# Texts (titles, labels, tick labels) whose boxes overlap each other or another panel's
# image by more than this many square pixels collide (e.g. a second row's titles drawn
# over the first row's images).
MAX_OVERLAP_PX = 4.0


def panel_stats(image: Any, given: Any = None) -> dict[str, Any]:
    """What one ``AxesImage`` shows: value spread, clipped share, white share, shape.

    ``given`` is the array that was passed to ``imshow``: matplotlib clips float RGB to
    [0, 1] as it stores it, so only the input tells how much of a colour image was clipped.
    """
    data = image.get_array()
    raw = np.ma.getdata(data)
    valid = ~np.ma.getmaskarray(data)
    if raw.ndim == 2:
        values = raw.astype(np.float64)
        finite = valid & np.isfinite(values)
        low, high = float(image.norm.vmin), float(image.norm.vmax)
        tolerance = 1e-6 * max(1.0, abs(high - low))
        outside = (values < low - tolerance) | (values > high + tolerance)
        clipped = float(outside[finite].mean()) if finite.any() else 0.0
        shown = image.to_rgba(np.ma.masked_invalid(values))[..., :3][finite]
        kind = "scalar"
        scale = _scale_use(values[finite], low, high)
    else:
        rgb = raw[..., :3]
        pixels = valid if valid.ndim == 2 else valid[..., :3].all(axis=-1)
        if np.issubdtype(rgb.dtype, np.integer):
            shown = rgb.astype(np.float64) / 255.0
            clipped = 0.0
        else:
            values = rgb.astype(np.float64)
            source = values
            if given is not None and np.shape(given)[:2] == values.shape[:2]:
                source = np.asarray(given, dtype=np.float64)[..., :3]
            clipped = float(((source < 0) | (source > 1)).any(axis=-1)[pixels].mean())
            shown = np.clip(values, 0.0, 1.0)
        shown = shown[pixels]
        kind = "rgb"
        scale = {}
    if shown.size == 0:
        return {"kind": kind, "shape": list(raw.shape), "spread": 0.0, "clipped": 0.0, "white": 0.0}
    return {
        "kind": kind,
        "shape": list(raw.shape),
        "spread": float(shown.max() - shown.min()),
        "clipped": clipped,
        "white": float((shown >= 1.0 - 1e-6).all(axis=-1).mean()),
        **scale,
    }


def _scale_use(values: np.ndarray, low: float, high: float) -> dict[str, float]:
    """How a single-channel panel uses its colour scale [low, high].

    ``coverage``: the share of the scale its values span; ``lit``: the share of pixels
    above the bottom 1% of the scale; ``lit_p99``: the 99th percentile of those pixels'
    positions on the scale (0 bottom, 1 top).
    """
    if values.size == 0 or not high > low:
        return {}
    position = np.clip((values - low) / (high - low), 0.0, 1.0)
    lit = position[position > 0.01]
    return {
        "coverage": float(position.max() - position.min()),
        "lit": float(lit.size / position.size),
        "lit_p99": float(np.percentile(lit, 99)) if lit.size else 0.0,
    }


def panel_problem(stats: dict[str, Any]) -> str | None:
    """None when a panel shows something; otherwise what is wrong with it, in words.

    A ``"figure"`` entry (one per figure shown, see :func:`install`) has a problem when
    its texts collide (:func:`text_overlaps`).
    """
    if stats.get("kind") == "figure":
        overlaps = stats.get("overlaps", [])
        return f"overlapping text: {'; '.join(overlaps[:3])}" if overlaps else None
    if stats["spread"] < MIN_SPREAD:
        return "blank: every pixel shows the same colour"
    if stats["clipped"] > MAX_CLIPPED:
        return (
            f"{100 * stats['clipped']:.0f}% of its values lie outside the colour range "
            "(clipped: wrong value range, or 8-bit values read as floats?)"
        )
    if stats["kind"] == "rgb" and stats["white"] > MAX_WHITE:
        return (
            f"washed out: {100 * stats['white']:.0f}% of its pixels are pure white "
            "(an 8-bit image cast to float without dividing by 255?)"
        )
    if stats.get("coverage", 1.0) < MIN_COVERAGE:
        return (
            f"colour scale far wider than the data: its values span only "
            f"{100 * stats['coverage']:.0f}% of the scale (give it a range that fits the data)"
        )
    if stats.get("lit", 0.0) > 0.001 and stats.get("lit_p99", 1.0) < DIM_LEVEL:
        return (
            f"contrast ruled by outliers: 99% of its lit pixels sit in the bottom "
            f"{100 * DIM_LEVEL:.0f}% of the colour scale (use percentiles, e.g. "
            "value_range='percentile')"
        )
    return None


def text_overlaps(fig: Any) -> list[str]:
    """Texts of a drawn figure that collide with another text or another panel's image.

    Compares the boxes of every visible text (titles, suptitle, axis and tick labels,
    legends, annotations) with each other and with the images of the *other* axes, after
    a draw. A text over its own axes' image (a label placed on a picture) is intended.
    """
    from matplotlib.image import AxesImage
    from matplotlib.text import Text

    fig.draw_without_rendering()  # lays the figure out as it was drawn, on any canvas
    renderer = fig._get_renderer()
    texts = []
    for text in _drawn_texts(fig):
        if not isinstance(text, Text) or not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        if box.width > 0 and box.height > 0:
            texts.append((text, box))
    images = [
        (image.axes, image.get_window_extent(renderer))
        for image in fig.findobj(AxesImage)
        if image.get_visible() and image.axes is not None
    ]

    def area(a: Any, b: Any) -> float:
        width = min(a.x1, b.x1) - max(a.x0, b.x0)
        height = min(a.y1, b.y1) - max(a.y0, b.y0)
        return width * height if width > 0 and height > 0 else 0.0

    problems = []
    for index, (text, box) in enumerate(texts):
        for other, other_box in texts[index + 1 :]:
            if area(box, other_box) > MAX_OVERLAP_PX:
                problems.append(f"{text.get_text()!r} overlaps {other.get_text()!r}")
        for axes, image_box in images:
            if axes is not _owner(text) and area(box, image_box) > MAX_OVERLAP_PX:
                title = axes.get_title() or "untitled"
                problems.append(f"{text.get_text()!r} overlaps the image of panel {title!r}")
    return problems


def _drawn_texts(fig: Any) -> list[Any]:
    """The texts a viewer sees: figure texts, and per visible axes its titles, texts,
    legend, and (when its axis is on) axis labels and the tick labels inside its limits."""
    texts = [*fig.texts, getattr(fig, "_suptitle", None), getattr(fig, "_supxlabel", None)]
    texts += [getattr(fig, "_supylabel", None)]
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            texts += [*legend.get_texts(), legend.get_title()]
        if not ax.axison:
            continue
        for axis in (ax.xaxis, ax.yaxis):
            if not axis.get_visible():
                continue
            texts.append(axis.label)
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks():
                if tick.get_visible() and low <= tick.get_loc() <= high:
                    texts += [tick.label1, tick.label2]
    # Once each: the suptitle is also one of fig.texts.
    return list({id(text): text for text in texts if text is not None}.values())


def _owner(text: Any) -> Any:
    """The axes a text belongs to (a title's, a tick label's), or None for figure texts."""
    return getattr(text, "axes", None)


def _label(image: Any) -> str:
    ax = image.axes
    figure = ax.figure if ax is not None else None
    parts = []
    suptitle = getattr(figure, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        parts.append(suptitle.get_text())
    if ax is not None and ax.get_title():
        parts.append(ax.get_title())
    return " / ".join(parts).replace("\n", " ") or "(untitled panel)"


def install(report: str | Path) -> None:
    """In an IPython kernel: record every ``imshow`` and write its stats after each cell."""
    import matplotlib.axes
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("figure_probe.install() must run inside an IPython kernel")
    report = Path(report)
    drawn: list[Any] = []
    original = matplotlib.axes.Axes.imshow

    @functools.wraps(original)  # pyplot checks the wrapped method's name when it is imported
    def imshow(self: Any, *args: Any, **kwargs: Any) -> Any:
        image = original(self, *args, **kwargs)
        given = args[0] if args else kwargs.get("X")
        drawn.append((image, given if isinstance(given, np.ndarray) else None))
        return image

    matplotlib.axes.Axes.imshow = imshow

    import matplotlib.backend_bases

    shown: list[dict[str, Any]] = []
    print_figure = matplotlib.backend_bases.FigureCanvasBase.print_figure

    @functools.wraps(print_figure)
    def print_and_check(self: Any, *args: Any, **kwargs: Any) -> Any:
        printed = print_figure(self, *args, **kwargs)
        figure = self.figure
        try:
            overlaps = text_overlaps(figure)
        except Exception as error:  # noqa: BLE001 - report, never break the notebook
            overlaps = [f"could not check: {type(error).__name__}: {error}"]
        titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
        suptitle = getattr(figure, "_suptitle", None)
        label = suptitle.get_text() if suptitle is not None else (titles[0] if titles else "")
        shown.append({"label": f"figure {label!r}", "kind": "figure", "overlaps": overlaps})
        return printed

    matplotlib.backend_bases.FigureCanvasBase.print_figure = print_and_check

    def after_cell(result: Any) -> None:
        if not drawn and not shown:
            return
        lines = []
        for entry in shown:
            lines.append(json.dumps({**entry, "execution_count": result.execution_count}))
        shown.clear()
        for image, given in drawn:
            try:
                entry = {"label": _label(image), **panel_stats(image, given)}
            except Exception as error:  # noqa: BLE001 - report, never break the notebook
                entry = {"label": _label(image), "error": f"{type(error).__name__}: {error}"}
            entry["execution_count"] = result.execution_count
            lines.append(json.dumps(entry))
        drawn.clear()
        with report.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")

    shell.events.register("post_run_cell", after_cell)


def read_report(report: str | Path) -> list[dict[str, Any]]:
    """The panels recorded in ``report`` (empty when nothing was drawn)."""
    path = Path(report)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
