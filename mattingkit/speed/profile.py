"""Cost and speed of a matting network: GMac counts and frames per second.

Chapter 04 uses this module to put numbers next to the paper's Table 3:

* :func:`gmacs` counts multiply-accumulates (convolutions and matrix products, as the paper
  does; interpolation, cropping and element-wise ops are free) with PyTorch's own
  :class:`torch.utils.flop_counter.FlopCounterMode`. By default the forward pass runs on the
  ``meta`` device: only shapes are computed, so a 4K ResNet-101 costs milliseconds and no memory.
* :func:`fps` times a forward pass the way the paper's ``inference_speed_test.py`` does:
  inputs already on the device, no gradients, warm-up first, median of many repeats.

A convolution with ``C_in * k * k`` weights per output value and ``N`` output values costs
``N * C_in * k * k`` multiply-accumulates; FlopCounterMode counts 2 FLOPs per MAC, so
``GMac = FLOPs / 2e9``.
"""

from __future__ import annotations

import copy
import ctypes
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from mattingkit.core.model import MattingRefine
from mattingkit.core.paper import RESOLUTIONS, TABLE3
from mattingkit.runtime import fast_mode, pick_device

__all__ = [
    "PAPER_TABLE3",
    "PAPER_SETTINGS",
    "FpsResult",
    "gmacs",
    "gmacs_by_module",
    "fps",
    "time_forward",
    "speed_test_model",
    "AVX2_ENV",
    "cpu_flags",
    "onednn_isa",
    "describe_cpu",
]

#: The paper's Table 3 (RTX 2080 Ti, FP32, batch 1): (backbone, "HD" | "4K") -> (fps, GMac).
#: A view of :data:`mattingkit.core.paper.TABLE3`, keyed the way chapter 04 prints it.
PAPER_TABLE3: dict[tuple[str, str], tuple[float, float]] = {
    (backbone, resolution.upper()): tuple(speed) for (backbone, resolution), speed in TABLE3.items()
}

#: Settings behind Table 3: resolution -> ((H, W), backbone_scale, refine_sample_pixels).
#: A view of :data:`mattingkit.core.paper.RESOLUTIONS`.
PAPER_SETTINGS: dict[str, tuple[tuple[int, int], float, int]] = {
    name.upper(): tuple(resolution) for name, resolution in RESOLUTIONS.items()
}


def speed_test_model(backbone: str, resolution: str = "HD") -> nn.Module:
    """A randomly initialised ``MattingRefine`` configured like the paper's speed test.

    Chapter 04. Sampling mode with ``refine_prevent_oversampling=False``, so exactly
    ``sample_pixels / 16`` patches are refined whatever the image, as in Table 3.
    """
    if resolution not in PAPER_SETTINGS:
        raise ValueError(f"resolution must be one of {sorted(PAPER_SETTINGS)}, got {resolution!r}")
    _, scale, pixels = PAPER_SETTINGS[resolution]
    return MattingRefine(
        backbone,
        backbone_scale=scale,
        refine_mode="sampling",
        refine_sample_pixels=pixels,
        refine_prevent_oversampling=False,
    ).eval()


# --------------------------------------------------------------------------------------------
# GMac counting
# --------------------------------------------------------------------------------------------


def _check_size(size: Sequence[int], batch: int) -> tuple[int, int]:
    if len(size) != 2 or any(int(s) != s or s <= 0 for s in size):
        raise ValueError(f"size must be (H, W) with two positive integers, got {size!r}")
    if int(batch) != batch or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    return int(size[0]), int(size[1])


