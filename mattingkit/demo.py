"""The offline demo: matte one frame with its clean plate and write the results.

``python -m mattingkit.demo`` mattes the bundled sample (a synthetic portrait with exact
ground truth) and prints how close the prediction is; ``--src``/``--bgr`` matte your own
photo pair instead. Weights: the official release when it can be downloaded, otherwise
mattingkit's own shipped MobileNetV2 (the download code says which one it used).
Nothing existing is overwritten unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

from mattingkit import matting, metrics
from mattingkit.io import read_image, write_image
from mattingkit.pretrained import load_pretrained, recommended_settings
from mattingkit.runtime import pick_device
from mattingkit.synthetic import load_sample

GREEN = (120 / 255, 255 / 255, 155 / 255)  # the official demos' green screen
OUTPUTS = ("pha.png", "fgr.png", "composite_green.png", "composite_blurred_plate.png", "rgba.png")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mattingkit.demo", description=__doc__)
    parser.add_argument(
        "--src", type=Path, help="a frame with the subject (default: bundled sample)"
    )
    parser.add_argument("--bgr", type=Path, help="the clean plate: same view, no subject")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument(
        "--weights",
        default="mobilenetv2",
        help="registry name (resnet50, resnet101, mobilenetv2, mattingkit) or a local file",
    )
    parser.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    if (args.src is None) != (args.bgr is None):
        parser.error("give both --src and --bgr (the frame and its clean plate), or neither")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    existing = [name for name in OUTPUTS if (args.out / name).exists()]
    if existing and not args.overwrite:
        print(
            f"{args.out} already holds {', '.join(existing)}; pass --overwrite to replace "
            "them or --out to choose another folder",
            file=sys.stderr,
        )
        return 1
    device = torch.device(args.device) if args.device else pick_device()
    truth = None
    if args.src is None:
        truth = load_sample("portrait")
        src, bgr = truth.src, truth.bgr
        print("Input: the bundled sample 'portrait' (synthetic, with exact ground truth)")
    else:
        src, bgr = read_image(args.src), read_image(args.bgr)
        print(f"Input: {args.src} with plate {args.bgr}")
    height, width = src.shape[-2:]

    with warnings.catch_warnings(record=True) as caught:  # the fallback notice, as one line
        warnings.simplefilter("always")
        model = load_pretrained(args.weights, device=device, **recommended_settings(height, width))
    for warning in caught:
        print(f"⚠ {warning.message}")
    src_b, bgr_b = src.unsqueeze(0).to(device), bgr.unsqueeze(0).to(device)
    with torch.inference_mode():
        model(src_b, bgr_b)  # warm-up, so the timing below is the model, not the first call
        start = time.perf_counter()
        out = model(src_b, bgr_b)
        seconds = time.perf_counter() - start
    pha, fgr = out[0][0].cpu(), out[1][0].cpu()
    print(f"Matted {width}x{height} on {device} in {seconds * 1000:.0f} ms")

    images = (
        pha,
        fgr,
        matting.composite_on_color(fgr, pha, GREEN),
        matting.composite_on_blurred_plate(fgr, pha, bgr),
        torch.cat([fgr * (pha > 0), pha]),  # RGBA cut-out, as the official com.png
    )
    results = dict(zip(OUTPUTS, images))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, image in results.items():
        write_image(args.out / name, image, overwrite=args.overwrite)
    print(f"Wrote {', '.join(results)} to {args.out}/")

    if truth is not None:
        scores = metrics.to_paper_units(
            metrics.evaluate(pha, truth.pha, pred_fgr=fgr, true_fgr=truth.fgr)
        )
        print(
            "Against the ground truth (paper units, trimap region): "
            f"SAD {scores['sad']:.2f}, MSE(x1e3) {scores['mse']:.2f}, Grad {scores['grad']:.0f}, "
            f"Conn {scores['conn']:.0f}, FG MSE(x1e3) {scores['fg_mse']:.2f}"
        )
    print("Next: jupyter lab notebooks/01_matting_equation.ipynb")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
