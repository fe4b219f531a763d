"""Every chapter runs on Colab's own package versions (issue 22).

``tests/colab_env.py`` builds a "Colab-like" virtual environment from Colab's published
package list (``tests/colab/pip-freeze.txt``): ipywidgets 7.7.1, anywidget 0.9.21,
ipykernel 6.17.1, IPython 7.34, jupyter_client 7.4.9, Colab's numpy, OpenCV, matplotlib,
scikit-image, pillow, gdown; this machine's Python 3.11 and a CPU torch stand in for
Colab's (the substitutions are printed). The slow test runs every chapter there, in a real
kernel, in fast mode, *with the setup cell's Colab path*: ``google.colab`` (the stand-in of
``tests/colab_stub``) is imported at kernel start as on Colab, the checkout is this
repository, and the stand-in records what pip is asked to install and whether the custom
widget manager is turned on. It checks that the setup cell installs only what Colab lacks
(``av``), never touches the widget stack, needs no restart, and that every chapter passes.

The environment is cached in ``.colab-env/<hash of the pin list>/`` (git-ignored): the
first run builds it, later runs reuse it. ``pytest -s`` prints the timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import colab_env  # noqa: E402

ROOT = colab_env.ROOT
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))  # as tests/test_notebooks.py


def test_pins_come_from_colabs_list():
    pins = colab_env.pins()
    versions = colab_env.colab_versions()
    for name in colab_env.PINNED:
        assert pins[colab_env.canonical(name)] == versions[colab_env.canonical(name)]
    assert pins["ipywidgets"].startswith("7.") and "anywidget" in pins
    assert set(colab_env.substitutions()) == set(colab_env.SUBSTITUTES)
    assert "torch" not in {line.split("==")[0] for line in colab_env.constraints().splitlines()}


def test_vendored_list_equals_the_shared_reference():
    if not colab_env.SHARED_FREEZE.is_file():
        pytest.skip(f"{colab_env.SHARED_FREEZE} is not on this machine")
    assert colab_env.FREEZE.read_bytes() == colab_env.SHARED_FREEZE.read_bytes()


def _colab_copy(chapter: Path, folder: Path) -> Path:
    """The chapter with its setup cell run as on Colab, the checkout being this repository
    (already "cloned": the setup cell skips ``git clone``)."""
    nb = nbformat.read(chapter, as_version=4)
    setup = [c for c in nb.cells if "mattingkit-setup" in c.get("metadata", {}).get("tags", [])]
    assert len(setup) == 1, f"{chapter.name}: no generated setup cell"
    source = setup[0].source
    assert str(colab_env.ROOT) not in source and '"/content/mattingkit"' in source
    setup[0].source = source.replace('"/content/mattingkit"', json.dumps(str(ROOT)))
    copy = folder / chapter.name
    nbformat.write(nb, copy)
    return copy


def _pip(env_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(colab_env.python_of(env_dir)), "-m", "pip", *args], capture_output=True, text=True
    )


def _installed(env_dir: Path) -> dict[str, str]:
    listing = _pip(env_dir, "list", "--format", "json").stdout
    return {colab_env.canonical(i["name"]): i["version"] for i in json.loads(listing)}


@pytest.mark.slow
@pytest.mark.colab
def test_every_chapter_runs_in_a_colab_like_environment(tmp_path, record_property):
    start = time.perf_counter()
    env_dir, record = colab_env.build()
    build_seconds = time.perf_counter() - start
    python = colab_env.python_of(env_dir)
    # A fresh runtime: no av, no mattingkit (a reused environment has them from last time).
    _pip(env_dir, "uninstall", "-y", "-q", "av")
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "mattingkit-checkout.pth").unlink(missing_ok=True)
    before = _installed(env_dir)
    assert "av" not in before and "mattingkit" not in before
    for name, version in record["pins"].items():
        assert before[name] == version, f"{name}: {before[name]} installed, {version} pinned"

    # Colab imports google.colab when the kernel starts: an IPython startup file does it here.
    ipython_dir = tmp_path / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # as on Colab\n")
    calls_file = tmp_path / "colab-calls.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env |= {
        "PYTHONPATH": str(colab_env.STUB),
        "IPYTHONDIR": str(ipython_dir),
        "MATTINGKIT_COLAB_RECORD": str(calls_file),
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    }
    copies = tmp_path / "notebooks"
    copies.mkdir()
    times, failures = {}, {}
    setup_outputs = {}
    for chapter in CHAPTERS:
        copy = _colab_copy(chapter, copies)
        executed = tmp_path / f"executed-{chapter.name}"
        calls_before = len(calls_file.read_text().splitlines()) if calls_file.exists() else 0
        result = subprocess.run(
            [str(python), str(ROOT / "scripts" / "run_notebook.py")]
            + ["--output", str(executed), str(copy)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            failures[chapter.name] = (result.stdout + result.stderr)[-4000:]
            continue
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        nb = nbformat.read(executed, as_version=4)
        setup_index = next(
            i for i, c in enumerate(nb.cells) if "mattingkit-setup" in c.metadata.get("tags", [])
        )
        setup_seconds = _cell_seconds(nb.cells[setup_index])
        text = "".join(o.get("text", "") for o in nb.cells[setup_index].get("outputs", []))
        setup_outputs[chapter.name] = text
        calls = [json.loads(line) for line in calls_file.read_text().splitlines()[calls_before:]]
        times[chapter.name] = {
            "seconds": summary["seconds"],
            "cpu_seconds": summary["cpu_seconds"],
            "setup_seconds": setup_seconds,
            "colab_calls": [c["call"] for c in calls],
            "pip": [c["args"] for c in calls if c["call"] == "pip"],
        }
        custom = nb.metadata.get("mattingkit", {}).get("custom_widgets", False)
        assert ("output.enable_custom_widget_manager" in times[chapter.name]["colab_calls"]) == (
            custom
        ), chapter.name
        assert "no restart needed" in text, f"{chapter.name}: {text}"
    print("\nColab-like environment:", env_dir.name, "reused" if record["reused"] else "built")
    print(f"  build or reuse {build_seconds:.0f} s; substitutions {record['substitutions']}")
    for name, row in times.items():
        print(f"  {name}: {row}")
    record_property("colab_like_times", json.dumps(times))
    assert not failures, "\n\n".join(f"{name}:\n{log}" for name, log in failures.items())

    # What the setup cells asked pip for: av (Colab lacks it) once, nothing of the widgets.
    asked = [args for row in times.values() for args in row["pip"]]
    assert asked == [["install", "-q", "av>=12"]], asked
    first = times[CHAPTERS[0].name]
    assert "Installing what this runtime lacks: av>=12" in setup_outputs[CHAPTERS[0].name]
    assert all(not row["pip"] for row in list(times.values())[1:])
    after = _installed(env_dir)
    for name in ("ipywidgets", "widgetsnbextension", "anywidget", "ipykernel", "ipython"):
        assert after[name] == before[name], f"the setup cell changed {name}"
    assert "av" in after and first["setup_seconds"] is not None


def _cell_seconds(cell) -> float | None:
    from datetime import datetime

    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return round((parse(end) - parse(start)).total_seconds(), 1)
