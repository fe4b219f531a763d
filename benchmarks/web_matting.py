"""Composites per second in the browser (onnxruntime-web) and in the kernel, in one run.

Chapter 08's two paths, at 320×240 and 640×480, on the same machine in the same run:

* **browser**: the page ``mattingkit export --web`` writes, served on loopback to headless
  Chromium (Debian's ``/usr/bin/chromium`` through Playwright) with the fake camera playing
  the browser tests' clip; the page chooses its backend (WebAssembly here: headless Chromium
  has no WebGPU adapter; one thread, the page is not cross-origin isolated) and reports the
  model's time per frame and the composites it draws per second, camera to canvas;
* **kernel**: the kernel side of the widget (:class:`mattingkit.notebook.webcam.FrameHandler`:
  JPEG in, ``Matter``, composite, JPEG out) on frames of the same clip, timed in this
  process. (The page runs the model on its main thread: one WebAssembly thread, no worker.)
  It leaves out what the widget adds around it (capture and JPEG in the browser, two
  widget messages, drawing): ``tests/test_webcam_browser.py`` measures that end to end.

Reported, never asserted. Usage (from the repository root, after ``npm ci`` in
``mattingkit/notebook/static/web``)::

    python benchmarks/web_matting.py                # both sizes, both paths
    python benchmarks/web_matting.py --frames 40 --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser_helpers import CHROMIUM, CHROMIUM_FLAGS, CameraClip, StaticServer  # noqa: E402

from mattingkit.apps.inference import Matter  # noqa: E402
from mattingkit.apps.web import export_web  # noqa: E402
from mattingkit.notebook.webcam import Frame, FrameHandler  # noqa: E402
from mattingkit.speed.profile import describe_cpu  # noqa: E402

SIZES = ((240, 320), (480, 640))


def browser_path(folder: Path, clip: CameraClip, frames: int) -> dict[tuple[int, int], dict]:
    """Serve the exported page to Chromium; matte ``frames`` camera frames at each size."""
    from playwright.sync_api import sync_playwright

    server = StaticServer(folder)
    results = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={clip.path}"],
            )
            context = browser.new_context()
            context.grant_permissions(["camera"], origin=server.url)
            page = context.new_page()
            page.goto(server.url + "/index.html")
            page.wait_for_function("document.body.dataset.state === 'ready'", timeout=300_000)
            backend = page.evaluate("document.body.dataset.backend")
            page.locator(".mk-start").click()
            page.locator(".mk-plate").click()  # any plate: the speed does not depend on it
            page.wait_for_function("document.body.dataset.plate === 'yes'", timeout=300_000)
            for height, width in SIZES:
                page.locator(".mk-size").select_option(f"{height}x{width}")
                results[(height, width)] = _count(page, frames, f"{width}x{height}")
                results[(height, width)]["backend"] = backend
            browser.close()
    finally:
        server.stop()
    return results


def _count(page, frames: int, size: str) -> dict:
    """Composites per second over ``frames`` composites at ``size`` (after five to settle)."""
    page.wait_for_function(
        "(s) => document.body.dataset.outputSize === s", arg=size, timeout=300_000
    )
    start = _state(page)
    page.wait_for_function(
        "(n) => +document.body.dataset.framesMatted >= n",
        arg=start["matted"] + 5,
        timeout=300_000,
    )
    first = _state(page)
    page.wait_for_function(
        "(n) => +document.body.dataset.framesMatted >= n",
        arg=first["matted"] + frames,
        timeout=600_000,
    )
    last = _state(page)
    return {
        "composites_per_s": 1000
        * (last["matted"] - first["matted"])
        / (last["now"] - first["now"]),
        "model_ms": (last["model_ms"] - first["model_ms"]) / (last["matted"] - first["matted"]),
    }


def _state(page) -> dict:
    return page.evaluate(
        "() => ({matted: +document.body.dataset.framesMatted || 0, "
        "seen: +document.body.dataset.framesSeen || 0, "
        "model_ms: +document.body.dataset.modelMsTotal || 0, now: performance.now()})"
    )


def kernel_path(clip: CameraClip, frames: int) -> dict[tuple[int, int], dict]:
    """The widget's kernel side on the clip's frames (JPEG at quality 80, as sent)."""
    matter = Matter(device="cpu")
    results = {}
    for height, width in SIZES:
        handler = FrameHandler(Matter(matter.model, device="cpu"))

        def resize(image, size=(width, height)):
            return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

        handler.set_plate(resize(clip.plate))
        subject = clip.frames[-len(clip.frames) // 3 :]
        jpegs = [
            cv2.imencode(".jpg", resize(f)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
            for f in subject
        ]
        handler.handle(Frame(jpegs[0], 0))  # warm-up
        times = []
        for i in range(frames):
            start = time.perf_counter()
            reply = handler.handle(Frame(jpegs[i % len(jpegs)], i))
            times.append((time.perf_counter() - start) * 1000)
            assert reply.kind == "matte", reply.message
        ms = statistics.median(times)
        results[(height, width)] = {"composites_per_s": 1000 / ms, "model_ms": ms}
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=20, help="composites timed per size")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not CHROMIUM.is_file():
        raise SystemExit(f"no Chromium at {CHROMIUM} (sudo apt-get install chromium)")
    cpu = describe_cpu()
    print(
        f"{datetime.date.today()}  {cpu['cpu']}  torch {torch.__version__}  threads "
        f"{cpu['threads']}  load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        clip = CameraClip(Path(scratch))
        folder = export_web(Path(scratch) / "page")
        browser = browser_path(folder, clip, args.frames)
    kernel = kernel_path(clip, args.frames)
    print("\n| frame | browser (onnxruntime-web) | kernel side (PyTorch) |")
    print("|---|---|---|")
    for height, width in SIZES:
        b, k = browser[(height, width)], kernel[(height, width)]
        print(
            f"| {width}×{height} | {b['composites_per_s']:.1f}/s ({b['backend']}, model "
            f"{b['model_ms']:.0f} ms) | {k['composites_per_s']:.1f}/s (model and JPEG "
            f"{k['model_ms']:.0f} ms) |"
        )
    print("\nThe camera runs at 15 frames a second: a path cannot draw more composites than that.")
    return {"browser": browser, "kernel": kernel}


if __name__ == "__main__":
    main()
