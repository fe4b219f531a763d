"""How many composites a second can the webcam path make? Fixed HD preset versus scaled "auto".

The kernel side of chapter 08, exactly as the widget runs it
(:class:`mattingkit.notebook.webcam.FrameHandler`): a JPEG frame as the browser sends it is decoded,
matted against the plate with :class:`mattingkit.Matter`, composited and encoded back to
JPEG. For each frame size, the presets are timed interleaved in one process (the order
rotates every round), so a busy neighbour slows all alike:

* ``hd``: the paper's fixed HD settings, 80,000 refined pixels whatever the frame (26 % of a
  640x480 frame, all of a 320x240 one): what ``Matter(preset="auto")`` did before;
* ``auto``: the paper's share of the frame (3.86 %, at least 4,096 pixels;
  :func:`mattingkit.core.paper.scaled_settings`): 11,856 pixels at 640x480.

The frames are the generated clip of the browser test (a subject over a photo plate). The
browser adds capture, transfer and drawing: ``tests/test_webcam_browser.py`` measures the
whole path at 640x480 and prints it. Usage (from the repository root)::

    python benchmarks/webcam_path.py                       # 320x240 and 640x480
    python benchmarks/webcam_path.py --size 480x640 --frames 30 --precision fp32
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time

import cv2
import numpy as np
import torch

from mattingkit.apps.inference import Matter
from mattingkit.data import synthetic
from mattingkit.notebook.webcam import Frame, FrameHandler
from mattingkit.speed.profile import describe_cpu

PRESETS = ("hd", "auto")


def parse_size(text: str) -> tuple[int, int]:
    """'480x640' (HxW) -> (480, 640)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must look like 480x640 (HxW), got {text!r}"
        ) from None
    if height < 16 or width < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16, got {text!r}")
    return height, width


def jpeg_frames(size: tuple[int, int], count: int) -> tuple[list[bytes], np.ndarray]:
    """``count`` JPEG frames (quality 80, as the browser sends) and the RGB plate."""
    height, width = size
    clip = synthetic.make_clip(3, (max(height // 2, 64), max(width // 2, 64)), 12, "person")

    def rgb(x: torch.Tensor) -> np.ndarray:
        image = (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)

    frames = []
    for i in range(count):
        bgr = cv2.cvtColor(rgb(clip.src[i % len(clip.src)]), cv2.COLOR_RGB2BGR)
        frames.append(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    return frames, rgb(clip.bgr)


def main(argv: list[str] | None = None) -> dict[tuple[int, int], dict[str, list[float]]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size", type=parse_size, nargs="+", default=[(240, 320), (480, 640)], help="HxW"
    )
    parser.add_argument("--frames", type=int, default=20, help="frames per preset and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto", help="auto, fp32 or bf16")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--weights", default=None, help="default: the shipped MobileNetV2")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = Matter(args.weights, device="cpu", precision=args.precision)
    cpu = describe_cpu()
    print(
        f"{datetime.date.today()}  {cpu['cpu']}  torch {torch.__version__}  threads "
        f"{cpu['threads']}  {loaded.precision}  {loaded.weights_name}  load average "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    print(f"  flags: {cpu['flags']}; ATen {cpu['aten']}, oneDNN {cpu['onednn']}")
    results: dict[tuple[int, int], dict[str, list[float]]] = {}
    for size in args.size:
        frames, plate = jpeg_frames(size, args.frames)
        handlers = {
            preset: FrameHandler(Matter(loaded.model, preset=preset, device="cpu"))
            for preset in PRESETS
        }
        for handler in handlers.values():
            handler.set_plate(plate)
            handler.handle(Frame(frames[0], 0))  # warm-up
        times: dict[str, list[float]] = {preset: [] for preset in PRESETS}
        for round_ in range(args.rounds):
            order = PRESETS[round_ % 2 :] + PRESETS[: round_ % 2]
            for preset in order:
                for i, jpeg in enumerate(frames):
                    start = time.perf_counter()
                    reply = handlers[preset].handle(Frame(jpeg, i))
                    times[preset].append((time.perf_counter() - start) * 1000)
                    assert reply.kind == "matte", reply.message
        results[size] = times
        height, width = size
        for preset in PRESETS:
            settings = handlers[preset].matter.settings_for(height, width)
            ms = statistics.median(times[preset])
            print(
                f"{width}x{height} {preset:<4} {settings['refine_sample_pixels']:>6,} refined px: "
                f"{ms:6.1f} ms per frame (median of {len(times[preset])}), "
                f"{1000 / ms:5.1f} composites/s"
            )
    print("\n| frame | preset `hd` (80,000 px) | preset `auto` (scaled) | speed-up |")
    print("|---|---|---|---|")
    for (height, width), times in results.items():
        hd, auto = statistics.median(times["hd"]), statistics.median(times["auto"])
        print(
            f"| {width}×{height} | {hd:.0f} ms ({1000 / hd:.1f}/s) | {auto:.0f} ms "
            f"({1000 / auto:.1f}/s) | ×{hd / auto:.2f} |"
        )
    return results


if __name__ == "__main__":
    main()
