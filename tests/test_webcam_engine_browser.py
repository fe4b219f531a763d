"""Chapter 08's widget with the model in the browser (``engine="browser"``), in JupyterLab.

A notebook the test writes shows ``WebcamMatting(engine="browser")``; headless Chromium's
fake camera plays the clip with exact ground truth (``tests/browser_helpers.py``). Every
request that leaves loopback is refused, as on a machine without internet: the pinned
runtime cannot come from the CDN, so the kernel sends its local copy (``npm ci``), and the
model, in pieces under 1 MB. WebGPU is hidden, so the page must choose WebAssembly.

Checked: the backend (WebAssembly) and where runtime and model came from; the alpha of the
frames matted in the page against the truth, with the kernel path's tolerance
(tests/test_webcam_browser.py); the kernel receives no frames; the latency budget has the
page's stages; a re-run of the cell loads runtime and model from the browser's cache; and
the kernel engine with a simulated 200 ms round trip still mattes, with the delay in its
budget's transfer. Composites per second are reported, never asserted.
"""

from __future__ import annotations

import base64
import json
import time

import cv2
import nbformat
import numpy as np
import pytest
from browser_helpers import (
    SIZE,
    WAIT_MS,
    KernelProbe,
    alpha_against_truth,
    keep_evidence,
    menu,
    open_notebook,
    require_web_runtime,
    shoot,
    wait_all_cells_ran,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ALPHA_SLACK = 0.03  # as in tests/test_webcam_browser.py
WIDGET = ".mk-webcam"
NO_WEBGPU = "Object.defineProperty(Navigator.prototype, 'gpu', {get: () => undefined});"
START_MS = 2 * WAIT_MS  # the kernel exports the web model once (a minute on a busy machine)


def _notebook(server) -> str:
    cells = [
        nbformat.v4.new_code_cell("from mattingkit.notebook.webcam import WebcamMatting"),
        nbformat.v4.new_code_cell('camera = WebcamMatting(engine="browser")'),
        nbformat.v4.new_code_cell("camera"),
        nbformat.v4.new_code_cell("camera.engine, camera.frames_received"),
    ]
    name = "webcam_engine_browser.ipynb"
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, server.folder / name)
    return name


def _engine(page, call: str):
    return page.evaluate(f"document.querySelector('{WIDGET}').mattingkitEngine.{call}")


def _decode(item: dict) -> tuple[np.ndarray, np.ndarray]:
    h, w = item["height"], item["width"]
    rgba = np.frombuffer(base64.b64decode(item["src"]), np.uint8).reshape(h, w, 4)
    return rgba[..., :3].copy(), np.frombuffer(base64.b64decode(item["pha"]), np.float32).reshape(
        h, w
    )


def _differs(image: np.ndarray, plate: np.ndarray) -> float:
    return float((np.abs(image.astype(int) - plate.astype(int)).max(axis=2) > 40).mean())


def _start_engine(page) -> None:
    page.locator(f"{WIDGET} .mk-start").click()
    page.wait_for_function(
        """(s) => { const el = document.querySelector(s);
                    return el && (el.dataset.backend ||
                                  el.querySelector('.mk-webcam-status').textContent.includes('could not start')); }""",
        arg=WIDGET,
        timeout=START_MS,
    )
    assert page.evaluate(f"document.querySelector('{WIDGET}').dataset.backend"), page.locator(
        f"{WIDGET} .mk-webcam-status"
    ).inner_text()


def _capture_empty_plate(page, clip) -> int:
    for attempt in range(1, 41):
        _engine(page, "forgetPlate()")
        page.locator(f"{WIDGET} .mk-plate").click()
        page.wait_for_function(
            f"document.querySelector('{WIDGET}').mattingkitEngine.plate() !== null",
            timeout=WAIT_MS,
        )
        plate = _engine(page, "plate()")
        rgba = np.frombuffer(base64.b64decode(plate["rgba"]), np.uint8)
        rgba = rgba.reshape(plate["height"], plate["width"], 4)
        small = cv2.resize(rgba[..., :3], (SIZE[1], SIZE[0]), interpolation=cv2.INTER_AREA)
        if _differs(small, clip.plate) < 0.01:
            return attempt
        time.sleep(0.5)
    pytest.fail("could not capture an empty plate in 40 tries")


def _matted(page) -> int:
    return int(page.evaluate(f"+document.querySelector('{WIDGET}').dataset.framesMatted"))


def _rate(page, frames: int) -> float:
    """Composites per second over ``frames`` composites (the widget's own count)."""
    first, t0 = _matted(page), time.monotonic()
    page.wait_for_function(
        f"(n) => +document.querySelector('{WIDGET}').dataset.framesMatted >= n",
        arg=first + frames,
        timeout=WAIT_MS,
    )
    return round((_matted(page) - first) / (time.monotonic() - t0), 2)


