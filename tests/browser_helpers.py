"""Shared pieces of the real-browser tests: one Jupyter server, one Chromium, a fake camera.

The browser tests (``tests/test_studio_browser.py``, ``tests/test_webcam_browser.py``) run
the chapters as students do: a Jupyter server on loopback (JupyterLab at ``/lab``,
Notebook 7 at ``/notebooks``, both from the same server), Debian's ``/usr/bin/chromium``
(or the binary ``$MATTINGKIT_CHROMIUM`` names) driven by Playwright (never a downloaded
browser), and a fake camera that plays a clip the tests generate
(``--use-file-for-fake-video-capture``). The server and the browser are session fixtures
(``tests/conftest.py`` imports them), so every browser test shares them; each test gets its
own browser context and notebook copy.

Without Chromium (a fresh machine) the browser tests are skipped, and one line at the top
of the test summary says what to install and which tests were skipped
(``tests/conftest.py``); under ``CI=true`` a missing browser is a failure instead.
``MATTINGKIT_CHROMIUM=/nonexistent`` shows what such a machine sees.

Robust on a slow, loaded machine: every wait is for a state of the page or the kernel, with
generous limits (``WAIT_MS``); nothing sleeps for a fixed time to let work happen.

Screenshots go to ``$MATTINGKIT_BROWSER_ARTIFACTS`` (default: the session's temporary
folder), with the server log when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: The browser: Debian's Chromium, or the binary ``$MATTINGKIT_CHROMIUM`` names.
CHROMIUM = Path(os.environ.get("MATTINGKIT_CHROMIUM", "").strip() or "/usr/bin/chromium")
#: What a Debian or Ubuntu machine installs to run the browser tests (as ``.ci/run`` does).
INSTALL_CHROMIUM = "sudo apt-get install chromium chromium-driver"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
#: Generous limits for waits on page or kernel state (a loaded 2-core machine is slow).
WAIT_MS = 240_000
LONG_WAIT_MS = 600_000

#: The fake camera: a clip made at SIZE with exact ground truth, written at 2× (640×480)
#: so the same browser serves the 640×480 measurement and the 320×240 accuracy check (the
#: widget's downscale of the 2× frames gives back the clip's pixels closely).
SIZE = (240, 320)  # H, W of the clip and its ground truth
CAMERA_SCALE = 2
PLATE_FRAMES, SUBJECT_FRAMES, FPS = 45, 30, 15


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def browser_missing() -> str | None:
    """What the browser tests lack on this machine, said as what to install; None if nothing."""
    if not CHROMIUM.is_file():
        return (
            f"Chromium is not installed ({CHROMIUM} is missing): install it with "
            f"`{INSTALL_CHROMIUM}` (Debian/Ubuntu; .ci/run does), or set MATTINGKIT_CHROMIUM "
            "to a Chromium binary"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed: install it with `pip install -e '.[test]'`"
    return None


def require_browser() -> None:
    """Skip without Chromium (or Playwright), except under CI, where it is a failure."""
    message = browser_missing()
    if message is None:
        return
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing browser is a failure)")
    pytest.skip(message)


def require_web_runtime() -> None:
    """Skip without the pinned onnxruntime-web (``npm ci``), except under CI (a failure),
    like a missing browser: the skip says the command that installs it."""
    from mattingkit.apps.web import RuntimeMissing, runtime_files

    try:
        runtime_files()
    except RuntimeMissing as error:
        if in_ci():
            pytest.fail(f"{error} (CI=true: a missing runtime is a failure)")
        pytest.skip(str(error))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def artifacts_dir(default: Path) -> Path:
    folder = Path(os.environ.get("MATTINGKIT_BROWSER_ARTIFACTS", default))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --------------------------------------------------------------------------------------
# The fake camera clip
# --------------------------------------------------------------------------------------
def y4m_round_trip(frames: np.ndarray) -> np.ndarray:
    """What the camera shows of RGB uint8 frames (T, H, W, 3): the I420 round trip."""
    out = []
    for rgb in frames:
        yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
        out.append(cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420))
    return np.stack(out)


class CameraClip:
    """The clip behind the fake camera: frames as the camera shows them, and the truth."""

    def __init__(self, folder: Path) -> None:
        from mattingkit.data.synthetic import make_clip
        from mattingkit.notebook.webcam import write_y4m

        clip = make_clip(8, SIZE, SUBJECT_FRAMES, subject="person")
        frames = torch.cat([clip.bgr[None].expand(PLATE_FRAMES, -1, -1, -1), clip.src])
        small = (frames.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        big = np.stack(
            [
                cv2.resize(
                    f,
                    (SIZE[1] * CAMERA_SCALE, SIZE[0] * CAMERA_SCALE),
                    interpolation=cv2.INTER_LINEAR,
                )
                for f in small
            ]
        )
        self.path = write_y4m(folder / "camera.y4m", big, fps=FPS)
        shown = y4m_round_trip(big)
        #: The camera's frames at the widget's default 320×240 (area downscale, like a canvas).
        self.frames = np.stack(
            [cv2.resize(f, (SIZE[1], SIZE[0]), interpolation=cv2.INTER_AREA) for f in shown]
        )
        self.truth = torch.cat([torch.zeros(PLATE_FRAMES, 1, *SIZE), clip.pha])[:, 0].numpy()
        self.plate = self.frames[0]
        self.fps = FPS
        self.camera_size = (SIZE[0] * CAMERA_SCALE, SIZE[1] * CAMERA_SCALE)


# --------------------------------------------------------------------------------------
# The Jupyter server
# --------------------------------------------------------------------------------------
class JupyterServer:
    """A Jupyter server on loopback in ``folder`` (JupyterLab and Notebook 7); its REST API."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port, self.token = free_port(), "mattingkit-browser-test"
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.pop("MATTINGKIT_FAST", None)  # the chapters run live in the browser
        for name in ("JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
            env[name] = str(folder / name.lower())
        env["MATTINGKIT_HOME"] = str(folder / "mattingkit_home")  # no cached official weights
        env["OMP_NUM_THREADS"] = env.get("MATTINGKIT_BROWSER_THREADS", "1")
        # Offline, as on a plane or behind a firewall, even where CI can reach the internet:
        # a proxy nobody listens on refuses every download at once (loopback stays direct).
        proxy = f"http://127.0.0.1:{free_port()}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[name] = proxy
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env["PYTHONUNBUFFERED"] = "1"
        # The kernels' scratch files stay in the session's folder, whatever their shutdown.
        env["TMPDIR"] = env["TMP"] = env["TEMP"] = str(folder / "tmp")
        (folder / "tmp").mkdir(exist_ok=True)
        # No "Would you like to get notified about news?" toast over the page.
        settings = folder / "jupyterlab_settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        # Every cell in the page (no windowing), so a test finds cells as a user scrolls to them.
        tracker = folder / "jupyterlab_settings" / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True, exist_ok=True)
        (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        env["JUPYTERLAB_SETTINGS_DIR"] = str(folder / "jupyterlab_settings")
        self.env = env
        self.runtime_dir = Path(env["JUPYTER_RUNTIME_DIR"])
        self.log_path = folder / "jupyter.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={folder}",
                "--LabApp.news_url=",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--allow-root",  # CI containers run as root
            ],
            cwd=folder,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kernels go down with it
        )
        deadline = time.monotonic() + WAIT_MS / 1000
        while True:
            try:
                self.api("status")
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("Jupyter did not start:\n" + self.log_tail()) from None
                time.sleep(0.5)

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            f"{self.url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernel_of(self, notebook: str) -> dict:
        """The kernel model (id, execution_state) of the session running ``notebook``."""
        for session in self.api("sessions"):
            if session.get("path", "").endswith(notebook) and session.get("kernel"):
                return session["kernel"]
        raise LookupError(f"no kernel runs {notebook}")

    def wait_for_kernel(
        self, notebook: str, state: str = "idle", timeout_ms: int = WAIT_MS
    ) -> dict:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                kernel = self.kernel_of(notebook)
                kernel = self.api(f"kernels/{kernel['id']}")
                if kernel["execution_state"] == state:
                    return kernel
            except (LookupError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the kernel of {notebook} did not become {state!r}")
            time.sleep(0.3)

    def copy_notebook(self, name: str, as_name: str | None = None) -> str:
        """A fresh copy of ``notebooks/<name>`` in the server folder; returns its name."""
        target = as_name or name
        shutil.copy(NOTEBOOKS / name, self.folder / target)
        return target

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


class KernelProbe:
    """A second client on a notebook's kernel: runs code there, returns what it printed."""

    def __init__(self, server: JupyterServer, notebook: str) -> None:
        from jupyter_client import BlockingKernelClient

        kernel_id = server.kernel_of(notebook)["id"]
        connection = server.runtime_dir / f"kernel-{kernel_id}.json"
        self.client = BlockingKernelClient(connection_file=str(connection))
        self.client.load_connection_file()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=WAIT_MS / 1000)

    def run(self, code: str, timeout: float = WAIT_MS / 1000) -> str:
        printed: list[str] = []

        def keep(message: dict) -> None:
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"])
            elif message["msg_type"] == "error":
                printed.append("\n".join(message["content"]["traceback"]))

        reply = self.client.execute_interactive(code, output_hook=keep, timeout=timeout)
        assert reply["content"]["status"] == "ok", "".join(printed)
        return "".join(printed)

    def json(self, expression: str) -> Any:
        code = (
            "import json as _j; print(_j.dumps("
            f"{expression}, default=lambda o: o.item() if hasattr(o, 'item') else str(o)))"
        )
        return json.loads(self.run(code).strip())

    def wait_until(self, expression: str, timeout_ms: int = WAIT_MS, what: str = "") -> Any:
        """Poll a Python expression in the kernel until it is truthy; return its value."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            value = self.json(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what or expression} did not happen in {timeout_ms} ms")
            time.sleep(0.3)

    def close(self) -> None:
        self.client.stop_channels()


# --------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------
ERROR_OUTPUTS = (
    ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'],"
    ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']"
)


def open_notebook(page: Any, server: JupyterServer, name: str, ui: str = "lab") -> None:
    """Open ``name`` in JupyterLab (``ui="lab"``) or Notebook 7 (``"notebook"``) and wait
    until its kernel is idle."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    if ui == "lab":
        # A workspace of its own, reset: JupyterLab would otherwise reopen the tabs of the
        # tests before (their cells, prompts and outputs would then be on this page too).
        workspace = "".join(c if c.isalnum() else "-" for c in Path(name).stem)
        path = f"lab/workspaces/{workspace}/tree/{name}?reset&"
    else:
        path = f"notebooks/{name}?"
    page.goto(f"{server.url}/{path}token={server.token}", timeout=WAIT_MS)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=WAIT_MS)
    # Without a kernelspec in the file, the front end asks which kernel to start.
    select_kernel = page.locator(".jp-Dialog .jp-mod-accept", has_text="Select")
    try:
        select_kernel.wait_for(timeout=10_000)
        select_kernel.click()
    except PlaywrightTimeout:
        pass  # no dialog: the kernel started on its own
    server.wait_for_kernel(name, "idle")


