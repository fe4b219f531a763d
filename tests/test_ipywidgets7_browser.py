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
        # The per-test user config (Page's ``nbconfig``) must win over the environment's
        # notebook.d files: jupyter_core 5 ranks a virtual environment's config above the
        # user's unless told otherwise, so an override there was silently ignored.
        env["JUPYTER_PREFER_ENV_PATH"] = "0"
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
        self._wait_for_widget_restore()
        page.evaluate("() => Jupyter.notebook.execute_all_cells()")
        page.locator(".output_area pre").filter(has_text="ipywidgets 7.7.1").wait_for()

    def _wait_for_widget_restore(self, limit_s: float = 30.0) -> None:
        """Wait until widgetsnbextension 3.6 has restored the kernel's widgets after connecting.

        It asks the kernel over the ``jupyter.widget.control`` comm (ipywidgets 8 only), falls
        back to per-model state, and meanwhile forgets models a running cell creates: that
        cell's output gets ``model_id: ""`` and draws nothing, with no error logged (seen for
        the studio, whose 128 models take a while). A person never runs a cell that fast.
        """
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if any("jupyter.widget.control" in line for line in self.console):
                break
            self.page.wait_for_timeout(200)
        self.page.wait_for_timeout(2000)  # the fallback: no model to fetch in a new kernel

    def keep_evidence(self) -> None:
        self.page.screenshot(path=str(self.shots / "failure.png"), full_page=True)
        (self.shots / "notebook.log").write_text(self.server.log_tail())
        (self.shots / "console.json").write_text(json.dumps(self.console, indent=1))
        print(f"\nevidence in {self.shots}")

    def close(self) -> None:
        self.context.close()
        self.server.stop()


@pytest.mark.slow
@pytest.mark.colab
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


def js_errors(console: list[str]) -> list[str]:
    """The console's errors and uncaught exceptions (warnings and logs left out)."""
    return [line for line in console if line.startswith(("error:", "pageerror:"))]


@pytest.mark.slow
@pytest.mark.colab
@pytest.mark.browser
def test_studio_on_the_ipywidgets_7_front_end(chromium, tmp_path, artifacts):
    """The studio on ipywidgets 7.7.1: it renders, Run and Apply background draw their
    images, "your own" shows its fields, and the console holds no JavaScript error.

    The panel holds no ``Output`` widget (widgetsnbextension 3.6.10 cannot create its model in
    Notebook 6.5: ``_deserialize_state is not a function``, and one such child blanks the
    whole panel). anywidget's classic-notebook extension is switched off here, as on Colab
    (which loads no nbextension): with it on, Notebook 6.5.7 draws no core widget at all,
    not even a lone ``HTML``, and logs nothing; that is anywidget 0.9.21's nbextension, not
    the studio (the camera test, an anywidget, runs with it on)."""
    require_browser()
    view = Page(
        chromium,
        tmp_path / "nb6",
        artifacts / "ipywidgets7-studio",
        [CELLS[0], CELLS[1]],
        nbconfig={"load_extensions": {"anywidget/extension": False}},
    )
    page = view.page
    image_drawn = (
        "(selector) => { const i = document.querySelector(selector);"
        " return i !== null && i.complete && i.naturalWidth > 100; }"
    )
    try:
        page.locator(".mk-studio").wait_for(timeout=120_000)
        assert "log: Loading extension: anywidget/extension" not in view.console
        assert "log: Loading extension: jupyter-js-widgets/extension" in view.console
        for name in ("media", "backbone", "weights", "preset", "refine-mode", "run"):
            page.locator(f".mk-studio-{name}").first.wait_for(state="attached")  # drawn late
        assert page.locator(".mk-studio-results img").count() == 0, "a figure before Run"
        shoot(page, view.shots, "studio-rendered", ".mk-studio")
        page.locator("button.mk-studio-run").click()
        page.wait_for_function(image_drawn, arg=".mk-studio-results img", timeout=120_000)
        page.locator(".mk-studio-stats table").wait_for()
        assert "✓" in page.locator(".mk-studio-status").inner_text()
        # The button's label comes back in a later widget message than the figure and the
        # status; under load it lags behind them, so wait for it (it must come back).
        page.wait_for_function(
            "() => document.querySelector('button.mk-studio-run').innerText.trim() === 'Run'",
            timeout=60_000,
        )
        page.locator(".mk-studio-background-kind button", has_text="blur").click()
        page.locator("button.mk-studio-background-button").click()
        page.wait_for_function(image_drawn, arg=".mk-studio-composite img", timeout=120_000)
        shoot(page, view.shots, "studio-after-run", ".mk-studio")
        page.locator(".mk-studio-media button", has_text="your own").click()
        page.locator(".mk-studio-source input").wait_for(state="visible")
        assert js_errors(view.console) == [], js_errors(view.console)
    except Exception:
        view.keep_evidence()
        raise
    finally:
        view.close()
