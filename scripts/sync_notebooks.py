"""Generate the first two cells and the last cell of every chapter notebook from one source.

Every notebook in ``notebooks/`` starts and ends with cells written here and nowhere
else, so a URL, an install step or a chapter link cannot drift between chapters:

1. a markdown cell (tag ``mattingkit-header``): the chapter title, the "Open in Colab" /
   "Launch Binder" badges for *this* file, and the navigation: the paper (arXiv
   2012.07810) and the parts of it the chapter rebuilds, the chapters to read first,
   the measured run time, previous/next links and a table of contents built from the
   chapter's own ``##`` headings, and a link to the notation table (:data:`NOTATION`);
2. a code cell (tags ``mattingkit-setup``, ``skip-execution``): harmless outside Colab;
   on Colab it clones the repository into ``/content/mattingkit`` and calls
   :func:`mattingkit.runtime.colab_install`;
3. last, a markdown cell (tag ``mattingkit-footer``): the chapter's further reading
   (``further_reading``), then previous / next chapter links.

Both URLs come from ``mattingkit.runtime.REPO_URL`` / ``REPO_BRANCH``. The per-notebook
settings live in the notebook metadata under ``"mattingkit"``::

    {"title": "The matting equation",   # required (the heading reads "01 · <title>")
     "gpu": false,                       # true: ask Colab for a GPU (metadata.accelerator)
     "custom_widgets": false,            # true: enable Colab's custom widget manager
     "paper": "Sec. 2; Sec. 4 (the compositing equation); Fig. 8",  # what it rebuilds
     "prerequisites": ["01", "PyTorch tensors"],  # chapter numbers become links
     "runtime": {"fast": "7 s", "full": "9 s", "gpu": "not measured"},
     "further_reading": ["Porter and Duff, *Compositing Digital Images*, SIGGRAPH 1984"]}

Chapter titles for the links are read from the sibling notebooks' metadata. Run times
are measured (``python scripts/run_notebook.py [--full] --cells notebooks/NN_x.ipynb``)
on the machine named in ``runtime.machine`` (default :data:`MEASURED_ON`).

Usage (from the repository root)::

    python scripts/sync_notebooks.py            # rewrite notebooks/*.ipynb in place
    python scripts/sync_notebooks.py --check    # exit 1 and list notebooks out of sync
    python scripts/sync_notebooks.py notebooks/03_x.ipynb --title "..."  # set a title
    python scripts/sync_notebooks.py notebooks/07_x.ipynb --set paper="Sec. 5.3, Table 3"
    python scripts/sync_notebooks.py notebooks/07_x.ipynb \\
        --set 'prerequisites=["03", "04"]' --set 'runtime={"fast": "40 s"}'

``--set KEY=VALUE`` stores VALUE under ``metadata.mattingkit.KEY`` (JSON if it parses,
else the plain string). The rewrite also clears outputs (see ``strip_notebooks.py``):
committed notebooks carry none.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
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
FOOTER_TAG = "mattingkit-footer"
SKIP_TAG = "skip-execution"  # honoured by nbmake / nbclient defaults; our test runs it anyway

PAPER_URL = "https://arxiv.org/abs/2012.07810"
PAPER = (
    "Lin, Ryabtsev et al., [*Real-Time High-Resolution Background Matting*]"
    f"({PAPER_URL}), CVPR 2021 (arXiv 2012.07810)"
)
#: Where the chapters' run times were measured, unless ``runtime.machine`` says otherwise.
MEASURED_ON = "an idle 2-core AMD EPYC CPU (AVX2, no AVX-512)"
#: The Colab runtime the chapters were tested against: its published package list
#: (``tests/colab/pip-freeze.txt``), rebuilt by ``tests/test_colab_env.py``.
COLAB_TESTED = (
    "tested against the Colab runtime of 2026-08-19 (Python 3.13, torch 2.11, ipywidgets "
    "7.7.1, anywidget 0.9.21; package list of googlecolab/backend-info a724079) in a "
    "Colab-like environment built from that list; the README says what to check before class"
)
#: The settings every chapter must carry (``tests/test_notebooks.py`` checks them).
NAVIGATION_KEYS = ("paper", "prerequisites", "runtime", "further_reading")
#: The notation table every chapter links to (symbols of the paper beside the code's names).
NOTATION = "NOTATION.md"

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


def chapter_number(filename: str) -> str:
    """``"03"`` for ``03_base_network.ipynb``, ``"04b"`` for ``04b_refinement_speed.ipynb`` (a
    chapter inserted after 04, sorted between 04 and 05); empty for a file without a number."""
    number = filename.split("_", 1)[0]
    return number if re.fullmatch(r"[0-9]{2}[a-z]?", number) else ""


def chapter_label(filename: str, title: str) -> str:
    number = chapter_number(filename)
    return f"{number} · {title}" if number else title


def chapters_beside(path: Path, title: str) -> list[tuple[str, str]]:
    """(file name, title) of every numbered chapter in ``path``'s folder, in order.

    ``path`` itself counts with ``title`` (it may not be saved yet, or be renamed now).
    """
    chapters = {path.name: title} if chapter_number(path.name) else {}
    for sibling in path.parent.glob("*.ipynb"):
        if chapter_number(sibling.name) and sibling.name != path.name:
            meta = nbformat.read(sibling, as_version=4).metadata.get("mattingkit", {})
            chapters[sibling.name] = meta.get("title", sibling.stem)
    return sorted(chapters.items())


def _link(filename: str, title: str) -> str:
    return f"[{chapter_label(filename, title)}]({filename})"


def neighbours(
    chapters: list[tuple[str, str]], filename: str
) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """The chapters before and after ``filename`` in ``chapters``, or None at either end."""
    names = [name for name, _ in chapters]
    if filename not in names:
        return None, None
    index = names.index(filename)
    before = chapters[index - 1] if index > 0 else None
    after = chapters[index + 1] if index + 1 < len(chapters) else None
    return before, after


def heading_anchor(text: str) -> str:
    """The anchor JupyterLab and Notebook 7 give a heading: its text, spaces as hyphens.

    Colab and GitHub make their own anchors; Colab lists the headings in its sidebar too.
    """
    plain = re.sub(r"[`*_$]", "", text.strip())
    return quote(plain.replace(" ", "-"), safe="-.,:;!'")


def section_headings(cells: list[nbformat.NotebookNode]) -> list[str]:
    """The ``## `` headings of the chapter's own cells, in order (code fences skipped)."""
    headings = []
    for cell in cells:
        if cell.cell_type != "markdown" or _is_generated(cell):
            continue
        fenced = False
        for line in cell.source.splitlines():
            if line.startswith("```"):
                fenced = not fenced
            elif not fenced and line.startswith("## "):
                headings.append(line[3:].strip())
    return headings