def menu(page: Any, top: str, item: str) -> None:
    """Click a menu item, as a student does (the same menus in JupyterLab and Notebook 7)."""
    page.locator(".lm-MenuBar-item", has_text=top).first.click()
    page.locator(".lm-Menu-item:visible", has_text=item).first.click()


def wait_all_cells_ran(
    page: Any, server: JupyterServer, name: str, timeout_ms: int = LONG_WAIT_MS
) -> None:
    """Wait until every code cell shows an execution count and the kernel is idle."""
    page.wait_for_function(
        """() => {
            // Only the notebook on show: a tab in the background has prompts of its own.
            const shown = [...document.querySelectorAll('.jp-NotebookPanel')].filter(
                panel => panel.offsetParent !== null);
            const prompts = shown.flatMap(panel => [
                ...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]);
            return prompts.length > 3 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""",
        timeout=timeout_ms,
    )
    server.wait_for_kernel(name, "idle", timeout_ms)


def error_outputs(page: Any) -> list[str]:
    """The text of every stderr or error output on the page (tracebacks, warnings)."""
    return page.eval_on_selector_all(ERROR_OUTPUTS, "nodes => nodes.map(n => n.innerText)")


def visible(page: Any, selector: str) -> bool:
    """Whether the element takes room on the page (its own geometry, not a CSS guess)."""
    return page.evaluate(
        """(selector) => {
            const node = document.querySelector(selector);
            if (!node) return false;
            const box = node.getBoundingClientRect();
            return box.width > 0 && box.height > 0 && node.getClientRects().length > 0;
        }""",
        selector,
    )


