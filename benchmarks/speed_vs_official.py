"""How fast is mattingkit compared with the official implementation? Ratios, measured fairly.

For each backbone and resolution, up to five ways of running the same weights are timed:

* ``official``: ``BackgroundMattingV2.model.MattingRefine`` (PyPI ``backgroundmattingv2``);
* ``eager``: mattingkit's ``MattingRefine``, plain NCHW fp32, exactly the official
  computation (its outputs must equal the official ones);
* ``window``: channels-last and the refiner's window path, the refiner's stages run by its
  modules and BatchNorm as separate layers (how ``Matter`` ran before the fast stages);
* ``matter``: the model as :class:`mattingkit.Matter` runs it in fp32: channels-last,
  ``torch.inference_mode``, the window path, the refiner's fast stages (BatchNorm folded,
  upsampling composed into the convolutions) and, on a CPU, the base network's BatchNorm
  folded into its convolutions. Equal to the official output within float rounding (the
  mean and max alpha differences of a real ``Matter`` call are shown);
* ``fast``: ``Matter(precision="auto")`` where that is not fp32: a bfloat16 copy of the
  model on a CPU with native bfloat16 (AVX-512 BF16 / AMX), fp16 autocast on CUDA. Its mean
  alpha difference from the official fp32 output is shown and must stay below 2e-3.

All are built with the paper's speed-test settings (sampling mode,
``refine_prevent_oversampling=False``: exactly ``sample_pixels / 16`` patches), get the same
input tensors already on the device (fp32, batch 1, as in Table 3), and are timed
**interleaved in one process** (the order rotates every round), so a busy neighbour slows all
alike; the speed-ups are ratios of medians, meaningful on a shared, noisy machine even when
the absolute times are not. The refiner is also timed on its own (same inputs, captured
from a real pass) to split each pass into base network and refiner. On CUDA the passes are
timed with CUDA events after a synchronisation.

The header names the CPU, its SIMD flags and what torch really uses (ATen's dispatch level,
oneDNN's instruction set, native bfloat16 or not). ``--isa avx2`` re-runs the script in a
new process with oneDNN, ATen and MKL limited to AVX2 (the environment variables must be set
before torch loads): the closest this machine gets to an AVX2-only laptop CPU; bfloat16 is
then not native, so ``fast`` is not timed. On a busy machine ``--threads 1 --clock cpu``
times each pass by the CPU time of the one thread that runs it, which other processes do
not inflate (with two threads, a thread preempted by a neighbour stalls the other at every
parallel region). The run ends with a Markdown table to paste.

Usage (from the repository root)::

    python benchmarks/speed_vs_official.py                          # MobileNetV2 + ResNet-50, HD
    python benchmarks/speed_vs_official.py --isa avx2               # as on an AVX2-only CPU
    python benchmarks/speed_vs_official.py --threads 1 --clock cpu  # on a busy machine
    python benchmarks/speed_vs_official.py --backbone resnet101 --resolution HD 4K
    python benchmarks/speed_vs_official.py --backbone resnet50 --size 540x960 --repeats 20
    python benchmarks/speed_vs_official.py --device cuda --repeats 100   # compare with Table 3

Needs the reference implementation: ``pip install backgroundmattingv2==1.0``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import torch

from mattingkit.apps.inference import Matter
from mattingkit.core.model import MattingRefine
from mattingkit.runtime import pick_device
from mattingkit.speed.profile import (
    AVX2_ENV,
    PAPER_SETTINGS,
    PAPER_TABLE3,
    FpsResult,
    describe_cpu,
    time_forward,
)

MODELS = ("official", "eager", "window", "matter", "fast")


class Comparison(NamedTuple):
    """One backbone at one resolution: the ways timed, whole pass and refiner alone."""

    backbone: str
    resolution: str
    size: tuple[int, int]
    sample_pixels: int
    results: dict[str, FpsResult]  # whole forward pass, per model
    refiner_ms: dict[str, float]  # median time of the refiner alone, per model
    eager_difference: float  # max |eager - official| over pha and fgr
    matter_alpha_difference: float  # mean |matter alpha - official alpha|
    fast_alpha_difference: float | None = None  # the same for the "fast" Matter, if timed
    matter_alpha_max_difference: float = 0.0  # max |matter alpha - official alpha|

    def speedup(self, name: str) -> float:
        """How many times faster than the official code (ratio of medians)."""
        return self.results["official"].median_ms / self.results[name].median_ms


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


class RefinerTimer:
    """Captures the refiner's inputs during a real pass, then times the refiner on them."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.refiner = model.refiner
        self.inputs: tuple[torch.Tensor, ...] = ()
        self._handle = self.refiner.register_forward_pre_hook(self._keep)

    def _keep(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self.inputs = inputs
        self._handle.remove()

    def __call__(self, clock: Callable[[], float] = time.perf_counter) -> float:
        src, bgr, *rest = self.inputs
        return time_forward(lambda s, b: self.refiner(s, b, *rest), src, bgr, clock)


def frame_settings(
    resolution: str, size: tuple[int, int] | None, sample_pixels: int | None
) -> tuple[tuple[int, int], float, int]:
    """(H, W), backbone scale and refined pixels: the resolution's, unless overridden."""
    paper_size, scale, pixels = PAPER_SETTINGS[resolution]
    return size or paper_size, scale, sample_pixels or pixels


def compare(
    backbone: str,
    resolution: str,
    size: tuple[int, int] | None,
    sample_pixels: int | None,
    device: torch.device,
    warmup: int,
    repeats: int,
    clock: Callable[[], float] = time.perf_counter,
) -> Comparison:
    (height, width), scale, pixels = frame_settings(resolution, size, sample_pixels)
    official, eager = build_pair(backbone, scale, pixels)
    official, eager = official.to(device), eager.to(device)

    def as_matter(precision: str, **options: bool) -> Matter:
        return Matter(
            copy.deepcopy(eager),
            device=device,
            precision=precision,
            backbone_scale=scale,
            refine_mode="sampling",
            refine_sample_pixels=pixels,
            refine_prevent_oversampling=False,
            **options,
        )

    matter, fast = as_matter("fp32"), as_matter("auto")
    window = as_matter("fp32", fold_batchnorm=False)
    window.model.refiner.fast_stages = False
    models = [name for name in MODELS if name != "fast" or fast.precision != "fp32"]
    generator = torch.Generator().manual_seed(1)
    src = torch.rand(1, 3, height, width, generator=generator).to(device)
    bgr = torch.rand(1, 3, height, width, generator=generator).to(device)

    # Same computation first; the hooks keep each refiner's inputs for the split.
    built = {
        "official": official,
        "eager": eager,
        "window": window.model,
        "matter": matter.model,
        "fast": fast.model,
    }
    timers = {name: RefinerTimer(built[name]) for name in models}
    with torch.inference_mode():
        pha_official, fgr_official = official(src, bgr)[:2]
        pha_eager, fgr_eager = eager(src, bgr)[:2]
    window(src, bgr)  # (fills its refiner timer)
    matte = matter(src, bgr)
    eager_difference = max(
        (pha_official - pha_eager).abs().max().item(), (fgr_official - fgr_eager).abs().max().item()
    )
    alpha_error = (matte.pha.to(device) - pha_official).abs()
    alpha_difference, alpha_max = alpha_error.mean().item(), alpha_error.max().item()
    fast_difference = None
    if "fast" in models:
        fast_difference = (fast(src, bgr).pha.to(device) - pha_official).abs().mean().item()
        if fast_difference > 2e-3:
            raise SystemExit(f"{fast.precision} alpha differs by {fast_difference:.2e} (mean)")
    if eager_difference > 1e-4 or alpha_difference > 1e-4:
        raise SystemExit(
            f"outputs differ (eager {eager_difference:.2e}, matter alpha {alpha_difference:.2e}): "
            "not the same computation, not timing"
        )

    # The Matters' models, as the Matters configured them (channels-last, their refine
    # settings), timed like the others on inputs already in their layout (the paper times no
    # conversion).
    src_cl, bgr_cl = (x.contiguous(memory_format=torch.channels_last) for x in (src, bgr))
    passes = {
        "official": lambda: time_forward(official, src, bgr, clock),
        "eager": lambda: time_forward(eager, src, bgr, clock),
        "window": lambda: time_forward(window.model, src_cl, bgr_cl, clock),
        "matter": lambda: time_forward(matter.model, src_cl, bgr_cl, clock),
    }
    if "fast" in models:
        src_fast, bgr_fast = fast._to_device(src), fast._to_device(bgr)

        def fast_pass() -> float:
            with fast._autocast():
                return time_forward(fast.model, src_fast, bgr_fast, clock)

        fast_timer = timers["fast"]

        def fast_refiner(clock: Callable[[], float] = time.perf_counter) -> float:
            with fast._autocast():
                return fast_timer(clock)

        passes["fast"] = fast_pass
        timers["fast"] = fast_refiner
    for _ in range(warmup):
        for name in models:
            passes[name]()
            timers[name](clock)
    times: dict[str, list[float]] = {name: [] for name in models}
    refiner_times: dict[str, list[float]] = {name: [] for name in models}
    for i in range(repeats):
        k = i % len(models)
        order = models[k:] + models[:k]  # rotate: nobody always runs first
        for name in order:
            times[name].append(passes[name]())
            refiner_times[name].append(timers[name](clock))
    precisions = {name: "float32" for name in models}
    precisions["fast"] = fast.precision
    results = {
        name: FpsResult(str(device), precisions[name], "pytorch", (height, width), 1, tuple(t))
        for name, t in times.items()
    }
    return Comparison(
        backbone,
        resolution,
        (height, width),
        pixels,
        results,
        {name: statistics.median(t) for name, t in refiner_times.items()},
        eager_difference,
        alpha_difference,
        fast_difference,
        alpha_max,
    )


def report(comparison: Comparison) -> None:
    """Print one comparison: each model's fps, base/refiner split and speed-up."""
    c = comparison
    height, width = c.size
    paper = PAPER_TABLE3.get((c.backbone, c.resolution))
    paper_note = (
        f"; paper (RTX 2080 Ti): {paper[0]} fps"
        if paper and c.size == PAPER_SETTINGS[c.resolution][0]
        else ""
    )
    print(
        f"{c.backbone} {width}x{height} ({c.resolution} settings, {c.sample_pixels:,} refined pixels)"
        f"; eager equals official to {c.eager_difference:.1e}, matter alpha to "
        f"{c.matter_alpha_difference:.1e} (mean), {c.matter_alpha_max_difference:.1e} (max)"
        f"{paper_note}"
    )
    if c.fast_alpha_difference is not None:
        print(
            f"  fast = Matter(precision='auto') runs {c.results['fast'].precision}; its alpha "
            f"differs from the official fp32 alpha by {c.fast_alpha_difference:.1e} (mean)"
        )
    for name, r in c.results.items():
        refiner = c.refiner_ms[name]
        print(
            f"  {name:<9}{r.fps:8.2f} fps {r.median_ms:8.1f} ms (IQR {r.iqr_ms:6.1f})  "
            f"base {r.median_ms - refiner:7.1f} ms + refiner {refiner:7.1f} ms  "
            f"x{c.speedup(name):.2f} vs official"
        )


def markdown_table(comparisons: list[Comparison], cpu: dict[str, str] | None) -> str:
    """The run as a Markdown table, ready to paste into the README."""
    names = [n for n in MODELS if any(n in c.results for c in comparisons)]
    header = "| backbone | input | " + " | ".join(names) + " | refiner: official → matter |"
    lines = [header, "|" + "---|" * (len(names) + 3)]
    for c in comparisons:
        cells = []
        for name in names:
            r = c.results.get(name)
            if r is None:
                cells.append("–")
            elif name == "official":
                cells.append(f"{r.median_ms:.0f} ms")
            else:
                bold = "**" if name in ("matter", "fast") else ""
                cells.append(f"{r.median_ms:.0f} ms ({bold}×{c.speedup(name):.2f}{bold})")
        refiner = f"{c.refiner_ms['official']:.0f} → {c.refiner_ms['matter']:.0f} ms"
        height, width = c.size
        lines.append(
            f"| {c.backbone} | {width}×{height} | " + " | ".join(cells) + f" | {refiner} |"
        )
    if cpu is not None:
        lines.append("")
        lines.append(
            f"{cpu['cpu']}; flags {cpu['flags']}; ATen {cpu['aten']}, oneDNN {cpu['onednn']}, "
            f"native bf16 {cpu['native_bf16']}; limits {cpu['limits']}; {cpu['threads']} threads, "
            f"torch {cpu['torch']}."
        )
    return "\n".join(lines)


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def rerun_with_avx2(argv: list[str]) -> None:
    """Run this script again in a new process with :data:`AVX2_ENV` set (torch reads it at load)."""
    env = {**os.environ, **AVX2_ENV}
    command = [sys.executable, os.path.abspath(__file__), *argv]
    raise SystemExit(subprocess.call(command, env=env))


def main(argv: list[str] | None = None) -> list[Comparison]:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backbone",
        nargs="+",
        default=["mobilenetv2", "resnet50"],
        choices=["mobilenetv2", "resnet50", "resnet101"],
    )
    parser.add_argument(
        "--resolution", nargs="+", default=["HD"], choices=sorted(PAPER_SETTINGS), help="HD, 4K"
    )
    parser.add_argument(
        "--size", type=parse_size, help="override the input size, HxW (keeps the scale)"
    )
    parser.add_argument(
        "--sample-pixels", type=int, help="override the refined pixels (default: the resolution's)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda (default: best available)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10, help="timed passes per model")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: this thread's CPU time (needs --threads 1), not inflated by a busy machine",
    )
    parser.add_argument(
        "--isa",
        choices=["native", "avx2"],
        default="native",
        help="avx2: re-run with oneDNN, ATen and MKL limited to AVX2 (an AVX2-only CPU)",
    )
    args = parser.parse_args(argv)

    for resolution in args.resolution:
        (height, width), _, pixels = frame_settings(resolution, args.size, args.sample_pixels)
        if height % 4 or width % 4:
            parser.error(f"the official model needs H and W divisible by 4, got {height}x{width}")
        if (height // 4) * (width // 4) < pixels // 16:
            parser.error(
                f"{height}x{width} has fewer 4x4 patches than the {pixels // 16:,} to refine"
            )
    if args.isa == "avx2" and any(os.environ.get(k) != v for k, v in AVX2_ENV.items()):
        rerun_with_avx2(argv)
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu counts one thread's CPU time: use it with --threads 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    device = torch.device(args.device) if args.device else pick_device(verbose=False)
    if device.type not in ("cpu", "cuda"):
        parser.error(f"time on cpu or cuda, got {device}")
    cpu = describe_cpu() if device.type == "cpu" else None
    if args.isa == "avx2" and cpu is not None and cpu["aten"] != "AVX2":
        raise SystemExit(f"the AVX2 limit did not take effect: ATen runs {cpu['aten']}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"{datetime.date.today()}  {name}  torch {torch.__version__}  threads "
        f"{torch.get_num_threads()}  fp32 inputs, batch 1, median of {args.repeats} "
        f"({'CPU time of the thread' if args.clock == 'cpu' else 'wall clock'})  "
        f"load average {load_average()}"
    )
    if cpu is not None:
        print(f"  CPU: {cpu['cpu']}; flags: {cpu['flags']}")
        print(
            f"  runs on: ATen {cpu['aten']}, oneDNN {cpu['onednn']}, native bf16 "
            f"{cpu['native_bf16']} (Matter precision='auto' on this CPU: "
            f"{'bf16' if cpu['native_bf16'] == 'yes' else 'fp32'}); limits: {cpu['limits']}"
        )
    comparisons = []
    for resolution in args.resolution:
        for backbone in args.backbone:
            comparison = compare(
                backbone,
                resolution,
                args.size,
                args.sample_pixels,
                device,
                args.warmup,
                args.repeats,
                clock,
            )
            report(comparison)
            comparisons.append(comparison)
    print(f"load average at the end: {load_average()}\n")
    print(markdown_table(comparisons, cpu))
    return comparisons


if __name__ == "__main__":
    main()
