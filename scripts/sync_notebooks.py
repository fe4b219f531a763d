"""Generate the first two cells of every chapter notebook from one source.

Every notebook in ``notebooks/`` starts with the same two cells, written here and
nowhere else, so a URL or install step cannot drift between chapters:

1. a markdown cell (tag ``mattingkit-header``): the chapter title and the
   "Open in Colab" / "Launch Binder" badges for *this* file;
2. a code cell (tags ``mattingkit-setup``, ``skip-execution``): harmless outside Colab;
   on Colab it clones the repository into ``/content/mattingkit`` and calls
   :func:`mattingkit.runtime.colab_install`.

Both URLs come from ``mattingkit.runtime.REPO_URL`` / ``REPO_BRANCH``. The per-notebook
settings live in the notebook metadata under ``"mattingkit"``::

    {"title": "The matting equation",   # required (the heading reads "01 · <title>")
     "gpu": false,                       # true: ask Colab for a GPU (metadata.accelerator)
     "custom_widgets": false}            # true: enable Colab's custom widget manager

Usage (from the repository root)::

    python scripts/sync_notebooks.py            # rewrite notebooks/*.ipynb in place
    python scripts/sync_notebooks.py --check    # exit 1 and list notebooks out of sync
    python scripts/sync_notebooks.py notebooks/03_x.ipynb --title "..."  # set a title

The rewrite also clears outputs (see ``strip_notebooks.py``): committed notebooks
carry none.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from urllib.parse import quote

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # use this checkout's mattingkit, installed or not

from mattingkit.runtime import (  # noqa: E402
    COLAB_CHECKOUT,
    REPO_BRANCH,
    REPO_URL,
    colab_notebook_url,
)

sys.path.insert(0, str(ROOT / "scripts"))
from strip_notebooks import strip_notebook, write_notebook  # noqa: E402

HEADER_TAG = "mattingkit-header"
SETUP_TAG = "mattingkit-setup"
SKIP_TAG = "skip-execution"  # honoured by nbmake / nbclient defaults; our test runs it anyway

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def owner_repo() -> str:
    return REPO_URL.removeprefix("https://github.com/").strip("/")


def colab_url(filename: str) -> str:
    return colab_notebook_url(filename)


def binder_url(filename: str) -> str:
    return (
        f"https://mybinder.org/v2/gh/{owner_repo()}/{REPO_BRANCH}"
        f"?labpath={quote('notebooks/' + filename, safe='')}"
    )


def settings_of(nb: nbformat.NotebookNode, path: Path) -> dict:
    """The notebook's ``metadata.mattingkit`` settings, with a readable error if absent."""
    settings = dict(nb.metadata.get("mattingkit", {}))
    if not settings.get("title"):
        raise ValueError(
            f"{path}: metadata.mattingkit.title is missing; set it with "
            f"`python scripts/sync_notebooks.py {path} --title 'Chapter title'`"
        )
    settings.setdefault("gpu", False)
    settings.setdefault("custom_widgets", False)
    return settings


def header_cell(filename: str, title: str) -> nbformat.NotebookNode:
    number = filename.split("_", 1)[0]
    heading = f"# {number} · {title}" if number.isdigit() else f"# {title}"
    source = (
        f"{heading}\n\n"
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(filename)}) "
        f"[![Launch Binder](https://mybinder.org/badge_logo.svg)]({binder_url(filename)})\n\n"
        f"*Part of [mattingkit]({REPO_URL}), a hands-on course on Background Matting V2. "
        "Run the cells from top to bottom; the next cell sets things up on Colab and does "
        "nothing elsewhere.*"
    )
    cell = nbformat.v4.new_markdown_cell(source, metadata={"tags": [HEADER_TAG]})
    cell.id = HEADER_TAG
    return cell


def setup_cell(custom_widgets: bool) -> nbformat.NotebookNode:
    source = f'''\
# Setup: does nothing outside Colab. On Colab it fetches mattingkit and installs it.
import sys

if "google.colab" in sys.modules:
    import subprocess
    from pathlib import Path

    checkout = Path("{COLAB_CHECKOUT}")
    if not checkout.exists():
        url = "{REPO_URL}"
        command = ["git", "clone", "--depth", "1", "--branch", "{REPO_BRANCH}", url, str(checkout)]
        subprocess.run(command, check=True)
    sys.path.insert(0, str(checkout))
    from mattingkit.runtime import colab_install

    colab_install(checkout, custom_widgets={custom_widgets})'''
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [SETUP_TAG, SKIP_TAG]})
    cell.id = SETUP_TAG
    return cell


def _is_generated(cell: nbformat.NotebookNode) -> bool:
    tags = cell.get("metadata", {}).get("tags", [])
    return HEADER_TAG in tags or SETUP_TAG in tags


def synced(nb: nbformat.NotebookNode, path: Path) -> nbformat.NotebookNode:
    """A stripped copy of ``nb`` with freshly generated first cells and metadata."""
    settings = settings_of(nb, path)
    out = strip_notebook(copy.deepcopy(nb))
    body = [cell for cell in out.cells if not _is_generated(cell)]
    out.cells = [header_cell(path.name, settings["title"]), setup_cell(settings["custom_widgets"])]
    out.cells += body
    out.metadata["mattingkit"] = settings
    out.metadata["kernelspec"] = dict(KERNELSPEC)
    out.metadata["language_info"] = {"name": "python"}
    out.metadata["colab"] = {"name": path.name, "provenance": [], "toc_visible": True}
    if settings["gpu"]:
        out.metadata["accelerator"] = "GPU"
        out.metadata["colab"]["gpuType"] = "T4"
    else:
        out.metadata.pop("accelerator", None)
    out.nbformat, out.nbformat_minor = 4, 5
    nbformat.validate(out)
    return out


def chapter_paths(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)"
    )
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if out of sync")
    parser.add_argument("--title", help="set metadata.mattingkit.title (one notebook only)")
    args = parser.parse_args(argv)
    paths = args.paths or chapter_paths()
    if args.title and len(paths) != 1:
        parser.error("--title needs exactly one notebook path")
    stale = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if args.title:
            nb.metadata.setdefault("mattingkit", {})["title"] = args.title
        try:
            new = synced(nb, path)
        except ValueError as error:
            print(f"✗ {error}")
            stale.append(path)
            continue
        if new != nb:
            stale.append(path)
            if not args.check:
                write_notebook(new, path)
                print(f"synced {path}")
    if args.check and stale:
        print("Out of sync (run `python scripts/sync_notebooks.py`):")
        print("\n".join(f"  {path}" for path in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
