"""Solutions reveal nothing on Run All, and each one passes its check when asked for.

Every chapter's solution cell is collapsed and starts with ``%%solution``
(``mattingkit.notebook.exercises``): Run All skips it. The fast-mode run of
``tests/test_notebooks.py`` (one per chapter and session) then runs the solution cells in
the same kernel, as a student does on request, and appends them to the executed notebook:
the chapter's own cells show what Run All shows, the appended cells what the student sees
on asking. So this file needs no run of its own. The planted cases below show that the
checks fail when a solution does print on Run All, or prose restates an answer.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from test_notebooks import NOTEBOOKS, executed, run_notebook

from mattingkit.notebook import exercises

by_name = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])

#: The answers of each chapter's exercises, as the solutions print them. None may appear in
#: the chapter's prose (markdown, including summaries and "Check yourself" answers), in a
#: code cell a student sees, or in any output of Run All; each must appear in what the
#: solutions print when asked for (so a pattern that no longer matches is noticed).
#: Exercises whose answer is a function have none: the code is the answer.
ANSWERS: dict[str, tuple[str, ...]] = {
    "01": (r"\b7 (?:unknowns|numbers)", r"\b4 (?:unknowns|numbers)"),  # exercise 1
    "02": (r"α\(1 − α\)\D{0,40}0\.25",),  # exercise 3: the largest spill factor
    "03": (r"\b9,?408\b",),  # exercise 2: parameters added to the stem
    "04": (r"\b474,?336\b",),  # exercise 3: MACs per patch
    "07": (r"\b1\.7\d\s?×",),  # exercise 2: GMac(4K) / GMac(HD) for MobileNetV2
}


def chapter_of(path) -> str:
    """``"04"`` for ``04_refinement.ipynb``, ``"04b"`` for ``04b_refinement_speed.ipynb``."""
    return path.name.split("_", 1)[0]


def solution_count(path) -> int:
    return len(run_notebook.solution_sources(path))


def output_text(cell: nbformat.NotebookNode) -> str:
    """Everything a code cell's outputs show as text (streams, results, errors)."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        data = output.get("data", {})
        parts += [data.get(kind, "") for kind in ("text/plain", "text/markdown", "text/html")]
        parts += output.get("traceback", [])
    return "\n".join(part if isinstance(part, str) else "".join(part) for part in parts)


def revealed(nb: nbformat.NotebookNode, patterns: tuple[str, ...], appended: int) -> list[str]:
    """Where an answer shows before it is asked for.

    ``nb`` is an executed chapter whose last ``appended`` cells are its solutions run on
    request; every other cell is what Run All shows: markdown, the code of cells that are
    not solution cells, and the outputs of every cell (a solution cell must have none).
    """
    hits = []
    for index, cell in enumerate(nb.cells[: len(nb.cells) - appended]):
        shown = [cell.source] if cell.cell_type == "markdown" else [output_text(cell)]
        if cell.cell_type == "code" and exercises.solution_code(cell.source) is None:
            shown.append(cell.source)
        for text in shown:
            for pattern in patterns:
                for match in re.finditer(pattern, text):
                    start = max(0, match.start() - 40)
                    hits.append(f"cell {index} ({cell.cell_type}): …{text[start : match.end()]!r}")
    return hits


def solution_cells_with_output(nb: nbformat.NotebookNode) -> list[int]:
    return [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        and exercises.solution_code(cell.source) is not None
        and cell.get("outputs")
    ]


# --- what every chapter must satisfy --------------------------------------------------------


@by_name
def test_solution_cells_are_collapsed_and_skipped(path):
    """Every collapsed code cell is a ``%%solution`` cell, and every solution cell is collapsed."""
    cells = nbformat.read(path, as_version=4).cells
    solutions = [c for c in cells if exercises.solution_code(c.source) is not None]
    assert solutions, f"{path.name} has no solution cell (first line {exercises.SOLUTION_MAGIC})"
    for index, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        hidden = cell.metadata.get("jupyter", {}).get("source_hidden", False)
        code = exercises.solution_code(cell.source)
        assert hidden == (code is not None), (
            f"{path.name} cell {index}: a collapsed code cell must start with "
            f"{exercises.SOLUTION_MAGIC} (and a solution cell must be collapsed)"
        )
        if code is not None:
            assert code.startswith(exercises.SOLUTION_HINT), (
                f"{path.name} cell {index}: the second line must tell how to run it"
            )


@pytest.mark.slow
@by_name
def test_run_all_reveals_no_answer(path):
    _, nb = executed(path)
    appended = solution_count(path)
    shown = solution_cells_with_output(nb)  # the appended cells have no %%solution line
    assert not shown, f"{path.name}: solution cells {shown} showed output on Run All"
    hits = revealed(nb, ANSWERS.get(chapter_of(path), ()), appended)
    assert not hits, f"{path.name} gives exercise answers away:\n  " + "\n  ".join(hits)


