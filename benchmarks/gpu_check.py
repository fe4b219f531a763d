"""Every CUDA path of mattingkit, checked and timed in one short run, then Table 3 beside the paper's.

Written to run whenever a GPU is at hand (a few minutes on a recent GPU), because the
project's own machines have none. Each check runs on its own, prints ``ok`` or ``FAILED``
with what it measured, and a failure does not stop the others:

1. ``fp16 autocast``: ``Matter(device="cuda")`` picks fp16 autocast; alpha close to fp32.
2. ``pinned memory``: CPU inputs go through pinned memory with non-blocking copies and come
   back equal to inputs already on the GPU.
3. ``CUDA events``: :func:`mattingkit.speed.profile.time_forward` times with CUDA events after a
   synchronisation; its figure is checked against a synchronised wall clock.
4. ``channels-last``: the Matter's model runs channels-last, takes the refiner's window path
   and fast stages, and equals the plain NCHW model within float rounding.
5. ``TorchScript fp16``: :func:`mattingkit.apps.export.export_torchscript` in fp16, loaded back by
   ``Matter``, close to fp32.
6. ``torch.compile``: ``Matter(compile=True)``: compiles (the slow first call is timed) and
   equals the eager Matter.
7. ``video pipeline``: :func:`mattingkit.apps.video.matte_video` on a generated clip with audio,
   every frame written, end-to-end fps beside model-only fps.
8. ``Table 3``: the three backbones at HD and 4K with the paper's speed-test settings, fp32
   eager as in the paper and ``Matter`` (fp16 autocast, channels-last), fps and GMac beside
   the paper's RTX 2080 Ti figures.

Usage (from the repository root)::

    python benchmarks/gpu_check.py                   # on a machine with CUDA
    python benchmarks/gpu_check.py --skip-compile    # without the torch.compile check
    python benchmarks/gpu_check.py --dry-run-cpu     # the same code on the CPU, tiny sizes

Without CUDA it prints "no CUDA device: nothing to check" and exits 0. ``--dry-run-cpu``
runs every check's code on the CPU at tiny sizes, with the CPU equivalent where a CUDA call
has one (bf16 or fp32 for fp16 autocast, ``perf_counter`` for CUDA events, an fp32
TorchScript file; pinned memory has none and is skipped; ``torch.compile`` only with
``--with-compile``), so that most of the logic is exercised without a GPU. Exit status 1
if a check failed.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

NO_CUDA = "no CUDA device: nothing to check"


@dataclass
class Context:
    """Where and how big: CUDA at the paper's sizes, or the CPU at tiny ones (dry run)."""

    device: torch.device
    dry_run: bool
    repeats: int
    warmup: int
    compile: bool
    folder: Path
    results: dict[str, str] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def check_size(self) -> tuple[int, int]:
        """Frame size of the path checks: HD-like on a GPU, tiny in a dry run."""
        return (64, 96) if self.dry_run else (1080, 1920)

    def table3_size(self, resolution: str) -> tuple[int, int]:
        from mattingkit.core.paper import RESOLUTIONS

        if self.dry_run:
            return (64, 96) if resolution == "hd" else (128, 192)
        return RESOLUTIONS[resolution].size


