"""Chapter 07 in a real browser: the studio clicked through as a student does (JupyterLab).

The chapter runs top to bottom from the Run menu in fast mode (as CI runs every chapter:
a cell the test adds at the top sets ``MATTINGKIT_FAST=1``), then a cell the test adds at
the end shows the chapter's own ``studio`` live. The test then clicks every media,
weights, preset, refine-mode and background choice and checks, by the page's own geometry,
that the fields each choice needs take room on the page and the others do not; runs the
model (a sign of work while it runs, the numbers at a readable size, the status under the
button); applies a background (its message beside its button; gone after a new run);
gives a bad path and an empty weights file (one sentence naming the field); and exports
the sample video twice (the second time: "already exists" in the status line, no
traceback anywhere, nothing in the log console).

Screenshots of each state go to ``$MATTINGKIT_BROWSER_ARTIFACTS``. Every wait is for a
state of the page or the kernel; nothing asserts a speed.
"""

from __future__ import annotations

import itertools
import json
import time

import nbformat
import pytest
from browser_helpers import (
    NOTEBOOKS,
    WAIT_MS,
    Checks,
    IopubRecorder,
    error_outputs,
    keep_evidence,
    menu,
    open_notebook,
    shoot,
    wait_all_cells_ran,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

STUDIO = ".mk-studio"
# What each choice needs, written out here independently of the code.
NEEDS = {
    ("media", "your own"): {
        "source",
        "source-upload",
        "plate",
        "plate-upload",
        "upload-note",
        "output",
        "max-frames",
        "overwrite",
        "export-button",
    },
    ("media", "sample portrait"): {"export-note"},
    ("media", "sample video"): {"output", "max-frames", "overwrite", "export-button"},
    ("weights", "official"): {"backbone"},
    ("weights", "file"): {"weights-file"},
    ("refine-mode", "sampling"): {"sample-pixels"},
    ("refine-mode", "thresholding"): {"threshold"},
    ("background-kind", "colour"): {"background-color"},
    ("background-kind", "image"): {"background-image"},
}
OPTIONAL = set().union(*NEEDS.values())
ALWAYS = {"media", "weights", "preset", "refine-mode", "device", "max-side", "run"}
ALWAYS |= {"background-kind", "background-button"}
CHOICES = {
    "media": ("sample portrait", "sample video", "your own"),
    "weights": ("official", "shipped", "file"),
    "refine-mode": ("sampling", "thresholding", "full"),
    "background-kind": ("colour", "image", "blur"),
}
#: Screenshots taken on the way, by (media, weights, refine mode, background).
CHOICE_SHOTS = {
    ("your own", "file", "thresholding", "colour"): "07-studio-own-media-weights-file-colour",
    ("sample video", "official", "full", "image"): "07-studio-video-official-full-image",
}
WEIGHT_LABELS = {
    "official": "official (downloaded on demand)",
    "shipped": "mattingkit shipped (offline, MobileNetV2)",
    "file": "a weights file (path or URL)",
}
FIELDS = sorted(OPTIONAL | ALWAYS)

SHOWN = """(fields) => {
    const shown = [];
    for (const name of fields) {
        const node = document.querySelector('.mk-studio .mk-studio-' + name);
        if (!node) continue;
        const box = node.getBoundingClientRect();
        if (box.width > 0 && box.height > 0) shown.push(name);
    }
    return shown.sort();
}"""


def _chapter_copy(server) -> str:
    """Chapter 07 with a first cell that sets fast mode and a last one showing the studio live."""
    nb = nbformat.read(NOTEBOOKS / "07_pretrained_inference.ipynb", as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell("%env MATTINGKIT_FAST=1"))
    nb.cells.append(nbformat.v4.new_code_cell("%env MATTINGKIT_FAST=0\nstudio.show()"))
    name = "07_pretrained_inference_studio.ipynb"
    nbformat.write(nb, server.folder / name)
    return name


def _choose(page, field: str, value: str) -> None:
    if field == "weights":
        page.locator(f"{STUDIO} .mk-studio-weights select").select_option(
            label=WEIGHT_LABELS[value]
        )
    else:
        page.locator(f"{STUDIO} .mk-studio-{field} button", has_text=value).first.click()


def _expected(choice: dict) -> list:
    needed = set().union(*(NEEDS.get(item, set()) for item in choice.items()))
    return sorted(needed | ALWAYS)


def _wait_shown(page, expected: list, what: str) -> None:
    try:
        page.wait_for_function(
            f"([fields, want]) => JSON.stringify(({SHOWN})(fields)) === JSON.stringify(want)",
            arg=[FIELDS, expected],
            timeout=WAIT_MS,  # the kernel answers each click (slowly on a loaded machine)
        )
    except Exception:
        shown = page.evaluate(SHOWN, FIELDS)
        missing, extra = set(expected) - set(shown), set(shown) - set(expected)
        raise AssertionError(
            f"{what}: hidden but needed {sorted(missing)}, shown {sorted(extra)}"
        ) from None


def _status_text(page, name: str) -> str:
    return page.locator(f"{STUDIO} .mk-studio-{name}").inner_text()


def _wait_text(page, name: str, text: str) -> None:
    page.wait_for_function(
        "([n, t]) => document.querySelector('.mk-studio .mk-studio-' + n).innerText.includes(t)",
        arg=[name, text],
        timeout=WAIT_MS,
    )


def test_chapter_07_studio_in_jupyterlab(jupyter_server, new_page, artifacts, record_property):
    name = _chapter_copy(jupyter_server)
    page = new_page()
    started = time.monotonic()
    try:
        report = _studio_checks(page, jupyter_server, name, artifacts)
    except BaseException:
        keep_evidence(page, jupyter_server, artifacts, "07-studio")
        raise
    report["test_seconds"] = round(time.monotonic() - started, 1)
    for key, value in report.items():
        record_property(key, value)


def _studio_checks(page, server, name, artifacts) -> dict:
    started = time.monotonic()
    open_notebook(page, server, name, "lab")
    menu(page, "Run", "Run All Cells")
    page.locator(f"{STUDIO} .mk-studio-run").wait_for(timeout=2 * WAIT_MS)
    wait_all_cells_ran(page, server, name)
    report = {"notebook_run_s": round(time.monotonic() - started, 1)}
    assert error_outputs(page) == [], "the chapter printed an error or a warning"
    assert page.locator(".jp-OutputArea-output img").count() >= 6, "the chapter's figures"
    checks = Checks()
    iopub = IopubRecorder(server, name)
    try:
        page.locator(f"{STUDIO}").scroll_into_view_if_needed()
        shoot(page, artifacts, "07-studio-as-shown", STUDIO)
        with checks("defect 1: each choice shows the fields it needs, and only those"):
            report["choice_combinations_checked"] = _every_choice(page, artifacts)
        with checks("defect 3: “no file given” names the field"):
            _choose(page, "media", "sample portrait")  # the media need no file of their own
            _choose(page, "weights", "file")
            page.locator(f"{STUDIO} .mk-studio-weights-file input").fill("")
            page.locator(f"{STUDIO} .mk-studio-run").click()
            _wait_text(page, "status", "“weights file”")
            _beside_and_in_view(page, "run", "status")
            shoot(page, artifacts, "07-studio-no-weights-file", STUDIO)
        with checks("defect 3: a sign of work while the model runs; the numbers readable"):
            report.update(_run(page, artifacts))
        with checks("defect 3: the background's answer beside its button; gone after a run"):
            _backgrounds(page, artifacts)
        with checks("defect 2: export twice without “overwrite”"):
            _export_twice(page, artifacts)
        with checks("no traceback or warning on the page, nothing in the log console"):
            assert error_outputs(page) == [], "a traceback or warning appeared on the page"
            stray = iopub.caused_by_widgets()
            assert stray == [], f"the log console got {stray}"
            assert not [m for m in iopub.messages if m["type"] == "error"], iopub.messages
    finally:
        iopub.close()
    report["checks_passed"] = len(checks.passed)
    print("\nbrowser studio test:", json.dumps(report))
    checks.done()
    return report


def _every_choice(page, artifacts) -> int:
    """Every media × weights × refine mode × background (81), then each preset."""
    current = {"media": "sample portrait", "weights": "shipped", "refine-mode": "sampling"}
    current["background-kind"] = "colour"
    _wait_shown(page, _expected(current), "as shown")
    checked = 0
    for values in itertools.product(*CHOICES.values()):
        for field, value in zip(CHOICES, values):
            if current[field] != value:
                _choose(page, field, value)
                current[field] = value
        _wait_shown(page, _expected(current), f"after choosing {current}")
        checked += 1
        if values in CHOICE_SHOTS:
            shoot(page, artifacts, CHOICE_SHOTS[values], STUDIO)
    for preset in ("HD", "4K", "auto"):  # a preset needs no field of its own
        _choose(page, "preset", preset)
        _wait_shown(page, _expected(current), f"after preset {preset}")
    return checked


def _run(page, artifacts) -> dict:
    """A run on the sample portrait with the shipped model, watched while it works."""
    for field, value in (
        ("media", "sample portrait"),
        ("weights", "shipped"),
        ("refine-mode", "sampling"),
        ("background-kind", "colour"),
    ):
        _choose(page, field, value)
    _wait_shown(
        page,
        _expected(
            {
                "media": "sample portrait",
                "weights": "shipped",
                "refine-mode": "sampling",
                "background-kind": "colour",
            }
        ),
        "before the run",
    )
    page.evaluate(
        """() => {
            window.__seen = [];
            const note = () => {
                const s = document.querySelector('.mk-studio .mk-studio-status');
                const b = document.querySelector('.mk-studio .mk-studio-run');
                const p = document.querySelector('.mk-studio .mk-studio-run-progress');
                window.__seen.push([s.innerText, b.innerText, p.getBoundingClientRect().width > 0]);
            };
            new MutationObserver(note).observe(document.querySelector('.mk-studio'),
                {subtree: true, childList: true, characterData: true, attributes: true});
        }"""
    )
    page.locator(f"{STUDIO} .mk-studio-run").click()
    page.wait_for_function(
        "() => window.__seen.some(([s, b, bar]) => b.includes('Running') && s.includes('⏳') && bar)",
        timeout=WAIT_MS,
    )
    shoot(page, artifacts, "07-studio-running", STUDIO)
    page.locator(f"{STUDIO} .mk-studio-stats table").wait_for(timeout=WAIT_MS)
    _wait_text(page, "status", "✓")
    assert page.locator(f"{STUDIO} .mk-studio-results img").count() == 1
    font_px = page.evaluate(
        "() => parseFloat(getComputedStyle(document.querySelector('.mk-studio .mk-studio-stats td')).fontSize)"
    )
    assert font_px >= 12, f"the numbers are {font_px}px high"
    stats = page.locator(f"{STUDIO} .mk-studio-stats").inner_text()
    assert "paper" in stats and "1920×1080" in stats and "measured here" in stats
    page.locator(f"{STUDIO} .mk-studio-stats").scroll_into_view_if_needed()
    shoot(page, artifacts, "07-studio-after-run", STUDIO)
    return {"stats_font_px": font_px, "run_stats": stats.replace("\n", " | ")[:400]}


def _backgrounds(page, artifacts) -> None:
    button = page.locator(f"{STUDIO} .mk-studio-background-button")
    button.click()
    page.locator(f"{STUDIO} .mk-studio-composite img").wait_for(timeout=WAIT_MS)
    _wait_text(page, "background-status", "Composite on")
    _beside_and_in_view(page, "background-button", "background-status")
    shoot(page, artifacts, "07-studio-composite", STUDIO)
    _choose(page, "background-kind", "image")
    page.locator(f"{STUDIO} .mk-studio-background-image input").fill("/nowhere/beach.jpg")
    button.click()
    _wait_text(page, "background-status", "file not found")
    assert "“image”" in _status_text(page, "background-status")
    _beside_and_in_view(page, "background-button", "background-status")
    shoot(page, artifacts, "07-studio-bad-background-path", STUDIO)
    _choose(page, "background-kind", "colour")
    button.click()
    page.locator(f"{STUDIO} .mk-studio-composite img").wait_for(timeout=WAIT_MS)
    page.locator(f"{STUDIO} .mk-studio-run").click()
    page.wait_for_function(
        "() => !document.querySelector('.mk-studio .mk-studio-composite img')"
        " && document.querySelector('.mk-studio .mk-studio-status').innerText.includes('✓')",
        timeout=WAIT_MS,
    )


def _export_twice(page, artifacts) -> None:
    _choose(page, "media", "sample video")
    page.locator(f"{STUDIO} .mk-studio-max-frames input").fill("3")
    page.locator(f"{STUDIO} .mk-studio-max-frames input").press("Enter")
    export = page.locator(f"{STUDIO} .mk-studio-export-button")
    export.click()
    _wait_text(page, "export-status", "✓ 3 frames")
    shoot(page, artifacts, "07-studio-exported", STUDIO)
    export.click()
    _wait_text(page, "export-status", "already exists")
    page.wait_for_function(
        "() => !document.querySelector('.mk-studio .mk-studio-export-button').disabled",
        timeout=WAIT_MS,
    )
    assert "overwrite" in _status_text(page, "export-status")
    _beside_and_in_view(page, "export-button", "export-status")
    shoot(page, artifacts, "07-studio-export-twice", STUDIO)


def _beside_and_in_view(page, button: str, status: str) -> None:
    """The status line is right under its button and on screen (the user sees the answer)."""
    boxes = page.evaluate(
        """([b, s]) => {
            const box = (n) => document.querySelector('.mk-studio .mk-studio-' + n).getBoundingClientRect();
            const [bb, sb] = [box(b), box(s)];
            return {button_bottom: bb.bottom, status_top: sb.top, status_bottom: sb.bottom,
                    height: sb.height, viewport: window.innerHeight};
        }""",
        [button, status],
    )
    assert boxes["height"] > 0, boxes
    assert 0 <= boxes["status_top"] - boxes["button_bottom"] < 60, f"not under its button: {boxes}"
    assert boxes["status_bottom"] <= boxes["viewport"] and boxes["status_top"] >= 0, boxes
