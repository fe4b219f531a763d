"""A "Colab-like" virtual environment, built from Colab's own published package list.

``tests/colab/pip-freeze.txt`` is Colab's CPU runtime list, copied unchanged from the
repository ``googlecolab/backend-info`` (commit a72407924822ea377410b69f0a290150bcb5c9c2,
2026-08-19; the original lies in ``../shared/reference/colab/`` on the development machine
and a test checks the two are equal there). Nothing here types a version: the pins are
parsed from that list. The environment gets

* exactly Colab's versions of the widget and kernel stack and of the libraries the chapters
  use (:data:`PINNED`), every other package they pull in constrained to Colab's version too
  (the whole list is passed to pip as constraints);
* this machine's Python (3.11; Colab has 3.13) and this interpreter's torch and
  torchvision, linked in (:data:`SUBSTITUTES`: Colab's torch 2.11 wheels are for Python 3.13
  only; linking saves a 1-6 GB install); every substitution, with Colab's version and the
  reason, is in the environment's ``env.json``;
* *not* mattingkit, nor ``av``: the chapters' setup cell installs what Colab lacks, as it
  does on Colab, with the stand-in ``google.colab`` of ``tests/colab_stub`` on the path.

It is built once per pin list into ``.colab-env/<hash>/`` (git-ignored) and reused.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FREEZE = ROOT / "tests" / "colab" / "pip-freeze.txt"
SHARED_FREEZE = ROOT.parent / "shared" / "reference" / "colab" / "pip-freeze.txt"
STUB = ROOT / "tests" / "colab_stub"
CACHE = ROOT / ".colab-env"

#: Installed at Colab's exact version: the widget and kernel stack, the server that hosts
#: ipywidgets 7 in a browser (Notebook 6.5), what executes a notebook, and the libraries.
PINNED = (
    "ipywidgets",
    "widgetsnbextension",
    "jupyterlab_widgets",
    "anywidget",
    "psygnal",
    "ipykernel",
    "ipython",
    "jupyter_client",
    "jupyter_core",
    "traitlets",
    "pyzmq",
    "tornado",
    "notebook",
    "nbclient",
    "nbformat",
    "numpy",
    "scipy",
    "opencv-python-headless",
    "matplotlib",
    "scikit-image",
    "pillow",
    "gdown",
    "tqdm",
    "requests",
    "packaging",
)
#: Colab's version cannot be installed here (its wheels are for Python 3.13): this
#: interpreter's own torch and torchvision stand in, linked into the environment
#: (:func:`_link_torch`; a torch 2.13 CPU wheel does not work with PyPI's torchvision).
SUBSTITUTES = {name: importlib.metadata.version(name) for name in ("torch", "torchvision")}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def colab_versions(freeze: Path = FREEZE) -> dict[str, str]:
    """``{canonical name: version}`` of every ``name==version`` line of the list, and
    ``name @ url`` lines with the version read from the wheel's file name."""
    versions = {}
    for line in freeze.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "==" in line:
            name, version = line.split("==", 1)
            versions[canonical(name)] = version.strip()
        elif " @ " in line:
            name, url = line.split(" @ ", 1)
            match = re.search(r"/[^/]+?-([0-9][^-]*)-", url.replace("%2B", "+"))
            if match:
                versions[canonical(name)] = match.group(1)
    return versions


def pins(freeze: Path = FREEZE) -> dict[str, str]:
    """What the environment installs: :data:`PINNED` at Colab's versions, plus substitutes."""
    versions = colab_versions(freeze)
    missing = [name for name in PINNED if canonical(name) not in versions]
    if missing:
        raise ValueError(f"{freeze} lists no version of {missing}")
    chosen = {canonical(name): versions[canonical(name)] for name in PINNED}
    chosen.update(SUBSTITUTES)
    return chosen


def substitutions(freeze: Path = FREEZE) -> dict[str, tuple[str, str]]:
    """``{name: (Colab's version, the version installed here)}``."""
    versions = colab_versions(freeze)
    return {name: (versions.get(name, "?"), mine) for name, mine in SUBSTITUTES.items()}


