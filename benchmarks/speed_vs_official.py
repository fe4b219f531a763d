"""Is mattingkit's MattingRefine as fast as the official one? A ratio, measured fairly.

Both models are built with the paper's speed-test settings (sampling mode,
``refine_prevent_oversampling=False``), mattingkit's model receives the official model's
state_dict (``strict=True``), both get the same input tensors, already on the device, and
their outputs are checked to agree before anything is timed. Timing alternates between
the two models in one process (A B B A ...), so a busy neighbour slows both alike; what
is reported is the ratio of medians, which is meaningful on a shared, noisy machine even
when the absolute times are not.

Usage (from the repository root)::

    python benchmarks/speed_vs_official.py --backbone mobilenetv2 --resolution HD
    python benchmarks/speed_vs_official.py --backbone resnet50 --size 540x960 --repeats 20
    python benchmarks/speed_vs_official.py --device cuda --precision float16

Needs the reference implementation: ``pip install backgroundmattingv2==1.0``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics

import torch

from mattingkit.model import MattingRefine
from mattingkit.profile import PAPER_SETTINGS, FpsResult, time_forward
from mattingkit.runtime import pick_device


def parse_size(text: str) -> tuple[int, int]:
    """'540x960' (HxW) -> (540, 960)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"size must look like 540x960 (HxW), got {text!r}"
        ) from error
    return height, width


def build_pair(backbone: str, scale: float, pixels: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The official model (random weights) and mattingkit's model holding the same weights."""
    from BackgroundMattingV2.model import MattingRefine as OfficialMattingRefine

    settings = dict(
        backbone_scale=scale,
        refine_mode="sampling",
        refine_sample_pixels=pixels,
        refine_prevent_oversampling=False,
    )
    torch.manual_seed(0)
    official = OfficialMattingRefine(backbone, **settings).eval()
    ours = MattingRefine(backbone, **settings).eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    return official, ours


def main(argv: list[str] | None = None) -> dict[str, FpsResult]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backbone", default="mobilenetv2", choices=["mobilenetv2", "resnet50", "resnet101"]
    )
    parser.add_argument("--resolution", default="HD", choices=sorted(PAPER_SETTINGS))
    parser.add_argument(
        "--size", type=parse_size, help="override the input size, HxW (keeps the scale)"
    )
    parser.add_argument(
        "--sample-pixels", type=int, help="override the refined pixels (default: the resolution's)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    parser.add_argument("--precision", default="float32", choices=["float32", "float16"])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10, help="timed passes per model")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else pick_device(verbose=False)
    if args.precision == "float16" and device.type != "cuda":
        parser.error("float16 needs --device cuda")
    dtype = torch.float16 if args.precision == "float16" else torch.float32
    size, scale, pixels = PAPER_SETTINGS[args.resolution]
    height, width = args.size or size
    pixels = args.sample_pixels or pixels
    if height % 4 or width % 4:
        parser.error(f"the official model needs H and W divisible by 4, got {height}x{width}")
    if (height // 4) * (width // 4) < pixels // 16:
        parser.error(f"{height}x{width} has fewer 4x4 patches than the {pixels // 16:,} to refine")

    official, ours = build_pair(args.backbone, scale, pixels)
    official, ours = (m.to(device=device, dtype=dtype) for m in (official, ours))
    generator = torch.Generator().manual_seed(1)
    src = torch.rand(1, 3, height, width, generator=generator).to(device=device, dtype=dtype)
    bgr = torch.rand(1, 3, height, width, generator=generator).to(device=device, dtype=dtype)

    with torch.inference_mode():
        pha_official, fgr_official = official(src, bgr)[:2]
        pha_ours, fgr_ours = ours(src, bgr)[:2]
    difference = max(
        (pha_official - pha_ours).abs().max().item(), (fgr_official - fgr_ours).abs().max().item()
    )
    tolerance = 1e-2 if dtype == torch.float16 else 1e-4
    if difference > tolerance:
        raise SystemExit(
            f"outputs differ by {difference:.2e}: not the same computation, not timing"
        )

    for _ in range(args.warmup):
        time_forward(official, src, bgr)
        time_forward(ours, src, bgr)
    times: dict[str, list[float]] = {"official": [], "mattingkit": []}
    for i in range(args.repeats):
        order = ("official", "mattingkit") if i % 2 == 0 else ("mattingkit", "official")
        for name in order:
            model = official if name == "official" else ours
            times[name].append(time_forward(model, src, bgr))

    results = {
        name: FpsResult(str(device), args.precision, "pytorch", (height, width), 1, tuple(t))
        for name, t in times.items()
    }
    ratios = [a / b for a, b in zip(times["mattingkit"], times["official"])]
    print(
        f"{datetime.date.today()}  {platform.processor() or platform.machine()}  torch {torch.__version__}  "
        f"threads {torch.get_num_threads()}"
    )
    print(
        f"{args.backbone} {width}x{height} scale {scale:g} sample_pixels {pixels:,} on {device} "
        f"({args.precision}); outputs agree to {difference:.1e}"
    )
    for name, result in results.items():
        print(f"  {name:<10} {result}")
    print(
        f"  time ratio mattingkit / official: {results['mattingkit'].median_ms / results['official'].median_ms:.3f} "
        f"(median of per-round ratios {statistics.median(ratios):.3f}; < 1 means mattingkit is faster)"
    )
    return results


if __name__ == "__main__":
    main()
