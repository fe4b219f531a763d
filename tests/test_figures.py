"""Figures that show something: every image panel of every chapter, and the checks behind it.

A chapter can run cleanly and still draw a blank panel (an 8-bit frame cast to float
without dividing by 255 turns white; an alpha drawn over a 0-0.5 colour scale saturates).
``scripts/figure_probe.py`` records every ``imshow`` of a notebook run and judges what the
viewer sees. The chapter tests reuse the fast-mode execution of ``tests/test_notebooks.py``
(one run per notebook and session); the unit tests below show that the judge catches the
planted defects, uint8-to-float included, and passes honest panels.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest
import torch
from test_notebooks import NOTEBOOKS, _load_script, executed, run_notebook

from mattingkit.notebook import plotting

figure_probe = _load_script("figure_probe")
by_name = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])


def problems_of(fig: plt.Figure) -> list[str | None]:
    """The judge's verdict on every image panel of ``fig``."""
    return [
        figure_probe.panel_problem(figure_probe.panel_stats(image))
        for ax in fig.axes
        for image in ax.get_images()
    ]


def photo(seed: int = 0, size: int = 32) -> torch.Tensor:
    """A smooth colourful (3, H, W) image in [0, 1] with no exact 0 or 1, like a photo."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    noise = torch.rand(3, size, size, generator=torch.Generator().manual_seed(seed))
    return (0.1 + 0.8 * torch.stack([x, y, (x + y) / 2]) * 0.8 + 0.1 * noise).clamp(0.02, 0.98)


def test_honest_panels_pass():
    alpha = photo()[:1]
    fig = plotting.image_grid([photo(), alpha, (alpha - 0.5).abs()], value_range=None)
    assert problems_of(fig) == [None, None, None]
    plt.close(fig)


def test_a_constant_panel_is_blank():
    fig = plotting.image_grid([torch.full((3, 8, 8), 0.3), torch.zeros(1, 8, 8)])
    assert all("blank" in problem for problem in problems_of(fig))
    plt.close(fig)


def test_an_alpha_on_the_wrong_scale_is_clipped():
    alpha = torch.zeros(1, 20, 20)
    alpha[:, 5:] = 1.0  # 75% opaque, drawn over 0 to 0.5
    fig = plotting.image_grid([alpha], value_range=(0, 0.5))
    assert "outside the colour range" in problems_of(fig)[0]
    plt.close(fig)
    fig = plotting.image_grid([alpha], value_ranges=[(0, 1)])
    assert problems_of(fig) == [None]
    plt.close(fig)


def test_float_rgb_above_one_is_clipped():
    fig, ax = plt.subplots()
    overexposed = photo().permute(1, 2, 0).numpy() * 1.8  # floats up to about 1.7
    image = ax.imshow(overexposed)  # matplotlib clips it as it stores it: judge the input
    problem = figure_probe.panel_problem(figure_probe.panel_stats(image, overexposed))
    assert "outside the colour range" in problem
    plt.close(fig)


def test_uint8_images_show_like_their_float_versions():
    image = photo()
    as_uint8 = (image * 255).round().to(torch.uint8)
    fig = plotting.image_grid([image, as_uint8, as_uint8.permute(1, 2, 0).numpy()])
    shown = [ax.get_images()[0].get_array() for ax in fig.axes]
    np.testing.assert_allclose(shown[1], shown[0], atol=1 / 255)
    np.testing.assert_allclose(shown[2], shown[0], atol=1 / 255)
    assert problems_of(fig) == [None, None, None]
    plt.close(fig)


def test_planted_uint8_bug_is_caught(monkeypatch):
    """Plant the chapter-08 bug (uint8 cast to float without /255): the judge must fail it."""
    monkeypatch.setattr(plotting, "_as_unit_float", lambda array: array.astype(np.float32))
    frame = (photo() * 255).round().to(torch.uint8)
    fig = plotting.image_grid([frame, frame[:1]])
    problems = problems_of(fig)
    assert all(problems), problems  # both panels turn (almost) white: blank or washed out
    plt.close(fig)
    # A frame with a few black pixels is not constant, but still washed out.
    frame[:, :4] = 0
    fig = plotting.image_grid([frame])
    assert "washed out" in problems_of(fig)[0]
    plt.close(fig)


def hot_pixel_map(size: int = 40) -> torch.Tensor:
    """A feature map of dim values (0 to 0.05) with one hot pixel at 1: min-max hides it."""
    values = photo(3, size)[:1] * 0.05
    values[0, 3, 3] = 1.0
    return values


def test_contrast_ruled_by_one_hot_pixel_is_caught():
    fig = plotting.image_grid([hot_pixel_map()], value_range=None)  # min-max: one pixel rules
    assert "ruled by outliers" in problems_of(fig)[0]
    plt.close(fig)
    fig = plotting.image_grid([hot_pixel_map()], value_range="percentile")
    assert problems_of(fig) == [None]
    plt.close(fig)


def test_a_colour_scale_far_wider_than_the_data_is_caught():
    error_map = photo(4)[:1] * 0.35  # an error map that stays below 0.4
    fig = plotting.image_grid([error_map], value_ranges=[(0, 1)])
    assert "far wider than the data" in problems_of(fig)[0]
    plt.close(fig)
    top = float(error_map.max())
    fig = plotting.image_grid([error_map], value_ranges=[(0, top)], colorbar=True)
    assert problems_of(fig) == [None]
    plt.close(fig)


def test_sparse_bright_maps_are_not_outliers():
    """A mask with a few bright pixels (refined patches) is honest: it is not flagged."""
    mask = torch.zeros(1, 40, 40)
    mask[:, 10:12, 20:24] = 1.0
    fig = plotting.image_grid([mask, hot_pixel_map()], value_ranges=[(0, 1), "percentile"])
    assert problems_of(fig) == [None, None]
    plt.close(fig)


def test_overlapping_titles_are_caught():
    """Plant the chapter-01 layout bug: two rows of panels with too little height for the
    second row's titles, which then sit on the first row's images."""
    fig, axes = plt.subplots(2, 3, figsize=(12, 2 * 4 * 0.5625 + 0.4))
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < 5:
            ax.imshow(photo(index).permute(1, 2, 0).numpy()[:18])
            ax.set_title(f"panel {index}: 39×10⁻³")
    fig.tight_layout()
    overlaps = figure_probe.text_overlaps(fig)
    assert any("'panel 3: 39×10⁻³' overlaps the image of panel 'panel 0" in o for o in overlaps)
    assert "overlapping text" in figure_probe.panel_problem(
        {"kind": "figure", "overlaps": overlaps}
    )
    plt.close(fig)
    images = [photo(index)[:, :18] for index in range(5)]
    fig = plotting.image_grid(images, [f"panel {i}: 39×10⁻³" for i in range(5)], ncols=3, size=4)
    assert figure_probe.text_overlaps(fig) == []
    plt.close(fig)


def test_crowded_tick_labels_are_caught():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.bar([f"a long category name {i}" for i in range(6)], range(6))
    assert any("overlaps" in o for o in figure_probe.text_overlaps(fig))
    plt.close(fig)


def test_probe_records_panels_in_a_kernel_like_shell(tmp_path, monkeypatch):
    """``install`` wraps imshow and reports after each cell (a fake shell stands in)."""
    import matplotlib.axes
    import matplotlib.backend_bases

    callbacks = []

    class Events:
        def register(self, name, callback):
            assert name == "post_run_cell"
            callbacks.append(callback)

    class Shell:
        events = Events()

    class Result:
        execution_count = 7

    monkeypatch.setattr("IPython.get_ipython", lambda: Shell())
    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", matplotlib.axes.Axes.imshow)
    canvas = matplotlib.backend_bases.FigureCanvasBase  # install() wraps its print_figure too
    monkeypatch.setattr(canvas, "print_figure", canvas.print_figure)
    report = tmp_path / "panels.jsonl"
    figure_probe.install(report)
    fig = plotting.image_grid([photo(), torch.full((1, 8, 8), 0.5)], ["photo", "flat"])
    callbacks[0](Result())
    plt.close(fig)
    panels = figure_probe.read_report(report)
    assert [p["label"] for p in panels] == ["photo", "flat"]
    assert [p["execution_count"] for p in panels] == [7, 7]
    assert figure_probe.panel_problem(panels[0]) is None
    assert "blank" in figure_probe.panel_problem(panels[1])


@pytest.mark.slow
@by_name
def test_every_panel_shows_something(path):
    result, _ = executed(path)
    assert result.panels, f"{path.name} draws no image panel at all"
    blank = result.blank_panels()
    assert not blank, f"{path.name} has panels that show nothing:\n  " + "\n  ".join(blank)


@pytest.mark.slow
def test_a_planted_uint8_bug_fails_a_real_notebook_run(tmp_path):
    """End to end: the kernel-side probe flags the chapter-08 bug and colliding titles, and
    nothing else.

    A scratch notebook draws an 8-bit frame twice through ``mattingkit.notebook.plotting``: once as
    shipped, then with the bug planted in the kernel (uint8 cast to float without /255);
    then a figure whose second row's title is drawn over the first row's image.
    """
    frame = (
        "import numpy as np\n"
        "from mattingkit.notebook import plotting\n"
        "y, x = np.mgrid[0:48, 0:64]\n"
        "frame = np.stack([x * 3, y * 4, (x + y) * 2], axis=-1).astype(np.uint8) + 20\n"
    )
    cells = [
        frame + "plotting.show_images([frame], ['as shipped'])",
        "plotting._as_unit_float = lambda array: array.astype(np.float32)  # the planted bug\n"
        "plotting.show_images([frame], ['planted bug'])",
        "import matplotlib.pyplot as plt  # planted: a second row's title over the first row\n"
        "fig, axes = plt.subplots(2, 1, figsize=(4, 3.2))\n"
        "for ax, title in zip(axes, ['top', 'bottom row title']):\n"
        "    ax.imshow(np.linspace(0, 1, 64 * 48).reshape(48, 64)); ax.axis('off')\n"
        "    ax.set_title(title, fontsize=30)\n"
        "plt.show()",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    path = tmp_path / "planted.ipynb"
    nbformat.write(nb, path)
    result, _ = run_notebook.run_notebook(path, timeout=300, probe_figures=True)
    images = [panel for panel in result.panels if panel["kind"] != "figure"]
    assert [panel["label"] for panel in images] == [
        "as shipped",
        "planted bug",
        "top",
        "bottom row title",
    ]
    assert sorted(result.cell_cpu_seconds) == [0, 1, 2]  # the cell clock ran beside the probe
    blank = result.blank_panels()
    assert len(blank) == 2 and "'planted bug'" in blank[0], blank
    assert "washed out" in blank[0] or "blank" in blank[0], blank
    assert "overlapping text" in blank[1] and "'bottom row title' overlaps" in blank[1], blank
