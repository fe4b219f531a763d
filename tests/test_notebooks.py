"""Every chapter notebook: generated first cells, no committed outputs, and a clean run.

Parametrised over ``notebooks/*.ipynb``, so new chapters are picked up automatically.
The execution tests start a real Jupyter kernel of this interpreter with
``MATTINGKIT_FAST=1`` in ``notebooks/`` (see ``scripts/run_notebook.py``); they are
marked ``slow`` but are part of the default run. Run times are printed (``pytest -s``)
and recorded as the junit property ``seconds``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from mattingkit import runtime

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_SECONDS = 300
MIN_FIGURES = 2


def _load_script(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


strip_notebooks = _load_script("strip_notebooks")
sync_notebooks = _load_script("sync_notebooks")
run_notebook = _load_script("run_notebook")

by_name = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])


def test_there_are_chapters():
    assert any(p.name.startswith("01_") for p in NOTEBOOKS), "chapter 01 is missing"


@by_name
def test_committed_without_outputs(path):
    assert strip_notebooks.is_clean(path), (
        f"{path.name} has outputs or volatile metadata; run `python scripts/strip_notebooks.py`"
    )


@by_name
def test_first_cells_are_generated(path):
    nb = nbformat.read(path, as_version=4)
    expected = sync_notebooks.synced(nb, path)
    for got, want in zip(nb.cells[:2], expected.cells[:2]):
        assert (got.cell_type, got.source, got.metadata) == (
            want.cell_type,
            want.source,
            want.metadata,
        ), f"{path.name}: first cells drifted; run `python scripts/sync_notebooks.py`"
    assert nb == expected, f"{path.name} is out of sync; run `python scripts/sync_notebooks.py`"
    assert runtime.colab_notebook_url(path.name) in nb.cells[0].source
    assert f"/blob/{runtime.REPO_BRANCH}/notebooks/{path.name})" in nb.cells[0].source


@by_name
def test_has_learning_objectives_exercises_and_summary(path):
    markdown = "\n".join(
        c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"
    )
    for heading in ("Learning objectives", "Exercises", "Summary"):
        assert heading in markdown, f"{path.name} has no '{heading}' section"


def _setup_source() -> str:
    return sync_notebooks.setup_cell(custom_widgets=True).source


def test_setup_cell_is_a_no_op_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    exec(compile(_setup_source(), "setup-cell", "exec"), {})
    assert calls == []


def test_setup_cell_on_colab_clones_and_installs(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    commands, installs = [], []
    monkeypatch.setattr(subprocess, "run", lambda command, **k: commands.append(command))
    monkeypatch.setattr(
        runtime, "colab_install", lambda checkout, **k: installs.append((str(checkout), k))
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    exec(compile(_setup_source(), "setup-cell", "exec"), {})
    assert commands == [
        [
            "git",
            "clone",
            "--depth",
            "1",
            "--branch",
            runtime.REPO_BRANCH,
            runtime.REPO_URL,
            str(runtime.COLAB_CHECKOUT),
        ]
    ]
    assert installs == [(str(runtime.COLAB_CHECKOUT), {"custom_widgets": True})]
    assert sys.path[0] == str(runtime.COLAB_CHECKOUT)


def test_strip_check_finds_outputs_and_cleans_them(tmp_path, capsys):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=3)
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    cell.metadata["ExecuteTime"] = {"start": "now"}
    nb.cells = [cell]
    nb.metadata["widgets"] = {"state": {}}
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, path)
    assert strip_notebooks.main(["--check", str(path)]) == 1
    assert "dirty.ipynb" in capsys.readouterr().out
    assert strip_notebooks.main([str(path)]) == 0
    assert strip_notebooks.main(["--check", str(path)]) == 0
    cleaned = nbformat.read(path, as_version=4)
    assert cleaned.cells[0].outputs == [] and cleaned.cells[0].execution_count is None
    assert "widgets" not in cleaned.metadata and cleaned.cells[0].source == "print(1)"


def test_sync_check_catches_a_drifted_badge(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["mattingkit"] = {"title": "Demo"}
    nb.cells = [nbformat.v4.new_markdown_cell("Body")]
    path = tmp_path / "07_demo.ipynb"
    nbformat.write(nb, path)
    assert sync_notebooks.main(["--check", str(path)]) == 1
    assert sync_notebooks.main([str(path)]) == 0
    assert sync_notebooks.main(["--check", str(path)]) == 0
    synced = nbformat.read(path, as_version=4)
    assert synced.cells[0].source.startswith("# 07 · Demo")
    assert synced.cells[2].source == "Body"
    synced.cells[0].source = synced.cells[0].source.replace("/blob/main/", "/blob/old/")
    nbformat.write(synced, path)
    assert sync_notebooks.main(["--check", str(path)]) == 1


def test_pre_commit_hooks_call_the_scripts():
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    assert "entry: python scripts/strip_notebooks.py" in config
    assert "entry: python scripts/sync_notebooks.py --check" in config


def test_sync_requires_a_title(tmp_path, capsys):
    path = tmp_path / "08_untitled.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    assert sync_notebooks.main(["--check", str(path)]) == 1
    assert "metadata.mattingkit.title is missing" in capsys.readouterr().out


@pytest.mark.slow
@by_name
def test_runs_in_fast_mode(path, record_property):
    result, _ = run_notebook.run_notebook(path, timeout=MAX_SECONDS)
    record_property("seconds", result.seconds)
    print(f"\n{path.name}: {result.seconds:.1f} s, {result.figures} figures")
    assert result.figures >= MIN_FIGURES, f"{path.name} shows only {result.figures} figure(s)"
    assert result.seconds < MAX_SECONDS, f"{path.name} took {result.seconds:.0f} s in fast mode"
