"""The refiner's window path gives the same patches as the whole-frame path, only cheaper.

The window path (select patches -> gather small coarse windows -> upsample each -> two tiny
stages -> paste back) must be bit-identical to the whole-frame path run on the same
channels-last tensors, across refine modes, kernel sizes, crop/replace methods, border
patches, HD-like (factor 2) and 4K-like (factor 4) geometry and batches; sizes where it
cannot be exact must fall back to the whole-frame path.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F

import mattingkit.speed.windows as windows_module
from mattingkit.core.model import MattingRefine
from mattingkit.speed.folding import fold_batchnorms
from mattingkit.speed.windows import (
    WindowRefiner,
    accelerate,
    coarse_window_size,
    exact_upsample_factor,
    gather_inner_windows,
    gather_windows,
)

CL = torch.channels_last


def randomise(refiner: WindowRefiner, seed: int) -> WindowRefiner:
    """Non-trivial BatchNorm statistics, so every channel matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in refiner.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                shape = module.running_mean.shape
                module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
    return refiner.eval()


def refiner_inputs(
    batch: int, height: int, width: int, coarse: tuple[int, int], seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Channels-last src, bgr (full size) and pha, fgr, err, hid (coarse size).

    The error map is largest along the frame's border, so sampling picks border patches
    (the windows that must slide inside the coarse map) as well as interior ones.
    """
    generator = torch.Generator().manual_seed(seed)
    h, w = coarse
    src, bgr = (torch.rand(batch, 3, height, width, generator=generator) for _ in range(2))
    pha = torch.rand(batch, 1, h, w, generator=generator)
    fgr = torch.rand(batch, 3, h, w, generator=generator) - 0.5
    err = torch.rand(batch, 1, h, w, generator=generator) * 0.5
    err[:, :, :2] += 0.5
    err[:, :, -1:] += 0.5
    err[:, :, :, :1] += 0.5
    err[:, :, :, -2:] += 0.5
    hid = torch.rand(batch, 32, h, w, generator=generator)
    return tuple(t.contiguous(memory_format=CL) for t in (src, bgr, pha, fgr, err, hid))


def run(
    refiner: WindowRefiner,
    inputs: tuple[torch.Tensor, ...],
    window_path: str,
    fast_stages: bool = False,
):
    """Run on one path. The fast stages (tests/test_refiner_fast.py) rearrange float
    arithmetic, so the bit-for-bit comparisons of the inputs run the modules' stages; the
    fast stages run on a copy with the BatchNorms folded, as Matter runs them."""
    if fast_stages and not refiner.folded:
        refiner = copy.deepcopy(refiner).eval()
        fold_batchnorms(refiner)
    refiner.window_path = window_path
    refiner.fast_stages = fast_stages
    with torch.inference_mode():
        return refiner(*inputs)


def max_difference(a: tuple, b: tuple) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


METHODS = [("unfold", "scatter_nd"), ("roi_align", "scatter_element"), ("gather", "scatter_nd")]
# (full height, width, coarse height, width): factor 2 (HD at 1/4), 4 (4K at 1/8), and
# a non-square coarse map whose rows and columns both hit the border windows.
GEOMETRIES = [(96, 160, 24, 40), (128, 192, 16, 24), (64, 200, 16, 50)]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{g[0]}x{g[1]}-from-{g[2]}x{g[3]}")
@pytest.mark.parametrize(
    ("mode", "kernel", "methods"),
    [
        (mode, kernel, methods)
        for mode, kernel, methods in itertools.product(
            ["sampling", "thresholding"], [1, 3], METHODS
        )
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else str(v),
)
def test_window_path_is_bit_identical_to_whole_frame_path(geometry, mode, kernel, methods):
    height, width, coarse_h, coarse_w = geometry
    refiner = randomise(
        WindowRefiner(
            mode,
            sample_pixels=16 * 300,
            threshold=0.6,
            kernel_size=kernel,
            patch_crop_method=methods[0],
            patch_replace_method=methods[1],
        ),
        seed=kernel,
    )
    inputs = refiner_inputs(2, height, width, (coarse_h, coarse_w))
    windows = run(refiner, inputs, "auto")
    frames = run(refiner, inputs, "never")
    ref = windows[2]
    assert 0 < ref.sum() < ref.numel(), "the test must refine some patches, not all"
    assert ref[:, :, 0].sum() > 0 and ref[:, :, :, -1].sum() > 0, "border patches must be refined"
    for got, expected in zip(windows, frames):
        assert torch.equal(got, expected)


@pytest.mark.parametrize("kernel", [1, 3])
def test_maps_smaller_than_a_window_are_exact_too(kernel):
    """A 4x6 coarse map is smaller than the 5x5 window an 8x8 crop needs."""
    refiner = randomise(WindowRefiner("sampling", 16 * 10, kernel_size=kernel), seed=5)
    inputs = refiner_inputs(2, 16, 24, (4, 6))
    windows, frames = run(refiner, inputs, "auto"), run(refiner, inputs, "never")
    assert 0 < windows[2].sum() < windows[2].numel()
    assert all(torch.equal(a, b) for a, b in zip(windows, frames))


def test_half_precision_features_under_autocast():
    """As on a GPU with fp16 autocast: the base network hands over low-precision features."""
    refiner = randomise(WindowRefiner("sampling", 16 * 300), seed=6)
    src, bgr, *coarse = refiner_inputs(2, 96, 160, (24, 40))
    inputs = (src, bgr, *(t.to(torch.bfloat16) for t in coarse))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        windows, frames = run(refiner, inputs, "auto"), run(refiner, inputs, "never")
    assert all(torch.equal(a, b) for a, b in zip(windows, frames))


@pytest.mark.parametrize("kernel", [1, 3])
def test_nchw_inputs_forced_onto_the_window_path_agree_within_rounding(kernel):
    refiner = randomise(WindowRefiner("sampling", 16 * 300, kernel_size=kernel), seed=3)
    inputs = tuple(t.contiguous() for t in refiner_inputs(2, 96, 160, (24, 40)))
    assert not refiner.use_windows(inputs[5], (48, 80)), "auto keeps NCHW on the exact path"
    difference = max_difference(run(refiner, inputs, "always"), run(refiner, inputs, "never"))
    assert difference <= 1e-5


def test_window_path_is_taken_when_exact(monkeypatch):
    """No half-resolution frame is built: the whole-frame path is not even entered."""
    calls: list[tuple[int, ...]] = []
    interpolate = F.interpolate

    def spy(x, *args, **kwargs):
        calls.append(tuple(x.shape))
        return interpolate(x, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("the whole-frame path ran although the window path is exact")

    monkeypatch.setattr(windows_module.F, "interpolate", spy)
    monkeypatch.setattr(WindowRefiner, "inputs_from_frames", forbidden)
    refiner = randomise(WindowRefiner("sampling", 16 * 300), seed=0)
    inputs = refiner_inputs(1, 96, 160, (24, 40))
    pha = run(refiner, inputs, "auto")[0]
    assert pha.shape == (1, 1, 96, 160)
    # Only 1-channel error maps, 4-channel outputs and per-patch windows are resized.
    patches = 300
    assert all(shape[0] in (1, patches) for shape in calls), calls
    assert not any(shape[0] == 1 and shape[1] in (6, 36) for shape in calls), calls


@pytest.mark.parametrize(
    ("full", "coarse"),
    [((100, 144), (12, 18)), ((96, 144), (32, 48)), ((96, 160), (20, 40))],
    ids=["not-a-multiple", "factor-1.5", "rows-factor-2.4"],
)
def test_inexact_geometry_falls_back_to_whole_frames(monkeypatch, full, coarse):
    def forbidden(*args, **kwargs):
        raise AssertionError("the window path cannot be exact here")

    monkeypatch.setattr(WindowRefiner, "inputs_from_windows", forbidden)
    refiner = randomise(WindowRefiner("sampling", 16 * 100), seed=0)
    inputs = refiner_inputs(1, *full, coarse)
    assert run(refiner, inputs, "always")[0].shape == (1, 1, *full)


def test_whole_model_channels_last_and_torchscript_take_the_same_numbers():
    torch.manual_seed(0)
    model = MattingRefine("mobilenetv2", refine_sample_pixels=16 * 200).eval()
    with torch.no_grad():
        model.decoder.conv4.bias[4] = 0.3  # an error map that is not all zero
    model = accelerate(model, fold=False).to(memory_format=CL)
    model.refiner.fast_stages = False  # bit for bit: the modules' stages on both paths
    generator = torch.Generator().manual_seed(1)
    src, bgr = (
        torch.rand(2, 3, 128, 160, generator=generator).contiguous(memory_format=CL)
        for _ in range(2)
    )
    with torch.inference_mode():
        windows = model(src, bgr)
        model.refiner.window_path = "never"
        frames = model(src, bgr)
    assert 0 < windows.ref_sm.sum() < windows.ref_sm.numel()
    assert all(torch.equal(a, b) for a, b in zip(windows, frames))

    model.refiner.window_path = "auto"
    with pytest.warns(FutureWarning):  # "torch.jit.script is deprecated" (still works)
        scripted = torch.jit.script(model)
    with torch.inference_mode():
        from_script = scripted(src, bgr)
    assert max_difference(from_script, windows) == 0.0


def test_gather_windows_equals_a_crop_of_the_zero_padded_image():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 5, 9, 11, generator=generator).contiguous(memory_format=CL)
    padded = F.pad(x, (4, 4, 4, 4))
    batch = torch.tensor([0, 1, 1, 0, 1])
    top = torch.tensor([-4, 0, 3, 6, -2])
    left = torch.tensor([-3, 8, 2, 7, 4])
    windows = gather_windows(x, batch, top, left, 4, 3)
    assert windows.shape == (5, 5, 4, 3) and windows.is_contiguous(memory_format=CL)
    for i in range(5):
        t, c = top[i] + 4, left[i] + 4
        assert torch.equal(windows[i], padded[batch[i], :, t : t + 4, c : c + 3])
    # Windows inside the image, touching its last row and column.
    batch, top, left = torch.tensor([1, 1, 0]), torch.tensor([0, 3, 5]), torch.tensor([8, 2, 0])
    inner = gather_inner_windows(x, batch, top, left, 4, 3)
    assert inner.is_contiguous(memory_format=CL)
    for i in range(3):
        t, c = top[i], left[i]
        assert torch.equal(inner[i], x[batch[i], :, t : t + 4, c : c + 3])


def test_window_geometry():
    assert exact_upsample_factor(270, 540) == 2  # HD at 1/4
    assert exact_upsample_factor(270, 1080) == 4  # 4K at 1/8
    assert exact_upsample_factor(540, 540) == 1  # backbone scale 1/2
    assert exact_upsample_factor(135, 542) == 0  # not a multiple
    assert exact_upsample_factor(20, 60) == 0  # factor 3: 1/3 is not exact in floating point
    # An 8x8 half-resolution crop needs a 5x5 coarse window at factor 2, 4x4 at factor 4.
    assert coarse_window_size(2, 3) == 5
    assert coarse_window_size(4, 3) == 4
    assert coarse_window_size(2, 0) == 3


def test_unknown_window_path_is_rejected():
    with pytest.raises(ValueError, match="window_path"):
        WindowRefiner(window_path="sometimes")