@pytest.mark.slow
@by_name
def test_each_solution_passes_its_check_when_asked_for(path):
    _, nb = executed(path)
    appended = solution_count(path)
    asked = nb.cells[len(nb.cells) - appended :]
    text = "\n".join(output_text(cell) for cell in asked)
    checks = run_notebook.solution_checks(nb, appended)
    assert checks, f"{path.name}: the solutions ran no check"
    failed = [line for line in checks if line.startswith("✗")]
    assert not failed, f"{path.name}: a solution fails its own check:\n  " + "\n  ".join(failed)
    for pattern in ANSWERS.get(chapter_of(path), ()):
        assert re.search(pattern, text), (
            f"{path.name}: the solutions no longer print {pattern!r}: update ANSWERS"
        )


# --- the mechanism, and planted failures ----------------------------------------------------


def test_solution_code_strips_only_the_magic_line():
    assert exercises.solution_code("%%solution\nx = 1") == "x = 1"
    assert exercises.solution_code("%%solution  # comment\nx = 1") == "x = 1"
    assert exercises.solution_code("x = 1\n%%solution") is None
    assert exercises.solution_code("%%time\nx = 1") is None


def test_the_magic_runs_nothing_and_shows_nothing(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        assert exercises.register_solution_magic(shell)
        result = shell.run_cell("%%solution\nanswer = 9408\nprint(answer)\nanswer")
        assert result.success and result.result is None
        assert "answer" not in shell.user_ns
        assert "9408" not in capsys.readouterr().out
    finally:
        InteractiveShell.clear_instance()


def _planted_chapter() -> nbformat.NotebookNode:
    """An executed chapter that gives its answer away twice, and asks for it once."""
    nb = nbformat.v4.new_notebook()
    summary = nbformat.v4.new_markdown_cell("## Summary\n\n* The stem gains 9,408 parameters.")
    leaky = nbformat.v4.new_code_cell("print(9408)")  # a solution without %%solution
    leaky.outputs = [nbformat.v4.new_output("stream", text="adds 9,408 parameters\n")]
    skipped = nbformat.v4.new_code_cell("%%solution\nprint(9408)")
    asked = nbformat.v4.new_code_cell("print(9408)")  # appended: the student asked
    asked.outputs = [nbformat.v4.new_output("stream", text="adds 9,408 parameters\n")]
    nb.cells = [summary, leaky, skipped, asked]
    return nb


def test_planted_answers_are_caught():
    nb = _planted_chapter()
    hits = revealed(nb, ANSWERS["03"], appended=1)
    assert {hit.split(" ")[1] for hit in hits} == {"0", "1"}, hits  # not 2, not the asked 3
    assert solution_cells_with_output(nb) == []
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="9,408\n")]
    assert solution_cells_with_output(nb) == [2]


@pytest.mark.slow
def test_a_planted_unguarded_solution_fails_a_real_run(tmp_path):
    """End to end in a real kernel: a ``%%solution`` cell shows nothing on Run All, a
    solution cell without it prints its answer and is caught; asked for, both run."""
    nb = nbformat.v4.new_notebook()
    answer = "print(f'adds {(6 - 3) * 64 * 7 * 7:,} parameters')"
    nb.cells = [
        nbformat.v4.new_code_cell("from mattingkit.notebook.exercises import passed"),
        nbformat.v4.new_code_cell(f"%%solution\n{answer}"),
        nbformat.v4.new_code_cell(answer),  # planted: a solution Run All executes
        nbformat.v4.new_code_cell("%%solution\npassed('the solution checks out')"),
    ]
    path = tmp_path / "03_planted.ipynb"
    nbformat.write(nb, path)
    sources = run_notebook.solution_sources(path)
    assert len(sources) == 2
    _, ran = run_notebook.run_notebook(path, timeout=300, extra_cells=sources)
    assert solution_cells_with_output(ran) == []
    hits = revealed(ran, ANSWERS["03"], appended=2)
    assert len(hits) == 1 and hits[0].startswith("cell 2 "), hits
    assert "adds 9,408 parameters" in output_text(ran.cells[-2])
    assert run_notebook.solution_checks(ran, 2) == ["✓ the solution checks out"]


def test_an_unanswered_exercise_prints_no_expected_value(capsys):
    """Run All leaves the student's ``None`` in place: the check must not print the answer."""
    from mattingkit.notebook import exercises

    checks = [getattr(exercises, n) for n in dir(exercises) if n.startswith("check_")]
    checks = [c for c in checks if c is not exercises.check_against_reference]
    assert len(checks) > 15
    for check in checks:
        result = check(None)
        printed = capsys.readouterr().out
        assert not result and "not answered yet" in printed, check.__name__
        assert "expected" not in printed and not any(ch.isdigit() for ch in printed), printed
