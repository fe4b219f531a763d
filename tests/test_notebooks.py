"""Every chapter notebook: generated cells, navigation, no committed outputs, a clean run.

Parametrised over ``notebooks/*.ipynb``, so new chapters are picked up automatically.
The execution tests start a real Jupyter kernel of this interpreter with
``MATTINGKIT_FAST=1`` in ``notebooks/`` (see ``scripts/run_notebook.py``); they are
marked ``slow`` but are part of the default run. Each notebook is executed once per test
session (:func:`executed`), with every image panel recorded, and that one run serves both
this file and ``tests/test_figures.py``. Run times are printed (``pytest -s``) and
recorded as the junit properties ``seconds`` and ``cpu_seconds``; they are reported, never asserted: a test must
not depend on how fast or how loaded the machine is. Each kernel gets a temporary folder of
its own, which must be empty once the kernel has shut down.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from mattingkit import runtime
from mattingkit.notebook.exercises import solution_code

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 1800  # seconds per cell: only a guard against a hung kernel, not a speed test
MIN_FIGURES = 2
#: Folders in the temporary folder that are not a chapter's litter: torch's per-user compile
#: cache (``torchinductor_<user>``), made when ``torch._dynamo`` is imported (an optimizer
#: step imports it), one folder shared and reused by every torch process.
SHARED_CACHES = ("torchinductor_",)


def _load_script(name: str) -> types.ModuleType:
    if name in sys.modules:  # one copy per session, shared with tests/test_figures.py
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


strip_notebooks = _load_script("strip_notebooks")
sync_notebooks = _load_script("sync_notebooks")
run_notebook = _load_script("run_notebook")

by_name = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])


_RUNS: dict[Path, tuple[object, nbformat.NotebookNode] | BaseException] = {}


def executed(path: Path) -> tuple[object, nbformat.NotebookNode]:
    """Run ``path`` once per session in fast mode, recording its image panels.

    After the chapter's last cell, the same kernel runs the chapter's solution cells as a
    student does on request (``%%solution`` line removed; ``run_notebook.solution_sources``):
    they are appended to the returned notebook, so its own cells keep their indices and
    ``tests/test_solutions.py`` needs no second run. Returns ``(RunResult, executed
    notebook)``; a failed run is cached too (and re-raised each time), so a broken chapter
    is not executed again by every test that needs it.
    """
    if path not in _RUNS:
        try:
            _RUNS[path] = run_notebook.run_notebook(
                path,
                timeout=CELL_TIMEOUT,
                probe_figures=True,
                extra_cells=run_notebook.solution_sources(path),
            )
        except Exception as error:  # noqa: BLE001 - cached, re-raised below
            _RUNS[path] = error
    run = _RUNS[path]
    if isinstance(run, BaseException):
        raise run
    return run


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


@by_name
def test_has_a_self_check_with_collapsed_answers(path):
    """Mid-chapter "Check yourself" questions, answered in a <details> block before the exercises."""
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
    exercises = next((i for i, c in enumerate(cells) if "## Exercises" in c.source), len(cells))
    questions = [i for i, c in enumerate(cells[:exercises]) if "Check yourself" in c.source]
    assert questions, f"{path.name} has no 'Check yourself' questions before its exercises"
    answers = [
        i
        for i, c in enumerate(cells[:exercises])
        if "<details>" in c.source and "</details>" in c.source and i >= questions[0]
    ]
    assert answers, f"{path.name}: the 'Check yourself' answers are not in a <details> block"


@by_name
def test_navigation_metadata(path):
    """The paper's sections, prerequisites and a measured run time, for the header cell."""
    settings = nbformat.read(path, as_version=4).metadata.get("mattingkit", {})
    missing = [key for key in sync_notebooks.NAVIGATION_KEYS if not settings.get(key)]
    assert not missing, (
        f"{path.name}: metadata.mattingkit lacks {', '.join(missing)}; set them with "
        f"`python scripts/sync_notebooks.py {path.relative_to(ROOT)} --set KEY=VALUE`"
    )
    assert settings["runtime"].get("fast"), f"{path.name}: no measured fast-mode run time"