class Skipped(Exception):
    """A check with no equivalent on this device."""


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_pair(ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped portrait (frame, plate), resized to the check size, on the CPU."""
    import torch.nn.functional as F

    from mattingkit.data.synthetic import load_sample

    sample = load_sample("portrait")
    size = ctx.check_size

    def resize(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x[None], size, mode="bilinear", align_corners=False).clamp(0, 1)

    return resize(sample.src), resize(sample.bgr)


def matter(ctx: Context, **kwargs):
    from mattingkit import Matter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the offline fallback notice
        return Matter(device=ctx.device, **kwargs)


# --------------------------------------------------------------------------------------
# The checks: each returns a one-line summary, raises on failure, Skipped where pointless.
# --------------------------------------------------------------------------------------
def check_autocast(ctx: Context) -> str:
    src, bgr = sample_pair(ctx)
    fast = matter(ctx)  # precision "auto"
    exact = matter(ctx, precision="fp32")
    from mattingkit.apps.inference import cpu_has_native_bf16

    expected = "fp16" if ctx.cuda else ("bf16" if cpu_has_native_bf16() else "fp32")
    assert fast.precision == expected, f"auto chose {fast.precision}, expected {expected}"
    a, b = fast(src, bgr), exact(src, bgr)
    assert a.pha.device.type == ctx.device.type
    difference = (a.pha - b.pha).abs().mean().item()
    assert difference < 2e-3, f"{fast.precision} alpha differs from fp32 by {difference:.2e}"
    return f"precision auto = {fast.precision}; mean |alpha - fp32 alpha| {difference:.1e}"


def check_pinned_memory(ctx: Context) -> str:
    if not ctx.cuda:
        raise Skipped("pinned memory needs CUDA")
    src, bgr = sample_pair(ctx)
    m = matter(ctx)
    pinned = m._to_device(src)  # the Matter's own copy: pin_memory, non_blocking
    synchronize(ctx.device)
    assert pinned.device.type == "cuda" and src.pin_memory().is_pinned()
    from_cpu = m(src, bgr)
    on_device = m(src.to(ctx.device), bgr.to(ctx.device))
    difference = (from_cpu.pha - on_device.pha).abs().max().item()
    assert difference == 0.0, f"CPU inputs differ from GPU inputs by {difference:.2e}"
    start = time.perf_counter()
    for _ in range(10):
        m._to_device(src)
    synchronize(ctx.device)
    ms = (time.perf_counter() - start) * 100
    return (
        f"CPU and GPU inputs give equal alpha; one {src.shape[-1]}x{src.shape[-2]} copy {ms:.2f} ms"
    )


def check_events(ctx: Context) -> str:
    from mattingkit.speed.profile import time_forward

    src, bgr = (x.to(ctx.device) for x in sample_pair(ctx))
    m = matter(ctx, precision="fp32")
    time_forward(m.model, src, bgr)  # warm-up
    timed = [time_forward(m.model, src, bgr) for _ in range(max(ctx.repeats, 3))]
    wall = []
    with torch.inference_mode():
        for _ in range(max(ctx.repeats, 3)):
            synchronize(ctx.device)
            start = time.perf_counter()
            m.model(src, bgr)
            synchronize(ctx.device)
            wall.append((time.perf_counter() - start) * 1000)
    event, clock = statistics.median(timed), statistics.median(wall)
    assert event > 0 and event <= clock * 1.5 + 1, f"events {event:.2f} ms vs wall {clock:.2f} ms"
    kind = "CUDA events" if ctx.cuda else "perf_counter"
    return f"{kind} {event:.2f} ms, synchronised wall clock {clock:.2f} ms (median)"


def check_channels_last(ctx: Context) -> str:
    from mattingkit.weights.pretrained import load_pretrained

    src, bgr = sample_pair(ctx)
    m = matter(ctx, precision="fp32")
    weight = m.model.decoder.conv1.weight
    assert weight.is_contiguous(memory_format=torch.channels_last), "weights not channels-last"
    refiner = m.model.refiner
    seen: dict[str, bool] = {}

    def spy(module, inputs):
        hid = inputs[5]
        half = (inputs[0].size(2) // 2, inputs[0].size(3) // 2)
        seen["windows"] = module.use_windows(hid, half)
        seen["fast"] = module.use_fast_stages(hid, half)

    handle = refiner.register_forward_pre_hook(spy)
    try:
        result = m(src, bgr)
    finally:
        handle.remove()
    assert seen.get("windows") and seen.get("fast"), f"refiner paths taken: {seen}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = load_pretrained("mattingkit", **result.settings).to(ctx.device)
    with torch.inference_mode():
        expected = plain(src.to(ctx.device), bgr.to(ctx.device))
    difference = (result.pha - expected.pha).abs().mean().item()
    assert difference < 1e-4, f"channels-last alpha differs from NCHW by {difference:.2e}"
    return f"window path and fast stages taken; mean |alpha - NCHW alpha| {difference:.1e}"


def check_torchscript(ctx: Context) -> str:
    from mattingkit.apps.export import export_torchscript

    src, bgr = sample_pair(ctx)
    exact = matter(ctx, precision="fp32")
    precision = "fp16" if ctx.cuda else "fp32"  # fp16 weights need a GPU
    path = export_torchscript(exact, ctx.folder / f"model_{precision}.pt", precision=precision)
    scripted = matter(ctx, weights=path)
    assert scripted.scripted, "not loaded as TorchScript"
    a, b = scripted(src, bgr), exact(src, bgr)
    difference = (a.pha - b.pha).abs().mean().item()
    assert difference < 2e-3, f"TorchScript {precision} alpha differs by {difference:.2e}"
    return f"TorchScript {precision}: mean |alpha - fp32 alpha| {difference:.1e}"


def check_compile(ctx: Context) -> str:
    if not ctx.compile:
        raise Skipped("torch.compile not asked for (--with-compile)")
    src, bgr = sample_pair(ctx)
    eager = matter(ctx)
    compiled = matter(ctx, compile=True)
    start = time.perf_counter()
    first = compiled(src, bgr)
    synchronize(ctx.device)
    compile_s = time.perf_counter() - start
    again = [compiled(src, bgr).seconds for _ in range(max(ctx.repeats, 3))]
    plain = [eager(src, bgr).seconds for _ in range(max(ctx.repeats, 3))]
    difference = (first.pha - eager(src, bgr).pha).abs().mean().item()
    assert difference < 2e-3, f"compiled alpha differs by {difference:.2e}"
    return (
        f"first call {compile_s:.1f} s; then {1000 * statistics.median(again):.1f} ms vs eager "
        f"{1000 * statistics.median(plain):.1f} ms; mean |alpha difference| {difference:.1e}"
    )


def check_video(ctx: Context) -> str:
    import numpy as np

    from mattingkit.apps.video import matte_video, write_video
    from mattingkit.data import synthetic
    from mattingkit.io import write_image

    height, width = (64, 96) if ctx.dry_run else (720, 1280)
    frames = 6 if ctx.dry_run else 60
    clip = synthetic.make_clip(3, (max(height // 2, 64), max(width // 2, 64)), 12, "person")
    import torch.nn.functional as F

    src = F.interpolate(clip.src, (height, width), mode="bilinear", align_corners=False)
    images = (src.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    images = np.stack([images[i % len(images)] for i in range(frames)])
    source = write_video(ctx.folder / "clip.mp4", images, 30, audio_hz=440)
    plate = F.interpolate(clip.bgr[None], (height, width), mode="bilinear", align_corners=False)
    plate_path = ctx.folder / "plate.png"
    write_image(plate_path, (plate[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
    m = matter(ctx)
    report = matte_video(
        source, plate_path, ctx.folder / "out.mp4", matter=m, progress=False, overwrite=True
    )
    assert report.frames_in == report.frames_out == frames, report
    assert report.audio_copied, "audio not copied"
    return (
        f"{frames} frames {width}x{height}, {m.precision}: pipeline {report.fps:.1f} fps, "
        f"its model part {report.model_fps:.1f} fps, audio copied"
    )


def table3(ctx: Context) -> str:
    """Table 3 beside the paper's: fps (fp32 eager as in the paper; Matter) and GMac."""
    from mattingkit.core.paper import BACKBONES, RESOLUTIONS, TABLE3
    from mattingkit.speed.profile import fps, gmacs, speed_test_model, time_forward

    rows = []
    header = (
        f"{'backbone':<12} {'res':<3} {'size':>9}  {'paper fps':>9} {'fp32 fps':>9} "
        f"{'Matter fps':>10} {'precision':>9}  {'paper GMac':>10} {'GMac':>7}"
    )
    print(header)
    print("-" * len(header))
    for resolution in ("hd", "4k"):
        for backbone in BACKBONES:
            paper = TABLE3[backbone, resolution]
            name = resolution.upper()
            with torch.device("meta"):  # at the paper's size, whatever the timed size
                counted = gmacs(speed_test_model(backbone, name), RESOLUTIONS[resolution].size)
            size = ctx.table3_size(resolution)
            model = speed_test_model(backbone, name)
            plain = fps(model, size, ctx.device, "float32", 1, ctx.warmup, ctx.repeats)
            m = matter(ctx, weights=model)
            m.options["refine_prevent_oversampling"] = False  # exactly k patches, as Table 3
            m._apply(m.settings_for(*size))
            src = m._to_device(torch.rand(1, 3, *size))
            bgr = m._to_device(torch.rand(1, 3, *size))
            times = []
            with m._autocast():
                for i in range(ctx.warmup + ctx.repeats):
                    ms = time_forward(m.model, src, bgr)
                    if i >= ctx.warmup:
                        times.append(ms)
            matter_fps = 1000 / statistics.median(times)
            rows.append((backbone, name, plain.fps, matter_fps))
            print(
                f"{backbone:<12} {name:<3} {size[1]:>4}x{size[0]:<4}  {paper.fps:>9.1f} "
                f"{plain.fps:>9.1f} {matter_fps:>10.1f} {m.precision:>9}  {paper.gmacs:>10.1f} "
                f"{counted:>7.2f}"
            )
            del model, m
            if ctx.cuda:
                torch.cuda.empty_cache()
    print(
        "paper: RTX 2080 Ti, FP32, batch 1. fp32 fps: mattingkit's model as the paper ran it "
        "(NCHW, eager); Matter: as Matter runs it (auto precision, channels-last, fast "
        "refiner stages). Both with the speed-test settings (sampling, exactly k patches)."
    )
    return f"{len(rows)} rows"


CHECKS: list[tuple[str, Callable[[Context], str]]] = [
    ("fp16 autocast", check_autocast),
    ("pinned memory", check_pinned_memory),
    ("CUDA events", check_events),
    ("channels-last", check_channels_last),
    ("TorchScript fp16", check_torchscript),
    ("torch.compile", check_compile),
    ("video pipeline", check_video),
    ("Table 3", table3),
]


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return (
            f"{props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability "
            f"{props.major}.{props.minor}, CUDA {torch.version.cuda}, cuDNN "
            f"{torch.backends.cudnn.version()}"
        )
    from mattingkit.speed.profile import describe_cpu

    cpu = describe_cpu()
    return (
        f"{cpu['cpu']} (dry run on the CPU: ATen {cpu['aten']}, bf16 native {cpu['native_bf16']})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run-cpu", action="store_true", help="run the checks on the CPU")
    parser.add_argument("--skip-compile", action="store_true", help="leave out torch.compile")
    parser.add_argument(
        "--with-compile", action="store_true", help="dry run: include torch.compile"
    )
    parser.add_argument(
        "--only", nargs="+", choices=[name for name, _ in CHECKS], help="run only these checks"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed passes (default 20)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed passes (default 5)")
    args = parser.parse_args(argv)
    if not args.dry_run_cpu and not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    device = torch.device("cpu") if args.dry_run_cpu else torch.device("cuda")
    repeats = args.repeats or (2 if args.dry_run_cpu else 20)
    warmup = args.warmup if args.warmup is not None else (1 if args.dry_run_cpu else 5)
    compile_ = args.with_compile if args.dry_run_cpu else not args.skip_compile
    start = time.perf_counter()
    print(f"{datetime.date.today()}  torch {torch.__version__}  {describe(device)}")
    failed = []
    with tempfile.TemporaryDirectory() as folder:
        ctx = Context(device, args.dry_run_cpu, repeats, warmup, compile_, Path(folder))
        checks = [(n, c) for n, c in CHECKS if args.only is None or n in args.only]
        for name, check in checks:
            began = time.perf_counter()
            if name == "Table 3":
                print()
            try:
                summary = check(ctx)
                status = "ok"
            except Skipped as reason:
                summary, status = str(reason), "skipped"
            except Exception as error:  # one broken path must not hide the others
                summary, status = f"{type(error).__name__}: {error}", "FAILED"
                failed.append(name)
                traceback.print_exc(limit=3)
            ctx.results[name] = status
            print(f"[{status:>7}] {name:<17} {summary}  ({time.perf_counter() - began:.1f} s)")
    total = time.perf_counter() - start
    print(f"\n{len(checks) - len(failed)}/{len(checks)} checks passed or skipped in {total:.0f} s")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
