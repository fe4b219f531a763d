"""Execute a chapter notebook top to bottom in a fresh kernel of *this* interpreter.

Used by ``tests/test_notebooks.py`` and ``tests/test_binder_env.py``, and handy by
hand::

    python scripts/run_notebook.py notebooks/01_matting_equation.ipynb   # fast mode
    python scripts/run_notebook.py --full notebooks/01_matting_equation.ipynb

The kernel always runs ``sys.executable`` (whatever kernelspecs are installed), with
``MATTINGKIT_FAST=1`` unless ``--full``, in the notebook's own folder. The setup cell is
executed too (it must be harmless outside Colab). The executed notebook is not saved
unless ``--output`` is given. Prints a JSON summary: seconds, figures, cells.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient


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


def count_figures(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def run_notebook(
    path: Path | str, *, timeout: int = 300, fast: bool = True, output: Path | None = None
) -> tuple[RunResult, nbformat.NotebookNode]:
    """Execute ``path``; raises ``nbclient.exceptions.CellExecutionError`` on any error."""
    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    env_before = os.environ.get("MATTINGKIT_FAST")
    if fast:
        os.environ["MATTINGKIT_FAST"] = "1"  # the kernel inherits our environment
    else:
        os.environ.pop("MATTINGKIT_FAST", None)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=_ThisInterpreter())
    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout,
        skip_cells_with_tag="never-skip-in-mattingkit-tests",  # run the setup cell too
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        if env_before is None:
            os.environ.pop("MATTINGKIT_FAST", None)
        else:
            os.environ["MATTINGKIT_FAST"] = env_before
        if output is not None:
            nbformat.write(nb, output)
    seconds = time.perf_counter() - start
    code_cells = sum(cell.cell_type == "code" for cell in nb.cells)
    return RunResult(str(path), round(seconds, 1), count_figures(nb), code_cells), nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--full", action="store_true", help="run without MATTINGKIT_FAST=1")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    parser.add_argument("--output", type=Path, help="save the executed notebook (one path only)")
    args = parser.parse_args(argv)
    if args.output and len(args.paths) != 1:
        parser.error("--output needs exactly one notebook")
    for path in args.paths:
        result, _ = run_notebook(path, timeout=args.timeout, fast=not args.full, output=args.output)
        print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