def shoot(page: Any, folder: Path, name: str, selector: str | None = None) -> Path:
    """A screenshot of the page, or of one element, as ``<folder>/<name>.png``."""
    path = folder / f"{name}.png"
    if selector:
        page.locator(selector).first.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=False)
    return path


def keep_evidence(page: Any, server: JupyterServer, folder: Path, name: str) -> None:
    """After a failure: a full-page screenshot and the server log, where they can be found."""
    try:
        page.screenshot(path=str(folder / f"{name}-failure.png"), full_page=True)
    except Exception:  # noqa: BLE001 - the page may be gone; the log still helps
        pass
    (folder / f"{name}-jupyter.log").write_text(server.log_tail(200_000))
    print(f"\nscreenshot and server log in {folder}")


class Checks:
    """Checks that each report their failure and let the test go on to the next one.

    One run of a slow browser test then shows every defect it finds, not only the first
    (a failed wait is reported by what it waited for). :meth:`done` fails the test with
    all of them. Steps the later checks depend on (the chapter runs, the camera starts)
    stay plain assertions.
    """

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed: list[str] = []

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        from playwright.sync_api import Error as PlaywrightError

        try:
            yield
        except (AssertionError, TimeoutError, PlaywrightError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            self.failures.append(f"{name}: {type(error).__name__}: {first[:400]}")
            print(f"\n✗ {name}: {error}")
        else:
            self.passed.append(name)

    def done(self) -> None:
        assert not self.failures, "\n".join(self.failures)


# --------------------------------------------------------------------------------------
# Fixtures (imported by tests/conftest.py, so all browser tests share one server/browser)
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser_folder(tmp_path_factory: Any) -> Path:
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="session")
def camera_clip(browser_folder: Path) -> CameraClip:
    return CameraClip(browser_folder)


