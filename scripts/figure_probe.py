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
    if shown.size == 0:
        return {"kind": kind, "shape": list(raw.shape), "spread": 0.0, "clipped": 0.0, "white": 0.0}
    return {
        "kind": kind,
        "shape": list(raw.shape),
        "spread": float(shown.max() - shown.min()),
        "clipped": clipped,
        "white": float((shown >= 1.0 - 1e-6).all(axis=-1).mean()),
    }


def panel_problem(stats: dict[str, Any]) -> str | None:
    """None when a panel shows something; otherwise what is wrong with it, in words."""
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
    return None


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

    def after_cell(result: Any) -> None:
        if not drawn:
            return
        lines = []
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
