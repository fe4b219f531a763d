"""Fixtures shared across test files, and the notice for browser tests that cannot run."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

# The real-browser tests share one Jupyter server and one Chromium (see browser_helpers).
from browser_helpers import (  # noqa: F401
    artifacts,
    browser_folder,
    browser_missing,
    camera_clip,
    chromium,
    in_ci,
    jupyter_server,
    new_page,
)

_BROWSERLESS = pytest.StashKey[tuple[str, list[str]]]()


@pytest.hookimpl(trylast=True)  # after -m / -k have deselected what will not run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without Chromium, skip the browser tests (a failure under CI=true) and remember them
    for the notice at the top of the summary."""
    missing = browser_missing()
    browser = [item for item in items if item.get_closest_marker("browser")]
    if missing is None or not browser:
        return
    if not in_ci():
        for item in browser:
            item.add_marker(pytest.mark.skip(reason=missing))
    config.stash[_BROWSERLESS] = (missing, [item.nodeid for item in browser])


@pytest.hookimpl(wrapper=True, tryfirst=True)  # before the failures and the short summary
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> Generator[None]:
    browserless = config.stash.get(_BROWSERLESS, None)
    if browserless is not None:
        missing, ids = browserless
        what = "failed (CI=true)" if in_ci() else "skipped"
        terminalreporter.write_line(
            f"{missing}. {len(ids)} browser test(s) {what} because of it: {', '.join(ids)}",
            yellow=True,
            bold=True,
        )
    return (yield)


def _script(name: str):
    """``scripts/<name>.py`` as a module (the scripts are not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def diagnose():
    """``scripts/diagnose_shipped_model.py`` as a module (issue 20's diagnostics)."""
    return _script("diagnose_shipped_model")


@pytest.fixture(scope="module")
def train_script():
    """``scripts/train_shipped_model.py`` as a module (its recipe and card)."""
    return _script("train_shipped_model")