@by_name
def test_links_the_notation_table_and_further_reading(path):
    """One notation table for all chapters, linked from every header; reading in every footer."""
    assert (ROOT / "notebooks" / sync_notebooks.NOTATION).is_file()
    cells = nbformat.read(path, as_version=4).cells
    assert f"]({sync_notebooks.NOTATION})" in cells[0].source, f"{path.name}: no notation link"
    assert "### Further reading\n\n* " in cells[-1].source, f"{path.name}: no further reading"


def test_sync_renders_further_reading_in_the_footer(tmp_path):
    path = _chapter(
        tmp_path, "01_x.ipynb", "X", ["## Summary"], further_reading=["Porter and Duff, 1984"]
    )
    assert sync_notebooks.main([str(path)]) == 0
    nb = nbformat.read(path, as_version=4)
    assert "### Further reading\n\n* Porter and Duff, 1984\n" in nb.cells[-1].source
    assert "**Previous:**" in nb.cells[-1].source
    assert f"[the paper's symbols beside the code's names]({sync_notebooks.NOTATION})" in (
        nb.cells[0].source
    )


@by_name
def test_links_to_chapters_exist(path):
    """Every link to a notebook points at a chapter that exists (no stale cross-references)."""
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    targets = set(re.findall(r"\]\(([0-9]{2}[a-z]?_[A-Za-z0-9_]+\.ipynb)(?:#[^)]*)?\)", text))
    names = {p.name for p in NOTEBOOKS}
    assert targets <= names, f"{path.name} links to missing chapters: {sorted(targets - names)}"


