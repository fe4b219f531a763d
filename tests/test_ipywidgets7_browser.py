"""Chapter 07's studio and chapter 08's camera on the ipywidgets 7 front end (issue 22).

Colab keeps ipywidgets 7.7.1 (its front end draws core widgets only for 7.x), so the
widgets must work with the 7.x JavaScript as well as the 8.x one the other browser tests
use. JupyterLab 4 cannot host 7.x; Notebook 6.5 (Colab's list has 6.5.7 with
widgetsnbextension 3.6.10) can. This test starts Notebook 6.5 from the Colab-like
environment of ``tests/colab_env.py`` (Colab's exact widget and kernel stack), opens a small
notebook that shows the studio and the camera widget, and in headless Chromium (whose fake
camera plays the test clip) checks that both render and work: the studio's controls carry
their ``mk-studio-*`` classes, Run mattes the sample and shows the figure and the numbers;
the camera widget draws its canvas, starts the camera, captures a plate and gets composites
back from the kernel. Screenshots go to the artifacts folder (``MATTINGKIT_BROWSER_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from browser_helpers import WAIT_MS, free_port, require_browser, shoot

sys.path.insert(0, str(Path(__file__).resolve().parent))
import colab_env  # noqa: E402

ROOT = colab_env.ROOT
CELLS = [
    "import sys; print(sys.version); import ipywidgets, anywidget; "
    "print('ipywidgets', ipywidgets.__version__, 'anywidget', anywidget.__version__)",
    "from mattingkit.notebook.studio import Studio\n"
    "studio = Studio(weights='shipped', backbone='mobilenetv2', max_side=160, repeats=1)\n"
    "studio.show(interactive=True)",
    "from mattingkit.apps.inference import Matter\n"
    "from mattingkit.notebook.webcam import WebcamMatting\n"
    "camera = WebcamMatting(Matter(), width=320, height=240, background='green')\n"
    "camera",
]


class ClassicNotebook:
    """``jupyter notebook`` (6.5) of the Colab-like environment on loopback, with a token."""

    def __init__(self, env_dir: Path, folder: Path) -> None:
        self.port, self.token = free_port(), "mattingkit-ipywidgets7"
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.pop("MATTINGKIT_FAST", None)
        env["PYTHONPATH"] = str(ROOT)  # mattingkit from this checkout (not the Colab stand-in)
        env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        for name in ("JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR"):
            env[name] = str(folder / name.lower())
        env["MATTINGKIT_HOME"] = str(folder / "home")
        env["TMPDIR"] = str(folder / "tmp")
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        proxy = f"http://127.0.0.1:{free_port()}"  # offline: the shipped model is used
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[name] = proxy
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env["OMP_NUM_THREADS"] = "1"
        self.log_path = folder / "notebook.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(colab_env.python_of(env_dir)), "-m", "notebook", "--no-browser"]
            + ["--ip=127.0.0.1", f"--port={self.port}", "--port-retries=0"]
            + [f"--NotebookApp.token={self.token}", f"--notebook-dir={folder}", "--allow-root"],
            cwd=folder,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=5):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("Notebook 6.5 did not start:\n" + self.log_tail()) from None
                time.sleep(0.5)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


class Page:
    """Notebook 6.5 of the Colab-like environment with ``cells`` open and run in Chromium."""

    def __init__(self, chromium, folder: Path, shots: Path, cells: list[str], nbconfig=None):
        env_dir, _record = colab_env.build()
        folder.mkdir(parents=True)
        if nbconfig is not None:  # the user's nbconfig overrides the environment's
            config = folder / "jupyter_config_dir" / "nbconfig"
            config.mkdir(parents=True)
            (config / "notebook.json").write_text(json.dumps(nbconfig))
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(code) for code in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        nbformat.write(nb, folder / "widgets7.ipynb")
        self.shots = shots
        shots.mkdir(parents=True, exist_ok=True)
        self.server = ClassicNotebook(env_dir, folder)
        self.context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        self.context.grant_permissions(["camera"], origin=self.server.url)
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        page = self.page
        page.goto(f"{self.server.url}/notebooks/widgets7.ipynb?token={self.server.token}")
        page.wait_for_function(
            "() => window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel"
            " && Jupyter.notebook.kernel.is_connected()"
        )
        page.evaluate("() => Jupyter.notebook.execute_all_cells()")
        page.locator(".output_area pre").filter(has_text="ipywidgets 7.7.1").wait_for()

    def keep_evidence(self) -> None:
        self.page.screenshot(path=str(self.shots / "failure.png"), full_page=True)
        (self.shots / "notebook.log").write_text(self.server.log_tail())
        (self.shots / "console.json").write_text(json.dumps(self.console, indent=1))
        print(f"\nevidence in {self.shots}")

    def close(self) -> None:
        self.context.close()
        self.server.stop()


@pytest.mark.slow
@pytest.mark.browser
def test_camera_on_the_ipywidgets_7_front_end(chromium, tmp_path, artifacts):
    """anywidget 0.9.21 on ipywidgets 7.7.1: the canvas, the camera, a plate, composites."""
    require_browser()
    view = Page(chromium, tmp_path / "nb6", artifacts / "ipywidgets7-camera", [CELLS[0], CELLS[2]])
    page = view.page
    try:
        widget = page.locator(".mk-webcam")
        widget.wait_for()
        assert widget.locator("canvas").count() >= 1
        shoot(page, view.shots, "camera-rendered", ".mk-webcam")
        widget.locator(".mk-start").click()
        page.wait_for_function("() => +document.querySelector('.mk-webcam').dataset.framesSeen > 5")
        widget.locator(".mk-plate").click()
        page.wait_for_function(
            "() => +document.querySelector('.mk-webcam').dataset.framesMatted > 5"
        )
        shoot(page, view.shots, "camera-live", ".mk-webcam")
        page.wait_for_function(  # the stats line is redrawn once a second
            "() => /matting [1-9]|matting 0\\.[1-9]/.test("
            "document.querySelector('.mk-webcam .mk-webcam-stats').textContent)"
        )
        assert page.locator(".mk-webcam canvas").first.is_visible()
    except Exception:
        view.keep_evidence()
        raise
    finally:
        view.close()


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xfail(
    reason="Notebook 6.5.7 + widgetsnbextension 3.6.10 (Colab's versions) cannot create the "
    "Output widget's model ('_deserialize_state is not a function'), and with anywidget's "
    "nbextension enabled no core widget at all; the studio's panel holds Output widgets. "
    "Colab's own front end is not this one. See the issue 22 note.",
    strict=False,
)
def test_studio_on_the_ipywidgets_7_front_end(chromium, tmp_path, artifacts):
    """The studio's core widgets on ipywidgets 7.7.1: classes, Run, the fields of 'your own'.

    anywidget's classic-notebook extension is switched off here (Colab loads none), since
    with it on, Notebook 6.5.7 creates no core widget at all."""
    require_browser()
    view = Page(
        chromium,
        tmp_path / "nb6",
        artifacts / "ipywidgets7-studio",
        [CELLS[0], CELLS[1]],
        nbconfig={"load_extensions": {"anywidget/extension": False}},
    )
    page = view.page
    try:
        page.locator(".mk-studio").wait_for(timeout=120_000)
        for name in ("media", "backbone", "weights", "preset", "refine-mode", "run"):
            assert page.locator(f".mk-studio-{name}").count() >= 1, name
        shoot(page, view.shots, "studio-rendered", ".mk-studio")
        page.locator("button.mk-studio-run").click()
        page.locator(".mk-studio-results img").wait_for()
        page.locator(".mk-studio-stats table").wait_for()
        page.locator(".mk-studio-media button", has_text="your own").click()
        page.locator(".mk-studio-source input").wait_for(state="visible")
        shoot(page, view.shots, "studio-after-run", ".mk-studio")
    except Exception:
        view.keep_evidence()
        raise
    finally:
        view.close()
