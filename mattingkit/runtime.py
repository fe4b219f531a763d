"""Where the code runs: device choice, fast mode, Colab, and where the repository lives.

Every chapter starts by asking the same questions: is there a GPU? are we in a quick
test run (``MATTINGKIT_FAST=1``)? are we on Colab? where are the bundled assets?
This module answers them in one place, so notebooks never hard-code a path or a URL.

Chapter 01 introduces these helpers; every later chapter uses them.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported lazily: `import mattingkit.runtime` stays instant.
    import torch

#: The one place the repository URL lives (Colab badges, the Colab setup cell, README).
REPO_URL = "https://github.com/mattingkit/mattingkit"
#: The branch that Colab badges and the Colab setup cell use.
REPO_BRANCH = "main"
#: Where the Colab setup cell clones the repository.
COLAB_CHECKOUT = Path("/content/mattingkit")

_TRUE_WORDS = {"1", "true", "yes", "on"}


def fast_mode() -> bool:
    """True when ``MATTINGKIT_FAST`` is set to 1/true/yes/on. Chapter 01.

    Fast mode is what tests and CI use: notebooks shrink images, step counts and
    widgets (a static figure instead of sliders) so that every chapter runs in
    well under five minutes on a small CPU.
    """
    return os.environ.get("MATTINGKIT_FAST", "").strip().lower() in _TRUE_WORDS


def in_colab() -> bool:
    """True inside a Google Colab kernel (``google.colab`` is imported there). Chapter 01."""
    return "google.colab" in sys.modules


def pick_device(verbose: bool = True) -> torch.device:
    """Choose CUDA, then Apple MPS, then CPU, and say which one and why. Chapter 01.

    ``MATTINGKIT_DEVICE`` (e.g. ``cpu`` or ``cuda:1``) overrides the choice, which is
    handy to compare a GPU run with a CPU run in the same session.
    """
    import torch

    override = os.environ.get("MATTINGKIT_DEVICE", "").strip()
    if override:
        try:
            device = torch.device(override)
        except RuntimeError as error:
            raise ValueError(
                f"MATTINGKIT_DEVICE={override!r} is not a device torch knows "
                "(try 'cpu', 'cuda', 'cuda:0' or 'mps')"
            ) from error
        reason = f"MATTINGKIT_DEVICE={override!r} asks for it"
    elif torch.cuda.is_available():
        device = torch.device("cuda")
        reason = f"a CUDA GPU is available ({torch.cuda.get_device_name(0)})"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = torch.device("mps")
        reason = "an Apple GPU is available through Metal (MPS)"
    else:
        device = torch.device("cpu")
        reason = "no CUDA or Apple MPS GPU was found; everything still works, only slower"
    if verbose:
        print(f"Using device {device}: {reason}.")
    return device


def repo_root() -> Path:
    """The root of the mattingkit checkout that this package was imported from. Chapter 01.

    Works for a git clone, an editable install (``pip install -e .``) and the Colab
    clone in ``/content/mattingkit``. A plain wheel install has no checkout, so this
    raises ``RuntimeError`` saying how to get one.
    """
    candidate = Path(__file__).resolve().parents[1]
    if (candidate / "pyproject.toml").is_file() and (candidate / "mattingkit").is_dir():
        return candidate
    raise RuntimeError(
        f"mattingkit was imported from {candidate}, which is not a checkout of the "
        f"repository. Clone {REPO_URL} and install it with `pip install -e .`, or set "
        "MATTINGKIT_ASSETS to a folder holding the assets."
    )


def asset_path(*parts: str) -> Path:
    """Where a bundled asset lives, or would live, without checking that it exists. Chapter 01.

    ``MATTINGKIT_ASSETS`` overrides the folder; otherwise it is ``assets/`` beside the
    package (the checkout). Callers that can regenerate or explain a missing file use this;
    :func:`assets_dir` is the strict version.
    """
    override = os.environ.get("MATTINGKIT_ASSETS", "").strip()
    root = (
        Path(override).expanduser() if override else Path(__file__).resolve().parents[1] / "assets"
    )
    return root.joinpath(*parts)


def assets_dir() -> Path:
    """The folder of bundled assets (sample images, small weights). Chapter 01.

    ``MATTINGKIT_ASSETS`` overrides it; otherwise it is ``assets/`` in the checkout.
    Raises ``FileNotFoundError`` naming the folder it looked for when it is missing.
    """
    if os.environ.get("MATTINGKIT_ASSETS", "").strip():
        path = asset_path()
        if not path.is_dir():
            raise FileNotFoundError(f"MATTINGKIT_ASSETS points to {path}, which is not a folder")
        return path
    path = repo_root() / "assets"
    if not path.is_dir():
        raise FileNotFoundError(
            f"the assets folder {path} is missing; run `python scripts/make_assets.py` "
            "from the repository root, or set MATTINGKIT_ASSETS"
        )
    return path


def colab_notebook_url(notebook: str) -> str:
    """The "Open in Colab" address of ``notebooks/<notebook>`` on ``REPO_BRANCH``."""
    owner_repo = REPO_URL.removeprefix("https://github.com/").strip("/")
    return (
        f"https://colab.research.google.com/github/{owner_repo}/blob/{REPO_BRANCH}/"
        f"notebooks/{notebook}"
    )


# --- Scratch folders ---------------------------------------------------------------------

#: ``mattingkit-<name>-<pid>-<random>``: the process that made a scratch folder.
_SCRATCH = re.compile(r"^mattingkit-[A-Za-z0-9]+-(\d+)-[^-]+$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _remove_orphans(root: Path) -> None:
    """Delete the scratch folders of processes that are gone (a killed kernel cannot clean up)."""
    if sys.platform == "win32":  # os.kill(pid, 0) would end the process there
        return
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        match = _SCRATCH.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink() and entry.stat().st_uid == os.getuid():
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass


def scratch_folder(name: str) -> Path:
    """A fresh folder for one session's files, deleted when Python exits. Chapters 06, 07.

    The chapters write checkpoints and videos (hundreds of MB) that are worth nothing once
    the kernel is gone. The folder is ``mattingkit-<name>-<pid>-<random>`` in the system's
    temporary folder (``$TMPDIR``, ``/tmp``), and is deleted when the interpreter exits: a
    notebook kernel that is shut down or restarted, a script that ends. A process that was
    killed cannot clean up after itself; its folders are deleted the next time any
    process asks for a scratch folder. Copy what you want to keep somewhere else first.
    """
    if not re.fullmatch(r"[A-Za-z0-9]+", name):
        raise ValueError(f"a scratch folder's name is letters and digits only, got {name!r}")
    root = Path(tempfile.gettempdir())
    _remove_orphans(root)
    folder = Path(tempfile.mkdtemp(prefix=f"mattingkit-{name}-{os.getpid()}-", dir=root))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


# --- Colab setup (called by the first code cell of every notebook) ---------------------


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_versions() -> dict[str, str]:
    versions = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions[_canonical(name)] = dist.version
    return versions


def _distributions_of_imported_modules() -> set[str]:
    """Names of the installed distributions whose top-level modules are already imported."""
    imported = {name.split(".")[0] for name in list(sys.modules)}
    names: set[str] = set()
    mapping = getattr(importlib.metadata, "packages_distributions", None)  # Python >= 3.10
    if mapping is None:
        return set(_installed_versions())  # cannot tell: assume everything is imported
    for module, dists in mapping().items():
        if module in imported:
            names.update(_canonical(d) for d in dists)
    return names


def colab_requirements(checkout: Path | str = COLAB_CHECKOUT) -> list[str]:
    """What mattingkit needs on Colab: its dependencies plus the ``[colab]`` extra, read
    from the checkout's ``pyproject.toml``."""
    text = (Path(checkout) / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib  # Python >= 3.11 (Colab has 3.13)
    except ImportError:  # pragma: no cover -- Python 3.9/3.10
        import tomli as tomllib  # type: ignore[no-redef]
    project = tomllib.loads(text)["project"]
    return [*project["dependencies"], *project.get("optional-dependencies", {}).get("colab", [])]


def missing_requirements(
    requirements: Sequence[str], installed: dict[str, str] | None = None
) -> list[str]:
    """The requirements that no installed version satisfies (absent, or too old/new).

    A preinstalled package that satisfies its requirement is never reinstalled: on Colab,
    upgrading the preinstalled ipywidgets 7 to 8 stops core widgets from rendering
    (googlecolab/colabtools issue 3020), and a changed package the kernel has imported
    needs a restart.
    """
    from packaging.requirements import Requirement

    installed = _installed_versions() if installed is None else installed
    missing = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = installed.get(_canonical(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            missing.append(text)
    return missing


def _link_checkout(checkout: Path) -> Path | None:
    """Make ``checkout`` importable in every later Python process of this runtime (kernels,
    subprocesses) with a ``.pth`` file in site-packages: what an editable install does,
    without building anything. Returns the file, or None when site-packages is read-only
    (the running kernel still has the checkout on ``sys.path``, put there by the setup cell)."""
    import sysconfig

    target = Path(sysconfig.get_paths()["purelib"]) / "mattingkit-checkout.pth"
    try:
        target.write_text(f"{Path(checkout).resolve()}\n", encoding="utf-8")
    except OSError:
        return None
    return target


def colab_install(
    checkout: Path | str = COLAB_CHECKOUT,
    *,
    custom_widgets: bool = False,
    run: Callable[[Sequence[str]], object] | None = None,
) -> list[str]:
    """Install only what the runtime lacks, and say whether to restart. Chapter 01.

    The Colab setup cell clones the repository, puts it on ``sys.path`` and calls this. It
    reads mattingkit's requirements (dependencies and the ``[colab]`` extra) from the
    checkout, keeps every preinstalled package that satisfies them (Colab's ipywidgets 7,
    anywidget, numpy, OpenCV, torch: nothing is upgraded), runs ``pip install -q`` for the
    rest only (on Colab today: ``av``), and links the checkout into site-packages (a
    ``.pth`` file, no build, so no restart: the package is already importable in the
    running kernel). It turns on Colab's custom widget manager when a chapter uses
    non-core widgets (anywidget does it by itself as well). A restart notice is printed only
    when pip changed a package that the running kernel had already imported (the old
    version would stay loaded). Returns the names of those packages.
    """
    runner = run or (lambda command: subprocess.run(list(command), check=True))
    checkout = Path(checkout)
    before = _installed_versions()
    missing = missing_requirements(colab_requirements(checkout), before)
    if missing:
        print("Installing what this runtime lacks: " + ", ".join(missing))
        runner([sys.executable, "-m", "pip", "install", "-q", *missing])
        importlib.invalidate_caches()
    if run is None:
        _link_checkout(checkout)
    after = _installed_versions() if missing else before
    changed = {name for name, version in after.items() if before.get(name, version) != version}
    stale = sorted(changed & _distributions_of_imported_modules())
    if custom_widgets and in_colab():
        from google.colab import output  # type: ignore[import-not-found]

        output.enable_custom_widget_manager()
    if stale:
        print(
            "⚠ pip upgraded packages this runtime had already imported: "
            + ", ".join(stale)
            + ".\n  Restart the runtime (Runtime → Restart session), then run the notebook "
            "again from the top. The setup cell will be quick the second time."
        )
    else:
        print("✓ mattingkit is installed; no restart needed.")
    return stale