def constraints(freeze: Path = FREEZE) -> str:
    """The whole list as pip constraints (URL lines and the substituted packages left out)."""
    lines = []
    for line in freeze.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if "==" not in line or line.startswith("#"):
            continue
        if canonical(line.split("==", 1)[0]) in SUBSTITUTES:
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def key(freeze: Path = FREEZE) -> str:
    text = json.dumps([pins(freeze), constraints(freeze), sys.version_info[:2]], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def python_of(env: Path) -> Path:
    return env / "bin" / "python"


def _run(command: list, env: dict | None = None, timeout: int = 1800) -> None:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, env=env, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def _available(python: Path, name: str, version: str, folder: Path, env: dict) -> bool:
    """Whether pip can get ``name==version`` for this Python (no dependencies resolved)."""
    result = subprocess.run(
        [str(python), "-m", "pip", "download", "-q", "--no-deps", "-d", str(folder)]
        + [f"{name}=={version}"],
        capture_output=True,
        text=True,
        env=env,
    )
    return result.returncode == 0


def _report(python: Path, requirements: list[str], folder: Path, env: dict) -> list[dict]:
    """What pip would install for ``requirements`` (a dry run's report items)."""
    report = folder / "report.json"
    _run(
        [python, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed"]
        + ["--report", report, *requirements],
        env=env,
    )
    return json.loads(report.read_text())["install"]


def _excluded_by_substitutes(needs: list[str], colab: dict[str, str]) -> dict[str, str]:
    """``{name: why}`` for Colab versions that the substitutes' own requirements exclude
    (torch 2.14 needs setuptools >= 77, Colab has 75.2.0)."""
    from packaging.requirements import Requirement

    excluded = {}
    for text in needs:
        requirement = Requirement(text)
        name = canonical(requirement.name)
        version = colab.get(name)
        if version and not requirement.specifier.contains(version, prereleases=True):
            excluded[name] = f"torch {SUBSTITUTES['torch']} requires {requirement}"
    return excluded


def _link_torch(env_dir: Path, python: Path) -> dict[str, str]:
    """Where the CPU torch wheel cannot be had (CI reaches PyPI only, whose Linux torch is the
    6 GB CUDA build): make the torch and torchvision of *this* interpreter, with their CUDA
    libraries, importable in the environment through symbolic links in a folder that a
    ``.pth`` file adds to its path (nothing else of this interpreter leaks in). Returns the
    linked versions and the pure-Python requirements of torch to install beside them."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    wanted, seen, versions, needs = ["torch", "torchvision"], set(), {}, set()
    links = env_dir / "linked-torch"
    links.mkdir(exist_ok=True)
    while wanted:
        name = canonical(wanted.pop())
        if name in seen:
            continue
        seen.add(name)
        dist = md.distribution(name)
        versions[name] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            dep = canonical(requirement.name)
            if dep.startswith(("nvidia-", "cuda-", "triton")):
                wanted.append(dep)
            elif dep not in ("torch", "torchvision", "numpy", "pillow"):
                needs.add(str(requirement).split(";")[0].strip())
        site = Path(str(dist.locate_file("")))
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            source, target = site / top, links / top
            if source.exists() and not target.exists() and not top.endswith(".."):
                target.symlink_to(source)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "linked-torch.pth").write_text(f"{links}\n")
    return versions, sorted(needs)


def build(freeze: Path = FREEZE, cache: Path = CACHE) -> tuple[Path, dict]:
    """The environment for ``freeze`` (built now, or reused) and its record
    (``env.json``: pins, substitutions, build seconds, whether it was reused).

    Every package the pins pull in is constrained to Colab's version where pip can get that
    version for this Python; where it cannot (a release for Python 3.12+ only), pip's own
    choice is installed and recorded in ``substitutions`` with both versions.
    """
    env_dir = cache / key(freeze)
    record_path = env_dir / "env.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        record["reused"] = True
        return env_dir, record
    shutil.rmtree(env_dir, ignore_errors=True)
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    child_env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    child_env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    start = time.perf_counter()
    _run([sys.executable, "-m", "venv", env_dir], env=child_env)
    python = python_of(env_dir)
    chosen = pins(freeze)
    scratch = env_dir / "build"
    scratch.mkdir()
    linked, needs = _link_torch(env_dir, python)
    for name in SUBSTITUTES:
        chosen.pop(name)
    requirements = [f"{name}=={version}" for name, version in sorted(chosen.items())] + needs
    colab = colab_versions(freeze)
    items = _report(python, requirements, scratch, child_env)
    pulled_in = {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in items}
    substituted = {name: list(pair) for name, pair in substitutions(freeze).items()}
    for name, version in linked.items():
        if name in substituted:
            substituted[name] = [substituted[name][0], f"{version} (linked from {sys.prefix})"]
    reasons = _excluded_by_substitutes(needs, colab)
    unavailable = set(reasons)
    for name, version in sorted(pulled_in.items()):
        wanted = colab.get(name)
        if name in chosen or name in unavailable or wanted is None or wanted == version:
            continue
        if not _available(python, name, wanted, scratch, child_env):
            unavailable.add(name)
            reasons[name] = (
                f"no {name}=={wanted} for Python {sys.version_info[0]}.{sys.version_info[1]}"
            )
    lines = [
        line
        for line in constraints(freeze).splitlines()
        if canonical(line.split("==", 1)[0]) not in unavailable
    ]
    constraint_file = env_dir / "colab-constraints.txt"
    constraint_file.write_text("\n".join(lines) + "\n")
    _run(
        [python, "-m", "pip", "install", "-q", "-c", constraint_file, *requirements], env=child_env
    )
    listing = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True
    )
    installed = {canonical(i["name"]): i["version"] for i in json.loads(listing.stdout or "[]")}
    for name in sorted(unavailable):
        substituted[name] = [colab[name], installed.get(name, "?"), reasons[name]]
    installed.update(linked)
    shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.perf_counter() - start
    record = {
        "pins": chosen,
        "substitutions": substituted,
        "python": ".".join(map(str, sys.version_info[:3])),
        "installed": installed,
        "build_seconds": round(seconds, 1),
        "reused": False,
    }
    record_path.write_text(json.dumps(record, indent=1))
    return env_dir, record


if __name__ == "__main__":
    path, info = build()
    print(path, json.dumps(info))
