"""Execute a chapter notebook top to bottom in a fresh kernel of *this* interpreter.

Used by ``tests/test_notebooks.py``, ``tests/test_figures.py`` and
``tests/test_binder_env.py``, and handy by hand::

    python scripts/run_notebook.py notebooks/01_matting_equation.ipynb   # fast mode
    python scripts/run_notebook.py --full notebooks/01_matting_equation.ipynb
    python scripts/run_notebook.py --cells --figures notebooks/04_refinement.ipynb

The kernel always runs ``sys.executable`` (whatever kernelspecs are installed), with
``MATTINGKIT_FAST=1`` unless ``--full``, in the notebook's own folder. The setup cell is
executed too (it must be harmless outside Colab). The executed notebook is not saved
unless ``--output`` is given. The kernel gets a temporary folder of its own (``TMPDIR``)
and is shut down as a student's is (a shutdown request, then exit), so what a chapter
leaves behind in the temporary folder is reported (``leftovers``) and then removed.
Prints a JSON summary: seconds, figures, cells, leftovers; ``--cells``
adds the slowest cells (the run-time lines and slow-cell warnings of the chapters are
measured this way) and ``--figures`` every image panel that shows nothing
(see ``scripts/figure_probe.py``).

Wall time depends on what else the machine runs; the kernel's **CPU time** (every thread
of the kernel process, summed over the cells, ``cpu_seconds``) does much less, so both are
recorded: on a shared machine the wall time can be several times what the same run takes
alone, and an idle machine's wall time lies between the CPU time divided by the threads
the cells use and the CPU time itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

SCRIPTS = Path(__file__).resolve().parent


def _figure_probe() -> types.ModuleType:
    """``scripts/figure_probe.py``, loaded once and shared (``scripts/`` stays off sys.path,
    because this file is also loaded into the kernel, whose sys.path must stay as it is)."""
    if "figure_probe" not in sys.modules:
        spec = importlib.util.spec_from_file_location("figure_probe", SCRIPTS / "figure_probe.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["figure_probe"] = module
        spec.loader.exec_module(module)
    return sys.modules["figure_probe"]


class _ThisInterpreter(KernelSpecManager):
    """A kernelspec manager whose only kernel is ipykernel on ``sys.executable``."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name=f"Python ({sys.executable})",
            language="python",
        )


@dataclass
class RunResult:
    path: str
    seconds: float
    figures: int  # outputs with an image/png
    code_cells: int
    cell_seconds: dict[int, float] = field(default_factory=dict)  # cell index -> seconds
    panels: list[dict[str, Any]] = field(default_factory=list)  # with probe_figures=True
    cell_cpu_seconds: dict[int, float] = field(default_factory=dict)  # cell index -> CPU s
    #: What the kernel left in its temporary folder ($TMPDIR) after it shut down.
    leftovers: list[str] = field(default_factory=list)

    @property
    def cpu_seconds(self) -> float:
        """CPU time of the kernel over all cells (all its threads; 0 where not measured)."""
        return round(sum(self.cell_cpu_seconds.values()), 1)

    def slowest(self, count: int = 3) -> list[tuple[int, float]]:
        """The ``count`` slowest cells as (cell index, seconds)."""
        return sorted(self.cell_seconds.items(), key=lambda item: -item[1])[:count]

    def blank_panels(self) -> list[str]:
        """One line per recorded image panel that shows nothing (empty when all are fine)."""
        lines = []
        for panel in self.panels:
            problem = panel.get("error") or _figure_probe().panel_problem(panel)
            if problem:
                lines.append(f"cell {panel.get('cell', '?')}, {panel['label']!r}: {problem}")
        return lines