def prerequisites_text(items: list, chapters: list[tuple[str, str]]) -> str:
    """Prerequisites as markdown: chapter numbers ("01") become links, the rest stays text."""
    by_number = {chapter_number(name): (name, title) for name, title in chapters}
    shown = [
        _link(*by_number[str(item)]) if str(item) in by_number else str(item) for item in items
    ]
    return "; ".join(shown) or "nothing: start here"


def runtime_text(runtime: dict) -> str:
    """The run-time line from measured figures; anything missing reads "not measured"."""
    fast = runtime.get("fast", "not measured")
    full = runtime.get("full", "not measured")
    gpu = runtime.get("gpu", "not measured")
    machine = runtime.get("machine", MEASURED_ON)
    line = f"fast mode (`MATTINGKIT_FAST=1`) {fast}, full {full}, on {machine}; Colab GPU: {gpu}"
    if runtime.get("slow"):
        line += f". Slow cells: {runtime['slow']}"
    return line


def header_cell(
    filename: str,
    title: str,
    settings: dict | None = None,
    headings: list[str] | None = None,
    chapters: list[tuple[str, str]] | None = None,
) -> nbformat.NotebookNode:
    """Title, badges, then the navigation: paper, prerequisites, run time, links, contents."""
    settings = settings or {}
    chapters = chapters if chapters is not None else []
    paper = PAPER + (
        f"; this chapter rebuilds {settings['paper']}" if settings.get("paper") else ""
    )
    rows = [f"| **Paper** | {paper} |"]
    if "prerequisites" in settings:
        rows.append(
            f"| **Before this chapter** | "
            f"{prerequisites_text(settings['prerequisites'], chapters)} |"
        )
    rows.append(f"| **Run time** | {runtime_text(settings.get('runtime', {}))} |")
    rows.append(f"| **Colab** | {COLAB_TESTED} |")
    before, after = neighbours(chapters, filename)
    links = [f"← {_link(*before)}" if before else "", "[all chapters](README.md)"]
    links.append(f"{_link(*after)} →" if after else "")
    rows.append(f"| **Chapters** | {' · '.join(link for link in links if link)} |")
    rows.append(f"| **Notation** | [the paper's symbols beside the code's names]({NOTATION}) |")
    source = [
        f"# {chapter_label(filename, title)}",
        "",
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(filename)}) "
        f"[![Launch Binder](https://mybinder.org/badge_logo.svg)]({binder_url(filename)})",
        "",
        f"*Part of [mattingkit]({REPO_URL}), a hands-on course on Background Matting V2. "
        "Run the cells from top to bottom; the next cell sets things up on Colab and does "
        "nothing elsewhere.*",
        "",
        "| | |",
        "|---|---|",
        *rows,
    ]
    if headings:
        contents = " · ".join(f"[{text}](#{heading_anchor(text)})" for text in headings)
        source += ["", f"**In this chapter:** {contents}"]
    cell = nbformat.v4.new_markdown_cell("\n".join(source), metadata={"tags": [HEADER_TAG]})
    cell.id = HEADER_TAG
    return cell