def test_widget_browser_engine_in_jupyterlab(
    jupyter_server, new_page, camera_clip, artifacts, record_property
):
    require_web_runtime()
    server = jupyter_server
    name = _notebook(server)
    page = new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"[:300]))
    page.context.add_init_script(NO_WEBGPU)
    outside: list[str] = []

    def only_loopback(route) -> None:
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "blob:", "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_loopback)
    report: dict = {}
    try:
        open_notebook(page, server, name, "lab")
        menu(page, "Run", "Run All Cells")
        wait_all_cells_ran(page, server, name)
        probe = KernelProbe(server, name)
        try:
            started = time.monotonic()
            _start_engine(page)
            report["engine_start_s"] = round(time.monotonic() - started, 1)
            probe.wait_until("camera.backend", what="the page's backend reaching the kernel")
            state = probe.json(
                "dict(backend=camera.backend, runtime=camera.runtime_source, "
                "model=camera.model_source)"
            )
            report.update(state)
            assert state == {"backend": "wasm", "runtime": "kernel", "model": "kernel"}, state
            assert any("cdn.jsdelivr.net" in url for url in outside), outside  # tried, refused

            report["plate_tries"] = _capture_empty_plate(page, camera_clip)
            # Only frames matted against that empty plate: a try that caught the subject in
            # the plate mattes the frames after it against a wrong plate (alpha near 0 on the
            # subject), so keep no frame from before the plate was right.
            _engine(page, "keepRecent(12)")
            deadline = time.monotonic() + 2 * WAIT_MS / 1000
            while True:
                items = [_decode(item) for item in _engine(page, "recent()")]
                if sum(_differs(src, camera_clip.plate) > 0.01 for src, _ in items) >= 5:
                    break
                assert time.monotonic() < deadline, "no five matted frames with the subject"
                time.sleep(1)
            shoot(page, artifacts, "08-engine-browser-matting", WIDGET)
            report.update(
                alpha_against_truth([s for s, _ in items], [a for _, a in items], camera_clip)
            )
            report["composites_per_s_browser_320x240"] = _rate(page, 10)
            time.sleep(1.5)  # one stats message: the budget the page measured
            budget = probe.json("camera.latency_budget()")
            report["budget_ms_browser"] = {k: round(v, 1) for k, v in budget.items()}
            report["frames_received_by_kernel"] = probe.json("camera.frames_received")
            print("\nbrowser engine:", json.dumps(report))
            assert report["match_rms_255"] < 12, report
            assert report["subject_frames_checked"] >= 3, report
            assert report["alpha_mae_subject"] <= report["offline_mae_subject"] + ALPHA_SLACK, (
                report
            )
            assert report["alpha_mae_subject"] < 0.5 * report["empty_mae_subject"], report
            assert report["frames_received_by_kernel"] == 0  # the kernel saw no frame
            assert set(budget) == {"capture", "inference", "draw"}, budget

            # The kernel engine, with a simulated remote kernel (200 ms round trip).
            probe.run("camera.simulated_delay_ms = 200; camera.engine = 'kernel'")
            probe.run("camera.capture_plate()")
            probe.wait_until("camera.frames_matted >= 0 and camera.handler.plate is not None")
            probe.wait_until("len(camera.records) >= 3", what="three frames matted in the kernel")
            budget = probe.json("camera.latency_budget()")
            report["budget_ms_kernel_200ms_delay"] = {k: round(v, 1) for k, v in budget.items()}
            assert budget["transfer"] >= 150, budget
            assert probe.json("camera.frames_received") > 0

            # A re-run of the cells: runtime and model from the browser's cache.
            menu(page, "Run", "Run All Cells")
            wait_all_cells_ran(page, server, name)
            page.wait_for_function(
                f"!document.querySelector('{WIDGET}').dataset.backend", timeout=WAIT_MS
            )
            _start_engine(page)
            probe.wait_until("camera.model_source", what="the re-run's model source")
            again = probe.json("dict(runtime=camera.runtime_source, model=camera.model_source)")
            report["rerun"] = again
            assert again == {"runtime": "cache", "model": "cache"}, again
        finally:
            probe.close()
        print("\nbrowser engine:", json.dumps(report))
    except Exception:
        keep_evidence(page, server, artifacts, "08-engine-browser")
        print("\nconsole:", "\n".join(console[-30:]))
        print("status:", page.locator(f"{WIDGET} .mk-webcam-status").all_inner_texts())
        raise
    finally:
        record_property("webcam_engine_browser", json.dumps(report))