def count_figures(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def cell_seconds(nb: nbformat.NotebookNode) -> dict[int, float]:
    """Wall time of each executed code cell, from the timing nbclient records."""
    times = {}
    for index, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if cell.cell_type == "code" and start and end:
            seconds = datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(
                start.replace("Z", "+00:00")
            )
            times[index] = round(seconds.total_seconds(), 1)
    return times


def install_cell_clock(report: str | Path) -> None:
    """In an IPython kernel: append each cell's CPU time to ``report`` (JSON lines).

    CPU time is the kernel process's (all threads) plus that of the child processes it
    waited for (e.g. DataLoader workers), from :func:`os.times`.
    """
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("install_cell_clock() must run inside an IPython kernel")
    started: list[float] = []

    def cpu() -> float:
        now = os.times()
        return now.user + now.system + now.children_user + now.children_system

    def before(info: Any) -> None:
        started[:] = [cpu()]

    def after(result: Any) -> None:
        if started and result.execution_count is not None:
            entry = {"execution_count": result.execution_count, "cpu": cpu() - started[0]}
            with Path(report).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")

    shell.events.register("pre_run_cell", before)
    shell.events.register("post_run_cell", after)


def _kernel_arguments(clock: Path, panels: Path | None) -> list[str]:
    """Kernel arguments that install the cell clock (and ``figure_probe`` when ``panels``)
    before the first cell, without a trace in the notebook's namespace (no name is bound;
    the trailing ``;`` hides the value)."""
    lines = [
        f"__import__('runpy').run_path({str(Path(__file__).resolve())!r}, run_name='clock')"
        f"['install_cell_clock']({str(clock)!r});"
    ]
    if panels is not None:
        lines.append(
            f"__import__('runpy').run_path({str(SCRIPTS / 'figure_probe.py')!r})"
            f"['install']({str(panels)!r});"
        )
    return [f"--IPKernelApp.exec_lines={line}" for line in lines]


def _cpu_by_cell(report: Path, cell_of_count: dict[int, int]) -> dict[int, float]:
    if not report.exists():
        return {}
    times: dict[int, float] = {}
    for line in report.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        index = cell_of_count.get(entry["execution_count"])
        if index is not None:
            times[index] = round(times.get(index, 0.0) + entry["cpu"], 1)
    return times


def run_notebook(
    path: Path | str,
    *,
    timeout: int = 300,
    fast: bool = True,
    output: Path | None = None,
    probe_figures: bool = False,
    extra_cells: Sequence[str] = (),
) -> tuple[RunResult, nbformat.NotebookNode]:
    """Execute ``path``; raises ``nbclient.exceptions.CellExecutionError`` on any error.

    ``probe_figures=True`` records every image panel (``RunResult.panels``, each with the
    index of the cell that drew it) for ``RunResult.blank_panels()``. ``extra_cells`` are
    code run after the notebook's last cell in the same kernel (``--solutions``: the
    chapter's solution cells, as a student runs them on request); they are appended to the
    returned notebook, so the notebook's own cells keep their indices.
    """
    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in extra_cells)
    env_before = os.environ.get("MATTINGKIT_FAST")
    if fast:
        os.environ["MATTINGKIT_FAST"] = "1"  # the kernel inherits our environment
    else:
        os.environ.pop("MATTINGKIT_FAST", None)
    with tempfile.TemporaryDirectory(prefix="mattingkit-probe-") as scratch:
        report = Path(scratch) / "panels.jsonl"
        clock = Path(scratch) / "cpu.jsonl"
        # The kernel's own temporary folder: nothing else writes there, so what is left in
        # it after the kernel exits is what the chapter littered.
        kernel_tmp = Path(scratch) / "kernel-tmp"
        kernel_tmp.mkdir()
        env = {**os.environ, "TMPDIR": str(kernel_tmp), "TEMP": str(kernel_tmp)}
        env["TMP"] = str(kernel_tmp)
        km = KernelManager(kernel_name="python3", kernel_spec_manager=_ThisInterpreter())
        client = NotebookClient(
            nb,
            km=km,
            timeout=timeout,
            skip_cells_with_tag="never-skip-in-mattingkit-tests",  # run the setup cell too
            resources={"metadata": {"path": str(path.parent)}},
            extra_arguments=_kernel_arguments(clock, report if probe_figures else None),
        )
        start = time.perf_counter()
        try:
            client.execute(env=env)
        finally:
            if km.has_kernel:  # nbclient only shuts down kernels it created itself
                # A shutdown request, as Jupyter sends on a restart or when it quits: the
                # kernel exits and its clean-up runs (killed, after a grace period, if hung).
                km.shutdown_kernel(now=False)
            if env_before is None:
                os.environ.pop("MATTINGKIT_FAST", None)
            else:
                os.environ["MATTINGKIT_FAST"] = env_before
            if output is not None:
                nbformat.write(nb, output)
        seconds = time.perf_counter() - start
        panels = _figure_probe().read_report(report) if probe_figures else []
        cell_of_count = {
            cell.execution_count: index
            for index, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and cell.execution_count is not None
        }
        cpu = _cpu_by_cell(clock, cell_of_count)
        leftovers = sorted(p.name for p in kernel_tmp.iterdir())
    for panel in panels:
        panel["cell"] = cell_of_count.get(panel.pop("execution_count", None))
    code_cells = sum(cell.cell_type == "code" for cell in nb.cells)
    result = RunResult(
        str(path),
        round(seconds, 1),
        count_figures(nb),
        code_cells,
        cell_seconds(nb),
        panels,
        cpu,
        leftovers,
    )
    return result, nb