class _MetaPatchSelection(TorchDispatchMode):
    """Lets the refiner's patch selection run on the ``meta`` device.

    ``torch.nonzero`` has no meta implementation: how many entries are non-zero depends on the
    data, which meta tensors do not have. In sampling mode the refiner marks the ``k`` largest
    errors per image (``topk``) and then asks ``nonzero`` where the marks are, so the answer is
    known from the shapes alone: ``k`` per image. This mode remembers the last ``topk`` and
    answers ``nonzero`` accordingly; every other op runs unchanged (and is counted).
    """

    def __init__(self) -> None:
        super().__init__()
        self.selected: int | None = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten.topk.default:
            x, k = args[0], args[1]
            dim = args[2] if len(args) > 2 else kwargs.get("dim", -1)
            self.selected = (x.numel() // x.shape[dim]) * k
        if func is torch.ops.aten.nonzero.default and args[0].device.type == "meta":
            if self.selected is None:
                raise ValueError(
                    "This model selects a data-dependent number of patches (thresholding mode), "
                    "which cannot be counted on the meta device: call gmacs(..., device='cpu')."
                )
            x = args[0]
            count = min(self.selected, x.numel())
            return torch.empty((count, x.dim()), dtype=torch.long, device="meta")
        return func(*args, **kwargs)


def _count_flops(
    model: nn.Module,
    size: Sequence[int],
    batch: int,
    device: str | torch.device,
    inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> FlopCounterMode:
    """Run one forward pass of ``model(src, bgr)`` under a FlopCounterMode and return it."""
    if inputs is not None:
        if len(inputs) != 2 or not all(isinstance(t, torch.Tensor) for t in inputs):
            raise ValueError("inputs must be a pair of tensors (src, bgr)")
        src, bgr = inputs
        if src.dim() != 4 or src.shape != bgr.shape:
            raise ValueError(
                f"inputs must be two (B, 3, H, W) tensors of the same shape, got src "
                f"{tuple(src.shape)} and bgr {tuple(bgr.shape)}"
            )
        device = src.device
    else:
        height, width = _check_size(size, batch)
        device = torch.device(device)
        src = torch.rand(batch, 3, height, width, device=device)
        bgr = torch.rand(batch, 3, height, width, device=device)
    # Inputs in the weights' precision (e.g. the bfloat16 model a Matter runs on a CPU).
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    src, bgr = src.to(dtype), bgr.to(dtype)
    counter = FlopCounterMode(display=False, depth=2)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            if device.type == "meta":
                # Swap in shape-only copies of weights and buffers: the user's model is untouched.
                tensors = {
                    name: torch.empty_like(t, device="meta")
                    for name, t in [*model.named_parameters(), *model.named_buffers()]
                }
                with counter, _MetaPatchSelection():
                    functional_call(model, tensors, (src, bgr))
            else:
                with counter:
                    model(src, bgr)
    finally:
        model.train(was_training)
    return counter


def gmacs(
    model: nn.Module,
    size: Sequence[int] = (1080, 1920),
    batch: int = 1,
    *,
    device: str | torch.device = "meta",
    inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> float:
    """Multiply-accumulates, in billions, of one forward pass ``model(src, bgr)``.

    Chapter 04. Counts convolutions and matrix products like the paper's GMac column
    (interpolation, cropping and element-wise ops are not counted).

    Args:
        model: a ``MattingBase`` or ``MattingRefine`` (or any module called as
            ``model(src, bgr)`` with ``src``, ``bgr`` of shape (B, 3, H, W)).
        size: (H, W) of the full-resolution input.
        batch: batch size B; the count grows linearly with it.
        device: ``"meta"`` (default) runs the pass on shapes only: fast, no memory. Use a real
            device (``"cpu"``) for thresholding mode, where the number of refined patches depends
            on the image, or with ``refine_prevent_oversampling=True`` to count the patches
            actually selected (on meta the full ``sample_pixels / 16`` are assumed).
        inputs: a real ``(src, bgr)`` pair to count on instead of random images; ``size``,
            ``batch`` and ``device`` are then taken from it. Use it when the cost depends on
            the content (thresholding, oversampling prevention): random noise has errors
            everywhere and would select far more patches than a real frame.

    Example:
        >>> from mattingkit.speed.profile import gmacs, speed_test_model
        >>> round(gmacs(speed_test_model("resnet50", "HD"), (1080, 1920)), 1)  # paper: 34.3
        34.2
    """
    counter = _count_flops(model, size, batch, device, inputs)
    return counter.get_total_flops() / 2e9


def gmacs_by_module(
    model: nn.Module,
    size: Sequence[int] = (1080, 1920),
    batch: int = 1,
    *,
    device: str | torch.device = "meta",
    inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, float]:
    """GMac of one forward pass split by the model's top-level parts, plus ``"total"``.

    Chapter 04. For a ``MattingRefine`` the keys are ``backbone``, ``aspp``, ``decoder``,
    ``refiner`` and ``total`` (``other`` appears only if some work happens outside them).
    Arguments as in :func:`gmacs`.
    """
    counter = _count_flops(model, size, batch, device, inputs)
    counts = counter.get_flop_counts()
    total = counter.get_total_flops()
    root = type(model).__name__
    parts: dict[str, float] = {}
    for name, _ in model.named_children():
        ops = counts.get(f"{root}.{name}")
        if ops:
            parts[name] = sum(ops.values()) / 2e9
    other = total / 2e9 - sum(parts.values())
    if abs(other) > 1e-9:
        parts["other"] = other
    parts["total"] = total / 2e9
    return parts


# --------------------------------------------------------------------------------------------
# Frames per second
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FpsResult:
    """Timing of repeated forward passes. Chapter 04.

    ``times_ms`` holds one entry per repeat: the time of a whole batch, in milliseconds.
    ``fps`` is frames per second from the median (``batch * 1000 / median_ms``).
    """

    device: str
    precision: str
    backend: str
    size: tuple[int, int]
    batch: int
    times_ms: tuple[float, ...] = field(repr=False)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def min_ms(self) -> float:
        return min(self.times_ms)

    @property
    def max_ms(self) -> float:
        return max(self.times_ms)

    @property
    def iqr_ms(self) -> float:
        """Interquartile range: how spread the repeats are (0 for a single repeat)."""
        if len(self.times_ms) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.times_ms, n=4, method="inclusive")
        return q3 - q1

    @property
    def ms_per_frame(self) -> float:
        return self.median_ms / self.batch

    @property
    def fps(self) -> float:
        return 1000.0 / self.ms_per_frame

    def __str__(self) -> str:
        h, w = self.size
        return (
            f"{self.fps:.2f} fps ({self.ms_per_frame:.1f} ms/frame, median of {len(self.times_ms)}, "
            f"IQR {self.iqr_ms:.1f} ms) at {w}x{h}, batch {self.batch}, {self.precision}, "
            f"{self.backend}, on {self.device}"
        )


def time_forward(
    model: Any,
    src: torch.Tensor,
    bgr: torch.Tensor,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Milliseconds of one ``model(src, bgr)`` on the inputs' device, gradients off. Chapter 04.

    On CUDA the GPU is synchronised before and after and the pass is timed with CUDA events:
    kernels run asynchronously, so a plain clock would time the launches, not the work.
    On CPU (and MPS, synchronised) ``clock`` is used: ``time.perf_counter`` (wall clock) by
    default; ``time.thread_time`` with one torch thread counts only this thread's CPU time,
    which other processes on a busy machine do not inflate.
    """
    device = src.device
    with torch.inference_mode():
        if device.type == "cuda":
            with torch.cuda.device(device):  # events go on this GPU's current stream
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize(device)
                start.record()
                model(src, bgr)
                end.record()
                torch.cuda.synchronize(device)
                return start.elapsed_time(end)
        if device.type == "mps":
            torch.mps.synchronize()
        t0 = clock()
        model(src, bgr)
        if device.type == "mps":
            torch.mps.synchronize()
        return (clock() - t0) * 1000.0


def fps(
    model: nn.Module,
    size: Sequence[int] = (1080, 1920),
    device: str | torch.device | None = None,
    precision: str = "float32",
    batch: int = 1,
    warmup: int | None = None,
    repeats: int | None = None,
    backend: str = "pytorch",
) -> FpsResult:
    """Measure frames per second of ``model(src, bgr)`` like the paper's speed test.

    Chapter 04. What "done right" means here:

    * ``src`` and ``bgr`` are random tensors created on the device beforehand: no disk, no
      host-to-device copy is timed (the paper's numbers exclude them too, issue #37);
    * a copy of the model is moved to the device and precision and put in ``eval()`` mode
      (the caller's model is not changed); ``torch.inference_mode()`` disables autograd;
    * ``warmup`` untimed passes first (cuDNN autotuning, memory allocation, lazy init);
    * on CUDA each pass is timed with CUDA events and ``torch.cuda.synchronize()`` (kernels run
      asynchronously: without it you time the launch, not the work); on CPU ``time.perf_counter``;
    * the median of ``repeats`` is reported, with the spread, because a shared machine is noisy.

    Args:
        model: a ``MattingBase`` / ``MattingRefine`` (called as ``model(src, bgr)``).
        size: (H, W) of the input.
        device: where to run; ``None`` picks CUDA, then MPS, then CPU.
        precision: ``"float32"`` or ``"float16"`` (CUDA only).
        batch: frames per pass.
        warmup, repeats: untimed and timed passes; ``None`` gives small numbers in fast mode
            (``MATTINGKIT_FAST=1``) and more otherwise.
        backend: ``"pytorch"`` (eager) or ``"torchscript"`` (``torch.jit.script`` of the model).

    Returns:
        :class:`FpsResult` with ``fps``, ``median_ms``, ``iqr_ms``, ``min_ms``, ``max_ms``,
        ``ms_per_frame`` and the raw ``times_ms``.
    """
    height, width = _check_size(size, batch)
    device = torch.device(device) if device is not None else pick_device(verbose=False)
    dtypes = {"float32": torch.float32, "float16": torch.float16}
    if precision not in dtypes:
        raise ValueError(f"precision must be 'float32' or 'float16', got {precision!r}")
    if precision == "float16" and device.type != "cuda":
        raise ValueError(
            f"precision='float16' needs a CUDA device (got {device}); half-precision convolutions "
            "are slow or unsupported on CPU. Use precision='float32'."
        )
    if backend not in ("pytorch", "torchscript"):
        raise ValueError(f"backend must be 'pytorch' or 'torchscript', got {backend!r}")
    fast = fast_mode()
    on_gpu = device.type == "cuda"
    if warmup is None:
        warmup = 1 if fast else (10 if on_gpu else 3)
    if repeats is None:
        repeats = 3 if fast else (100 if on_gpu else 10)
    if warmup < 0 or repeats < 1:
        raise ValueError(
            f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}"
        )

    dtype = dtypes[precision]
    runner: Any = copy.deepcopy(model).eval().to(device=device, dtype=dtype)
    for p in runner.parameters():
        p.requires_grad_(False)
    if backend == "torchscript":
        try:
            with warnings.catch_warnings():  # "torch.jit.script is deprecated" (still works)
                warnings.simplefilter("ignore", FutureWarning)
                runner = torch.jit.script(runner)
        except Exception as error:  # TorchScript reports unsupported Python constructs this way.
            raise ValueError(
                f"{type(model).__name__} cannot be compiled with torch.jit.script: {error}"
            ) from error

    src = torch.rand(batch, 3, height, width, device=device, dtype=dtype)
    bgr = torch.rand(batch, 3, height, width, device=device, dtype=dtype)
    for _ in range(warmup):
        time_forward(runner, src, bgr)
    times = [time_forward(runner, src, bgr) for _ in range(repeats)]
    return FpsResult(
        device=str(device),
        precision=precision,
        backend=backend,
        size=(height, width),
        batch=batch,
        times_ms=tuple(times),
    )


# --------------------------------------------------------------------------------------------
# Which CPU, and which instructions torch really uses on it
# --------------------------------------------------------------------------------------------

#: Limits oneDNN (convolutions), ATen (element-wise and resampling kernels) and MKL (matrix
#: products) to AVX2, as on most laptops and free cloud CPUs. Read when torch loads: set them
#: in the environment of a new process (``benchmarks/speed_vs_official.py --isa avx2`` does).
AVX2_ENV: dict[str, str] = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}

# The /proc/cpuinfo flags that decide how fast the model runs on a CPU.
_SIMD_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni",
)  # fmt: skip


def cpu_flags() -> list[str]:
    """The SIMD flags of this CPU that matter here (from ``/proc/cpuinfo``; [] elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in _SIMD_FLAGS if flag in present]
    except OSError:
        pass
    return []


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def onednn_isa() -> str:
    """The instruction set oneDNN dispatches to, and the kernel a 3x3 convolution runs on.

    Asked of oneDNN itself: one small convolution runs with oneDNN's verbose log on, written
    to a temporary file (the log goes to the C library's stdout), and the ``isa:`` and
    implementation fields are read back, e.g. ``"Intel AVX2 (conv: brg_conv_fwd:avx2)"``.
    """
    if not torch.backends.mkldnn.is_available():
        return "oneDNN not available"
    libc = ctypes.CDLL(None) if sys.platform != "win32" else None
    isa, kernel = "unknown", "unknown"
    with tempfile.TemporaryFile() as log:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(log.fileno(), 1)
        try:
            with torch.no_grad(), torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                F.conv2d(torch.rand(1, 64, 32, 32), torch.rand(64, 64, 3, 3))
        finally:
            if libc is not None:
                libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        for line in log.read().decode(errors="replace").splitlines():
            fields = line.split(",")
            if ",info,cpu,isa:" in line:
                isa = line.split("isa:", 1)[1].strip()
            elif ",exec,cpu,convolution," in line and len(fields) > 6:
                kernel = fields[6]
    return f"{isa} (conv: {kernel})"


def describe_cpu() -> dict[str, str]:
    """What a CPU benchmark should print beside its figures. Chapter 04.

    The CPU model and core count, its SIMD flags, and what torch actually uses: ATen's
    dispatch level (``torch.backends.cpu.get_cpu_capability()``), oneDNN's instruction set
    (:func:`onednn_isa`), whether oneDNN runs bfloat16 natively (what ``Matter``'s
    ``precision="auto"`` picks on a CPU), torch's threads, and any :data:`AVX2_ENV` limit set.
    """
    try:
        native_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native_bf16 = False
    limits = {k: os.environ[k] for k in AVX2_ENV if k in os.environ}
    return {
        "cpu": f"{_cpu_model()}, {os.cpu_count()} logical cores",
        "flags": " ".join(cpu_flags()) or "unknown",
        "aten": torch.backends.cpu.get_cpu_capability(),
        "onednn": onednn_isa(),
        "native_bf16": "yes" if native_bf16 else "no",
        "threads": str(torch.get_num_threads()),
        "limits": " ".join(f"{k}={v}" for k, v in limits.items()) or "none",
        "torch": torch.__version__,
    }