def footer_cell(
    filename: str, chapters: list[tuple[str, str]], reading: list[str] | None = None
) -> nbformat.NotebookNode:
    """The last cell: further reading (markdown items), then the previous and next chapter,
    so nobody scrolls back to the top."""
    before, after = neighbours(chapters, filename)
    links = [
        f"**Previous:** {_link(*before)}" if before else "**Previous:** none, this is the first",
        f"**Next:** {_link(*after)}" if after else "**Next:** none, this is the last chapter",
        "[All chapters](README.md)",
    ]
    further = "".join(f"* {item}\n" for item in reading or [])
    further = f"### Further reading\n\n{further}\n" if further else ""
    cell = nbformat.v4.new_markdown_cell(
        "---\n\n" + further + " · ".join(links), metadata={"tags": [FOOTER_TAG]}
    )
    cell.id = FOOTER_TAG
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
    return HEADER_TAG in tags or SETUP_TAG in tags or FOOTER_TAG in tags


def synced(nb: nbformat.NotebookNode, path: Path) -> nbformat.NotebookNode:
    """A stripped copy of ``nb`` with freshly generated first and last cells and metadata."""
    settings = settings_of(nb, path)
    out = strip_notebook(copy.deepcopy(nb))
    body = [cell for cell in out.cells if not _is_generated(cell)]
    chapters = chapters_beside(path, settings["title"])
    header = header_cell(path.name, settings["title"], settings, section_headings(body), chapters)
    out.cells = [header, setup_cell(settings["custom_widgets"]), *body]
    out.cells.append(footer_cell(path.name, chapters, settings.get("further_reading")))
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


def _parse_updates(items: list[str], parser: argparse.ArgumentParser) -> dict:
    updates = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        try:
            updates[key] = json.loads(value)
        except json.JSONDecodeError:
            updates[key] = value
    return updates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)"
    )
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if out of sync")
    parser.add_argument("--title", help="set metadata.mattingkit.title (one notebook only)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set metadata.mattingkit.KEY; VALUE is JSON if it parses (one notebook only)",
    )
    args = parser.parse_args(argv)
    paths = args.paths or chapter_paths()
    if (args.title or args.set) and len(paths) != 1:
        parser.error("--title and --set need exactly one notebook path")
    updates = _parse_updates(args.set, parser)
    if args.title:
        updates["title"] = args.title
    stale = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if updates:
            nb.metadata.setdefault("mattingkit", {}).update(updates)
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