def solution_sources(path: Path | str) -> list[str]:
    """The code of ``path``'s solution cells (``%%solution`` line removed), in order."""
    from mattingkit.notebook.exercises import solution_code

    nb = nbformat.read(path, as_version=4)
    codes = (solution_code(cell.source) for cell in nb.cells if cell.cell_type == "code")
    return [code for code in codes if code is not None]


def solution_checks(nb: nbformat.NotebookNode, count: int) -> list[str]:
    """The ✓/✗ lines printed by the last ``count`` cells of an executed notebook."""
    text = "".join(
        output.get("text", "")
        for cell in nb.cells[len(nb.cells) - count :]
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )
    return [line for line in text.splitlines() if line.startswith(("✓", "✗"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--full", action="store_true", help="run without MATTINGKIT_FAST=1")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--output", type=Path, help="save the executed notebook (one path only)")
    parser.add_argument("--cells", action="store_true", help="also print the 5 slowest cells")
    parser.add_argument("--figures", action="store_true", help="check every image panel")
    parser.add_argument(
        "--solutions",
        action="store_true",
        help="then run the chapter's solution cells (Run All skips them) and print their checks",
    )
    args = parser.parse_args(argv)
    if args.output and len(args.paths) != 1:
        parser.error("--output needs exactly one notebook")
    status = 0
    for path in args.paths:
        result, notebook = run_notebook(
            path,
            timeout=args.timeout,
            fast=not args.full,
            output=args.output,
            probe_figures=args.figures,
            extra_cells=solution_sources(path) if args.solutions else (),
        )
        summary = asdict(result)
        summary.pop("cell_seconds")
        summary.pop("panels")
        cell_cpu = summary.pop("cell_cpu_seconds")
        summary["cpu_seconds"] = result.cpu_seconds
        if args.cells:
            summary["slowest_cells"] = {
                index: {"seconds": seconds, "cpu_seconds": cell_cpu.get(index)}
                for index, seconds in result.slowest(5)
            }
        if args.figures:
            summary["panels"] = len(result.panels)
            summary["blank_panels"] = result.blank_panels()
            status = status or int(bool(summary["blank_panels"]))
        if args.solutions:
            checks = solution_checks(notebook, len(solution_sources(path)))
            summary["solution_checks"] = checks
            status = status or int(not checks or any(line.startswith("✗") for line in checks))
        print(json.dumps(summary, ensure_ascii=False))
    return status


if __name__ == "__main__":
    sys.exit(main())