@pytest.fixture(scope="session")
def jupyter_server(browser_folder: Path) -> Iterator[JupyterServer]:
    """One Jupyter server for every browser test; always stopped, with its kernels."""
    require_browser()
    server = JupyterServer(browser_folder / "server")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium(camera_clip: CameraClip) -> Iterator[Any]:
    """One headless Chromium whose webcam plays the test clip; always closed."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={camera_clip.path}"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_page(chromium: Any, jupyter_server: JupyterServer) -> Iterator[Callable[[], Any]]:
    """Pages in a fresh browser context (camera allowed), closed after the test."""
    contexts = []

    def make() -> Any:
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        context.grant_permissions(["camera"], origin=jupyter_server.url)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context.new_page()

    try:
        yield make
    finally:
        for context in contexts:
            context.close()


@pytest.fixture(scope="session")
def artifacts(browser_folder: Path) -> Path:
    return artifacts_dir(browser_folder / "artifacts")


class IopubRecorder:
    """Everything a kernel broadcasts (outputs, errors), with the request that caused it.

    An output caused by a widget's ``comm_msg`` lands in JupyterLab's log console (Notebook
    7 drops it), unless an ``Output`` widget captures it: while a ``with out:`` block runs,
    the Output widget's ``msg_id`` names that request, and the front end puts its outputs
    there. :meth:`caused_by_widgets` lists the others.
    """

    def __init__(self, server: JupyterServer, notebook: str) -> None:
        import threading

        self.probe = KernelProbe(server, notebook)
        self.messages: list[dict] = []
        self.captured: set[str] = set()  # requests an Output widget captured
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        import queue

        while not self._stop.is_set():
            try:
                message = self.probe.client.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "comm_msg":
                state = (content.get("data") or {}).get("state") or {}
                if state.get("msg_id"):
                    self.captured.add(state["msg_id"])
            elif kind in ("display_data", "execute_result", "stream", "error"):
                self.messages.append(
                    {
                        "type": kind,
                        "parent": message["parent_header"].get("msg_type"),
                        "parent_id": message["parent_header"].get("msg_id"),
                        "mime": sorted(content.get("data", {})),
                        "stream": content.get("name"),
                        "text": str(content.get("text") or content.get("evalue") or "")[:300],
                    }
                )

    def caused_by_widgets(self, since: int = 0) -> list[dict]:
        """Outputs and errors a widget message caused that no Output widget captured."""
        return [
            m
            for m in self.messages[since:]
            if m["parent"] != "execute_request" and m["parent_id"] not in self.captured
        ]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.probe.close()


# --------------------------------------------------------------------------------------
# Static pages (the exported web page) and alpha against the clip's truth
# --------------------------------------------------------------------------------------
class StaticServer:
    """A folder served over http on loopback, in a thread, with every path it was asked for.

    Browsers load WebAssembly and open cameras only on served pages, never ``file://``;
    the request log shows what a page fetched (the model once, then from its cache).
    """

    def __init__(self, folder: Path) -> None:
        import functools
        import threading
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        requests: list[str] = []
        self.requests = requests

        class Handler(SimpleHTTPRequestHandler):
            extensions_map = {  # noqa: RUF012 - http.server's own class attribute
                **SimpleHTTPRequestHandler.extensions_map,
                ".mjs": "text/javascript",
                ".wasm": "application/wasm",
                ".onnx": "application/octet-stream",
            }

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                requests.append(self.path.split("?")[0])
                super().do_GET()

            def log_message(self, *args: Any) -> None:  # quiet: the list is the log
                pass

        self.httpd = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def fetched(self, suffix: str) -> int:
        """How many times a path ending in ``suffix`` was requested."""
        return sum(path.endswith(suffix) for path in self.requests)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def alpha_against_truth(
    sources: Sequence[np.ndarray], alphas: Sequence[np.ndarray], clip: CameraClip
) -> dict:
    """Match matted frames (RGB uint8 at the clip's size, with their alpha) to the clip and
    compare the alpha with the truth, and with what the shipped model gives offline for the
    matched clip frames (JPEG at quality 80, the clip's own plate: the kernel path's inputs).
    Frames of the plate part are counted in ``alpha_mae_all`` only."""
    from mattingkit.apps.inference import Matter

    flat = clip.frames.reshape(len(clip.frames), -1).astype(np.float32)
    errors, subject, residuals = [], [], []
    for src, pha in zip(sources, alphas):
        distances = ((flat - src.reshape(1, -1).astype(np.float32)) ** 2).mean(axis=1)
        index = int(distances.argmin())
        residuals.append(float(np.sqrt(distances[index])))
        error = float(np.abs(pha - clip.truth[index]).mean())
        errors.append(error)
        if index >= PLATE_FRAMES:
            subject.append((index, error))
    offline, empty = [], []
    if subject:
        matter = Matter(device="cpu")

        def jpeg_tensor(image: np.ndarray) -> torch.Tensor:
            data = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])[1]
            rgb = cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1].copy()
            return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255

        plate = jpeg_tensor(clip.plate)
        for index, _ in subject:
            result = matter(jpeg_tensor(clip.frames[index]), plate)
            offline.append(
                float(np.abs(result.pha[0, 0].float().numpy() - clip.truth[index]).mean())
            )
            empty.append(float(clip.truth[index].mean()))

    def mean(values: list[float]) -> float:
        return round(float(np.mean(values)), 4) if values else 1.0

    return {
        "subject_frames_checked": len(subject),
        "alpha_mae_subject": mean([e for _, e in subject]),
        "offline_mae_subject": mean(offline),
        "empty_mae_subject": mean(empty),
        "alpha_mae_all": mean(errors),
        "match_rms_255": round(float(np.mean(residuals)), 2) if residuals else 255.0,
    }