def _assigned_names(source: str) -> set[str]:
    """Names a cell binds at top level: assignments, functions, classes, imports, loops."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: not used in the exercise cells
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        else:
            for target in ast.walk(node):
                if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store):
                    names.add(target.id)
    return names


@by_name
def test_solutions_never_overwrite_the_students_names(path):
    """A collapsed solution cell must not rebind what the student wrote in an exercise cell."""
    cells = nbformat.read(path, as_version=4).cells
    start = next(
        (
            i
            for i, c in enumerate(cells)
            if c.cell_type == "markdown" and "## Exercises" in c.source
        ),
        None,
    )
    assert start is not None, f"{path.name} has no '## Exercises' heading"
    student, solution = set(), set()
    for cell in cells[start:]:
        if cell.cell_type != "code":
            continue
        code = solution_code(cell.source)
        (student if code is None else solution).update(_assigned_names(code or cell.source))
    clash = student & solution
    assert not clash, f"{path.name}: the solution cell rebinds the student's {sorted(clash)}"


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


def _chapter(folder: Path, name: str, title: str, body: list[str], **settings: object) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["mattingkit"] = {"title": title, **settings}
    nb.cells = [nbformat.v4.new_markdown_cell(text) for text in body]
    path = folder / name
    nbformat.write(nb, path)
    return path


def test_sync_writes_navigation_from_metadata_and_headings(tmp_path):
    first = _chapter(tmp_path, "01_first.ipynb", "First", ["## Learning objectives"])
    second = _chapter(
        tmp_path,
        "02_second.ipynb",
        "Second",
        ["## Learning objectives\n\ntext", "```\n## not a heading\n```\n## 1. A section, here"],
        paper="Sec. 4.2, Fig. 3",
        prerequisites=["01", "PyTorch tensors"],
        runtime={"fast": "7 s", "full": "12 s", "gpu": "not measured"},
    )
    _chapter(tmp_path, "03_third.ipynb", "Third", ["## Summary"])
    assert sync_notebooks.main([str(first), str(second)]) == 0
    nb = nbformat.read(second, as_version=4)
    header, footer = nb.cells[0].source, nb.cells[-1].source
    assert (
        "[*Real-Time High-Resolution Background Matting*](https://arxiv.org/abs/2012.07810)"
        in header
    )
    assert "this chapter rebuilds Sec. 4.2, Fig. 3" in header
    assert "| **Before this chapter** | [01 · First](01_first.ipynb); PyTorch tensors |" in header
    assert "fast mode (`MATTINGKIT_FAST=1`) 7 s, full 12 s" in header
    assert "← [01 · First](01_first.ipynb)" in header and "[03 · Third](03_third.ipynb) →" in header
    assert "[Learning objectives](#Learning-objectives)" in header
    assert "[1. A section, here](#1.-A-section,-here)" in header
    assert "not a heading" not in header
    assert "**Previous:** [01 · First](01_first.ipynb)" in footer
    assert "**Next:** [03 · Third](03_third.ipynb)" in footer
    first_footer = nbformat.read(first, as_version=4).cells[-1].source
    assert "this is the first" in first_footer and "[02 · Second](02_second.ipynb)" in first_footer
    # A chapter without navigation metadata still gets a header: paper link and "not measured".
    assert "Run time** | fast mode (`MATTINGKIT_FAST=1`) not measured" in (
        nbformat.read(first, as_version=4).cells[0].source
    )
    # Headings and metadata are the one source: renaming a section makes the header stale.
    nb.cells[3].source = nb.cells[3].source.replace("A section", "A renamed section")
    nbformat.write(nb, second)
    assert sync_notebooks.main(["--check", str(second)]) == 1


def test_sync_set_stores_json_or_text(tmp_path):
    path = _chapter(tmp_path, "05_x.ipynb", "X", ["## Summary"])
    assert sync_notebooks.main([str(path), "--set", 'runtime={"fast": "9 s"}']) == 0
    assert sync_notebooks.main([str(path), "--set", "paper=Sec. 4.3, Eq. 1-5"]) == 0
    settings = nbformat.read(path, as_version=4).metadata["mattingkit"]
    assert settings["runtime"] == {"fast": "9 s"} and settings["paper"] == "Sec. 4.3, Eq. 1-5"
    with pytest.raises(SystemExit):
        sync_notebooks.main([str(path), "--set", "no-equals-sign"])


def test_pre_commit_hooks_call_the_scripts():
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    assert "entry: python scripts/strip_notebooks.py" in config
    assert "entry: python scripts/sync_notebooks.py --check" in config


def test_sync_requires_a_title(tmp_path, capsys):
    path = tmp_path / "08_untitled.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    assert sync_notebooks.main(["--check", str(path)]) == 1
    assert "metadata.mattingkit.title is missing" in capsys.readouterr().out


def _echoed_booleans(nb: nbformat.NotebookNode) -> list[int]:
    """Cells whose displayed value is a bare True/False (e.g. a check's return value)."""
    return [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "execute_result"
        and output.get("data", {}).get("text/plain", "").strip() in ("True", "False")
    ]


@pytest.mark.slow
@by_name
def test_runs_in_fast_mode(path, record_property):
    result, nb = executed(path)
    record_property("seconds", result.seconds)
    record_property("cpu_seconds", result.cpu_seconds)
    slowest = ", ".join(f"cell {index} {seconds:.0f} s" for index, seconds in result.slowest())
    print(
        f"\n{path.name}: {result.seconds:.1f} s wall, {result.cpu_seconds:.1f} s CPU, "
        f"{result.figures} figures (slowest: {slowest})"
    )
    assert result.figures >= MIN_FIGURES, f"{path.name} shows only {result.figures} figure(s)"
    echoed = _echoed_booleans(nb)
    assert not echoed, f"{path.name}: cells {echoed} display a bare True/False"


@pytest.mark.slow
@by_name
def test_leaves_nothing_in_the_temporary_folder(path):
    """A chapter's scratch files (chapter 06's checkpoints, 07's videos: hundreds of MB) go
    when its kernel shuts down. The kernel had a temporary folder of its own (``TMPDIR``,
    see scripts/run_notebook.py), so no other process can fool this check."""
    result, _ = executed(path)
    left = [name for name in result.leftovers if not name.startswith(SHARED_CACHES)]
    assert left == [], f"{path.name} left {left} in its temporary folder"
