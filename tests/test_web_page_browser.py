"""``mattingkit export --web``'s page in a real browser, driven as a person would, no Python.

The folder the command writes is served over http on loopback (browsers refuse WebAssembly
and cameras on ``file://``) to headless Debian Chromium, whose fake camera plays the test
clip with exact ground truth (``tests/browser_helpers.py``). WebGPU is hidden from the page,
so it must pick WebAssembly and say so. Every request that leaves loopback is refused: the
page runs from its own folder (the pinned runtime installed by ``npm ci``), offline.

Checked: the page loads the model and the runtime and reports its backend; Start camera,
Capture plate (retried until the camera shows the empty background), and the alpha of the
frames the page matted against the clip's truth, with the same tolerance as chapter 08's
kernel path (tests/test_webcam_browser.py): at most 0.03 more mean absolute error than the
model gives offline on the same clip frames, and half the error of an empty matte. Then the
composite is drawn on the chosen background, and a reload takes the model from the
browser's cache (the server sees one request for it). The model's time per frame is
reported, never asserted (benchmarks/web_matting.py measures both paths).
"""

from __future__ import annotations

import base64
import json
import time

import cv2
import numpy as np
import pytest
from browser_helpers import (
    CHROMIUM,
    SIZE,
    WAIT_MS,
    StaticServer,
    alpha_against_truth,
    require_web_runtime,
    shoot,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ALPHA_SLACK = 0.03  # as in tests/test_webcam_browser.py
GREEN = np.array([120, 255, 155])  # the page's default background
#: Hides WebGPU from the page, as in a browser without it (headless Chromium has none
#: either, with --disable-gpu; this makes the check independent of the flags).
NO_WEBGPU = "Object.defineProperty(Navigator.prototype, 'gpu', {get: () => undefined});"


@pytest.fixture(scope="module")
def web_page(tmp_path_factory):
    """The exported page, served; the server's request log is kept."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from mattingkit.apps.web import export_web

    require_web_runtime()
    folder = export_web(tmp_path_factory.mktemp("web") / "page")
    server = StaticServer(folder)
    try:
        yield server
    finally:
        server.stop()


def _open(chromium, server: StaticServer, outside: list[str]):
    """A fresh context: camera allowed, WebGPU hidden, nothing beyond loopback."""
    context = chromium.new_context(viewport={"width": 1300, "height": 900})
    context.grant_permissions(["camera"], origin=server.url)
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(NO_WEBGPU)

    def only_loopback(route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    return context


def _wait_state(page, state: str) -> None:
    page.wait_for_function(
        "(s) => document.body.dataset.state === s || document.body.dataset.state === 'error'",
        arg=state,
        timeout=WAIT_MS,
    )
    body = page.evaluate("({...document.body.dataset})")
    assert body.get("state") == state, (body, page.locator(".mk-status").inner_text())


def _plate_is_empty(page, clip) -> bool:
    """Whether the captured plate shows the empty background (the clip loops)."""
    data = page.evaluate(
        """() => {
            const c = document.querySelector('.mk-plate-view');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let s = ''; for (let i = 0; i < d.length; i += 0x8000)
                s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
            return {w: c.width, h: c.height, b64: btoa(s)};
        }"""
    )
    rgba = np.frombuffer(base64.b64decode(data["b64"]), np.uint8).reshape(data["h"], data["w"], 4)
    small = cv2.resize(rgba[..., :3], (SIZE[1], SIZE[0]), interpolation=cv2.INTER_AREA)
    differs = np.abs(small.astype(int) - clip.plate.astype(int)).max(axis=2) > 40
    return float(differs.mean()) < 0.01


def capture_empty_plate(page, clip) -> int:
    """Press Capture plate until the plate shows the empty background; returns the tries."""
    for attempt in range(1, 41):
        page.evaluate("window.mattingkitPage.resetPlate()")
        page.locator(".mk-plate").click()
        page.wait_for_function("document.body.dataset.plate === 'yes'", timeout=WAIT_MS)
        if _plate_is_empty(page, clip):
            return attempt
        time.sleep(0.5)  # the clip's plate part comes back within 5 s
    pytest.fail("could not capture an empty plate in 40 tries")


def _recent(page) -> tuple[list[np.ndarray], list[np.ndarray]]:
    sources, alphas = [], []
    for item in page.evaluate("window.mattingkitPage.recent()"):
        h, w = item["height"], item["width"]
        rgba = np.frombuffer(base64.b64decode(item["src"]), np.uint8).reshape(h, w, 4)
        sources.append(rgba[..., :3].copy())
        alphas.append(np.frombuffer(base64.b64decode(item["pha"]), np.float32).reshape(h, w))
    return sources, alphas


def _with_subject(sources: list[np.ndarray], plate: np.ndarray) -> int:
    return sum(
        float((np.abs(s.astype(int) - plate.astype(int)).max(axis=2) > 40).mean()) > 0.01
        for s in sources
    )


def test_exported_page_mattes_the_camera_offline_on_wasm(
    web_page, chromium, camera_clip, artifacts, record_property
):
    outside: list[str] = []
    context = _open(chromium, web_page, outside)
    report: dict = {}
    try:
        page = context.new_page()
        console = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        started = time.monotonic()
        page.goto(web_page.url + "/index.html")
        _wait_state(page, "ready")
        report["ready_s"] = round(time.monotonic() - started, 1)
        body = page.evaluate("({...document.body.dataset})")
        assert body["backend"] == "wasm", body  # no WebGPU: WebAssembly, and said so
        assert "WebAssembly" in page.locator(".mk-status").inner_text()
        assert body["modelSource"] == "network"

        page.locator(".mk-start").click()
        _wait_state(page, "running")
        report["plate_tries"] = capture_empty_plate(page, camera_clip)
        # Only frames matted against that empty plate (a try that caught the subject in the
        # plate mattes the frames after it against a wrong plate).
        page.evaluate("window.mattingkitPage.keepRecent(12)")

        # Alpha against the truth: wait for matted frames that show the subject.
        deadline = time.monotonic() + 2 * WAIT_MS / 1000
        while True:
            sources, alphas = _recent(page)
            if _with_subject(sources, camera_clip.plate) >= 5:
                break
            assert time.monotonic() < deadline, "no five matted frames with the subject"
            time.sleep(1)
        shoot(page, artifacts, "web-page-matting-on-green")
        report.update(alpha_against_truth(sources, alphas, camera_clip))
        body = page.evaluate("({...document.body.dataset})")
        report.update(
            ms_per_frame_320x240=float(body["msPerFrame"]),
            composites_per_s_320x240=float(body["compositesPerSecond"]),
            output=body["outputSize"],
        )
        print("\nexported page:", json.dumps(report))
        assert report["output"] == "320x240"
        assert report["match_rms_255"] < 12, f"matted frames do not look like the clip: {report}"
        assert report["subject_frames_checked"] >= 3, report
        assert report["alpha_mae_subject"] <= report["offline_mae_subject"] + ALPHA_SLACK, report
        assert report["alpha_mae_subject"] < 0.5 * report["empty_mae_subject"], report

        # The composite on the page: the default green background, then white.
        drawn = _output_pixels(page)
        assert (np.abs(drawn - GREEN).max(axis=2) < 50).mean() > 0.3
        page.locator(".mk-background").select_option("white")
        matted = int(page.evaluate("document.body.dataset.framesMatted"))
        page.wait_for_function(
            "(n) => +document.body.dataset.framesMatted >= n", arg=matted + 2, timeout=WAIT_MS
        )
        drawn = _output_pixels(page)
        assert (drawn.min(axis=2) > 225).mean() > 0.3

        # A reload fetches nothing again: the model comes from the browser's cache.
        model_url = page.evaluate("window.mattingkitPage.config.model.url")
        page.reload()
        _wait_state(page, "ready")
        assert page.evaluate("document.body.dataset.modelSource") == "cache"
        assert web_page.fetched(model_url) == 1, web_page.requests
        assert outside == [], outside  # nothing beyond the page's own folder
        assert not [line for line in console if line.startswith("error")], console
    finally:
        record_property("web_page", json.dumps(report))
        context.close()


def _output_pixels(page) -> np.ndarray:
    data = page.evaluate(
        """() => {
            const c = document.querySelector('.mk-output');
            return {w: c.width, h: c.height,
                    data: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)};
        }"""
    )
    return np.array(data["data"], np.int32).reshape(data["h"], data["w"], 4)[..., :3]
