"""Strip outputs, execution counts and volatile metadata from notebooks.

Committed notebooks carry no outputs: diffs stay readable, the repository small, and
nobody commits a stale figure. Usage (from the repository root)::

    python scripts/strip_notebooks.py              # clean notebooks/**/*.ipynb in place
    python scripts/strip_notebooks.py --check      # exit 1 listing notebooks that need it
    python scripts/strip_notebooks.py a.ipynb b.ipynb   # what the pre-commit hook runs

Kept: the cell sources, cell tags and ``jupyter`` display flags (e.g. a collapsed
solution, ``{"source_hidden": true}``), and the notebook's kernelspec, ``mattingkit``,
``colab`` and ``accelerator`` metadata. Everything else is dropped.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

KEEP_CELL_METADATA = ("tags", "jupyter", "editable", "deletable", "slideshow")
KEEP_NOTEBOOK_METADATA = ("kernelspec", "language_info", "mattingkit", "colab", "accelerator")


def strip_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Clear outputs/counts and volatile metadata of ``nb`` in place; returns it."""
    for cell in nb.cells:
        cell.metadata = nbformat.NotebookNode(
            {k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA}
        )
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if not cell.get("attachments"):
            cell.pop("attachments", None)
    nb.metadata = nbformat.NotebookNode(
        {k: v for k, v in nb.metadata.items() if k in KEEP_NOTEBOOK_METADATA}
    )
    if "language_info" in nb.metadata:  # the interpreter version is volatile
        nb.metadata["language_info"] = {"name": nb.metadata["language_info"].get("name", "python")}
    return nb


def is_clean(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    original = nbformat.writes(nb)
    return nbformat.writes(strip_notebook(nb)) == original


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write atomically (temp file in the same folder, then rename): no half-written files."""
    text = nbformat.writes(nb)
    if not text.endswith("\n"):
        text += "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def notebook_paths(root: Path = ROOT) -> list[Path]:
    return sorted(
        p for p in (root / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/**)")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if dirty")
    args = parser.parse_args(argv)
    dirty = [path for path in (args.paths or notebook_paths()) if not is_clean(path)]
    if args.check:
        if dirty:
            print("Notebooks with outputs or volatile metadata (run scripts/strip_notebooks.py):")
            print("\n".join(f"  {path}" for path in dirty))
            return 1
        return 0
    for path in dirty:
        write_notebook(strip_notebook(nbformat.read(path, as_version=4)), path)
        print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
