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


def test_probe_records_panels_in_a_kernel_like_shell(tmp_path, monkeypatch):
    """``install`` wraps imshow and reports after each cell (a fake shell stands in)."""
    import matplotlib.axes

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
    """End to end: the kernel-side probe flags the chapter-08 bug, and only that panel.

    A scratch notebook draws an 8-bit frame twice through ``mattingkit.notebook.plotting``: once as
    shipped, then with the bug planted in the kernel (uint8 cast to float without /255).
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
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    path = tmp_path / "planted.ipynb"
    nbformat.write(nb, path)
    result, _ = run_notebook.run_notebook(path, timeout=300, probe_figures=True)
    assert [panel["label"] for panel in result.panels] == ["as shipped", "planted bug"]
    assert sorted(result.cell_cpu_seconds) == [0, 1]  # the cell clock ran beside the probe
    blank = result.blank_panels()
    assert len(blank) == 1 and "'planted bug'" in blank[0], blank
    assert "washed out" in blank[0] or "blank" in blank[0], blank
