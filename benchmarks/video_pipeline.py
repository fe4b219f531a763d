"""Does the video pipeline keep up with the model? End-to-end fps versus model-only fps.

A clip with an AAC track is generated (a synthetic subject moving over a photo plate,
upscaled to the chosen size), then two things are timed in one process, alternating
(model, pipeline, model, pipeline, ...) so that a busy neighbour slows both alike:

* **model only**: the clip's frames already decoded and in memory as tensors, each passed
  through :class:`mattingkit.Matter` one after the other (what ``profile.fps`` measures,
  but on real frames);
* **pipeline**: :func:`mattingkit.apps.video.matte_video` from the file to an H.264 composite
  with the audio copied: decoding, the model, compositing, conversion and encoding.

The ratio pipeline / model is the pipeline's efficiency: 1.0 means decoding and encoding
are completely hidden behind inference. Other processes can only slow a pass down, so the
best pass of each kind is reported beside the median. Usage (from the repository root)::

    python benchmarks/video_pipeline.py                       # 30 frames, 1280x720, CPU
    python benchmarks/video_pipeline.py --size 1080x1920 --device cuda
    python benchmarks/video_pipeline.py --threads 1 --encoder-preset ultrafast
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mattingkit.apps.inference import Matter, to_tensor
from mattingkit.apps.video import matte_video, read_video, write_video
from mattingkit.data import synthetic
from mattingkit.io import write_image


def parse_size(text: str) -> tuple[int, int]:
    """'720x1280' (HxW) -> (720, 1280)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must look like 720x1280 (HxW), got {text!r}"
        ) from None
    if height % 2 or width % 2:
        raise argparse.ArgumentTypeError(f"H.264 needs even sizes, got {text!r}")
    return height, width


def make_clip(folder: Path, size: tuple[int, int], frames: int) -> tuple[Path, Path]:
    """An H.264 clip with AAC audio and its plate, generated at a quarter size and upscaled
    (generating 60 full-size float frames would need gigabytes)."""
    height, width = size
    small = synthetic.make_clip(
        3, (max(height // 2, 64), max(width // 2, 64)), min(frames, 30), "person"
    )
    images = (small.src * 255).round().byte().permute(0, 2, 3, 1).numpy()
    order = [i % (2 * len(images)) for i in range(frames)]
    order = [i if i < len(images) else 2 * len(images) - 1 - i for i in order]  # ping-pong
    full = np.stack(
        [cv2.resize(images[i], (width, height), interpolation=cv2.INTER_LINEAR) for i in order]
    )
    source = write_video(folder / "clip.mp4", full, 30, audio_hz=440)
    plate = (small.bgr * 255).round().byte().permute(1, 2, 0).numpy()
    plate = cv2.resize(plate, (width, height), interpolation=cv2.INTER_LINEAR)
    write_image(folder / "plate.png", plate)
    return source, folder / "plate.png"


def model_only(matter: Matter, frames: torch.Tensor, plate: torch.Tensor) -> float:
    """Seconds to run the model over frames already in memory (one at a time)."""
    start = time.perf_counter()
    for frame in frames:
        matter(frame[None], plate)
    if matter.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=parse_size, default=(720, 1280), help="HxW (720x1280)")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="model/pipeline alternations")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--encoder-preset", default="veryfast")
    parser.add_argument("--output-types", nargs="+", default=["composite"])
    parser.add_argument("--weights", default=None, help="default: the shipped MobileNetV2")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    matter = Matter(args.weights, device=args.device)
    height, width = args.size
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source, plate_path = make_clip(folder, args.size, args.frames)
        frames = read_video(source)
        plate = to_tensor(plate_path)
        frames, plate = frames.to(matter.device), plate.to(matter.device)
        print(
            f"{datetime.date.today()} {platform.machine()} {platform.processor() or ''}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
            f"device {matter.device}, {matter.precision}, {matter.weights_name}"
        )
        print(
            f"clip: {args.frames} frames {width}x{height}, H.264 + AAC; encoder preset {args.encoder_preset}"
        )
        model_only(matter, frames[:2], plate)  # warm-up
        results: dict[str, list[float]] = {"model_fps": [], "pipeline_fps": []}
        for round_ in range(args.rounds):
            seconds = model_only(matter, frames, plate)
            results["model_fps"].append(len(frames) / seconds)
            report = matte_video(
                source,
                plate_path,
                folder / f"out{round_}.mp4",
                matter=matter,
                output_types=args.output_types,
                progress=False,
                encoder_preset=args.encoder_preset,
            )
            assert report.frames == len(frames) and report.audio_copied
            results["pipeline_fps"].append(report.fps)
            print(
                f"round {round_ + 1}: model only {results['model_fps'][-1]:.2f} fps, "
                f"pipeline {report.fps:.2f} fps (its model part alone: {report.model_fps:.2f} fps)"
            )
    # Other processes only ever slow a pass down, so the best pass of each kind is the
    # least disturbed estimate; the median is printed too.
    for name, pick in (("median", statistics.median), ("best", max)):
        model, pipeline = pick(results["model_fps"]), pick(results["pipeline_fps"])
        print(
            f"{name}: model only {model:.2f} fps, pipeline {pipeline:.2f} fps, "
            f"pipeline / model-only throughput: {pipeline / model:.3f}"
        )
    return results


if __name__ == "__main__":
    main()
