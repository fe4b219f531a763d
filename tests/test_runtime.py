"""Tests for mattingkit.runtime."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from mattingkit import runtime

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "value, expected",
    [("1", True), ("true", True), ("YES", True), ("0", False), ("", False), ("no", False)],
)
def test_fast_mode_reads_environment(monkeypatch, value, expected):
    monkeypatch.setenv("MATTINGKIT_FAST", value)
    assert runtime.fast_mode() is expected


def test_fast_mode_off_when_unset(monkeypatch):
    monkeypatch.delenv("MATTINGKIT_FAST", raising=False)
    assert runtime.fast_mode() is False


def test_in_colab_follows_google_colab_module(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert runtime.in_colab() is False
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert runtime.in_colab() is True


def test_pick_device_prints_choice_and_reason(monkeypatch, capsys):
    monkeypatch.delenv("MATTINGKIT_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    device = runtime.pick_device()
    assert device == torch.device("cpu")
    assert "Using device cpu: no CUDA or Apple MPS GPU" in capsys.readouterr().out
    runtime.pick_device(verbose=False)
    assert capsys.readouterr().out == ""


def test_pick_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv("MATTINGKIT_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runtime.pick_device(verbose=False) == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")
    assert runtime.pick_device(verbose=False) == torch.device("cuda")


def test_pick_device_override(monkeypatch, capsys):
    monkeypatch.setenv("MATTINGKIT_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.pick_device() == torch.device("cpu")
    assert "MATTINGKIT_DEVICE='cpu'" in capsys.readouterr().out
    monkeypatch.setenv("MATTINGKIT_DEVICE", "toaster")
    with pytest.raises(ValueError, match="toaster"):
        runtime.pick_device()


def test_repo_root_and_assets_dir(monkeypatch, tmp_path):
    assert runtime.repo_root() == ROOT
    monkeypatch.setenv("MATTINGKIT_ASSETS", str(tmp_path))
    assert runtime.assets_dir() == tmp_path
    monkeypatch.setenv("MATTINGKIT_ASSETS", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="missing"):
        runtime.assets_dir()
    monkeypatch.delenv("MATTINGKIT_ASSETS")
    assert runtime.assets_dir() == ROOT / "assets"


def test_colab_url_uses_the_one_repo_url():
    url = runtime.colab_notebook_url("01_matting_equation.ipynb")
    assert url == (
        "https://colab.research.google.com/github/mattingkit/mattingkit/blob/main/"
        "notebooks/01_matting_equation.ipynb"
    )
    assert runtime.REPO_URL == "https://github.com/mattingkit/mattingkit"
    assert runtime.REPO_BRANCH == "main"


def test_colab_install_installs_only_what_is_missing_and_reports_restart(monkeypatch, capsys):
    """Colab's preinstalled widgets (ipywidgets 7.7.1, anywidget) are kept; only the
    missing or unsatisfied requirements go to pip, and an imported one that changed asks
    for a restart."""
    colab = {"ipywidgets": "7.7.1", "anywidget": "0.9.21", "numpy": "1.0", "torch": "2.11.0"}
    colab |= {"torchvision": "0.26.0", "opencv-python-headless": "5.0.0.93", "gdown": "5.2.2"}
    colab |= {"tqdm": "4.67.3", "matplotlib": "3.10.0", "scikit-image": "0.25.2"}
    versions = iter([colab, {**colab, "numpy": "2.0", "av": "14.0"}])
    monkeypatch.setattr(runtime, "_installed_versions", lambda: next(versions))
    monkeypatch.setattr(runtime, "_distributions_of_imported_modules", lambda: {"numpy"})
    commands = []
    stale = runtime.colab_install(ROOT, run=commands.append)
    assert commands == [[sys.executable, "-m", "pip", "install", "-q", "numpy>=1.23", "av>=12"]]
    assert stale == ["numpy"]
    assert "Restart the runtime" in capsys.readouterr().out


def test_colab_requirements_accept_colabs_preinstalled_widgets():
    requirements = runtime.colab_requirements(ROOT)
    installed = {"ipywidgets": "7.7.1", "anywidget": "0.9.21", "jupyterlab-widgets": "3.0.16"}
    widgets = [r for r in requirements if r.startswith(("ipywidgets", "anywidget"))]
    assert widgets and runtime.missing_requirements(widgets, installed) == []
    assert runtime.missing_requirements(["av>=12"], installed) == ["av>=12"]
    assert runtime.missing_requirements(["Foo_Bar>=1"], {"foo-bar": "1.2"}) == []


def test_colab_install_without_restart_and_with_widgets(monkeypatch, capsys):
    enabled = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: enabled.append(1))
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(runtime, "_installed_versions", lambda: {"numpy": "1.0"})
    stale = runtime.colab_install(ROOT, custom_widgets=True, run=lambda command: None)
    assert stale == []
    assert enabled == [1]
    assert "no restart needed" in capsys.readouterr().out


def test_imported_distributions_include_torch():
    assert "torch" in runtime._distributions_of_imported_modules()


_MAKE_SCRATCH = """
import os, sys
from mattingkit.runtime import scratch_folder
folder = scratch_folder("ch06")
(folder / "checkpoint.pth").write_bytes(bytes(1000))
print(folder, flush=True)
if sys.argv[1] == "killed":
    os._exit(0)  # no clean-up, as when a kernel is killed
"""


def _make_scratch(tmp: Path, how: str) -> Path:
    env = {**os.environ, "TMPDIR": str(tmp)}
    result = subprocess.run(
        [sys.executable, "-c", _MAKE_SCRATCH, how], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


def test_a_scratch_folder_is_gone_when_python_exits(tmp_path):
    """A fresh temporary folder (TMPDIR), so no other process can fool the check."""
    folder = _make_scratch(tmp_path, "exits")
    assert folder.parent == tmp_path and folder.name.startswith("mattingkit-ch06-")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_process_leaves_its_folder_to_the_next_one(tmp_path):
    orphan = _make_scratch(tmp_path, "killed")
    assert orphan.is_dir()  # its process is gone and could not clean up
    keep = tmp_path / "mattingkit-other-notes"  # not a scratch folder: never touched
    keep.mkdir()
    _make_scratch(tmp_path, "exits")  # the next session removes the orphan, then its own
    assert list(tmp_path.iterdir()) == [keep]


def test_a_scratch_folder_name_is_plain():
    with pytest.raises(ValueError, match="letters and digits"):
        runtime.scratch_folder("../ch06")
