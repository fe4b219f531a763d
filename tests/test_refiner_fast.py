"""The refiner's fast stages compute the same function as its modules, within float rounding.

With its BatchNorms folded, in eval mode, the window path runs ``WindowRefiner.stages_from_windows``: BatchNorm folded into the
convolutions and each upsampling composed with the convolution after it. These tests hold it
to the teaching path (``stage1``/``stage2`` on the exact stage inputs) within 1e-5 across
refine modes, crop/replace methods, border patches, batches and geometries; check the two
rearrangements on their own; and check the fast path is taken exactly where it should be
(eval mode, HD geometry, 3x3 kernels) and never in training.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from test_refiner_speedpath import randomise, refiner_inputs, run

from mattingkit.core.decoder import Decoder
from mattingkit.core.model import MattingRefine
from mattingkit.speed.folding import fold_batchnorms
from mattingkit.speed.windows import (
    WindowRefiner,
    accelerate,
    add_pixel_shuffled_,
    resize_matrix,
    upsampled_conv_kernel,
)

CL = torch.channels_last
TOLERANCE = 1e-5
METHODS = [("unfold", "scatter_nd"), ("roi_align", "scatter_element"), ("gather", "scatter_nd")]
# Factor-2 geometries (HD at 1/4): a wide frame, a tall one, and a coarse map of 5x6, just one
# window high, where every window slides.
GEOMETRIES = [(96, 160, 24, 40), (200, 64, 50, 16), (20, 24, 5, 6)]


def max_difference(a: tuple, b: tuple) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{g[0]}x{g[1]}-from-{g[2]}x{g[3]}")
@pytest.mark.parametrize(
    ("mode", "methods"),
    list(itertools.product(["sampling", "thresholding"], METHODS)),
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else str(v),
)
def test_fast_stages_equal_the_modules(geometry, mode, methods):
    height, width, coarse_h, coarse_w = geometry
    refiner = randomise(
        WindowRefiner(
            mode,
            sample_pixels=16 * min(300, (height // 4) * (width // 4) // 2),  # not every patch
            threshold=0.4,  # all border patches and about a fifth of the others
            patch_crop_method=methods[0],
            patch_replace_method=methods[1],
        ),
        seed=7,
    )
    inputs = refiner_inputs(2, height, width, (coarse_h, coarse_w), seed=2)
    folded = copy.deepcopy(refiner)
    fold_batchnorms(folded)
    assert folded.use_fast_stages(inputs[5], (height // 2, width // 2))
    assert not refiner.use_fast_stages(inputs[5], (height // 2, width // 2)), "needs folding"
    fast = run(refiner, inputs, "auto", fast_stages=True)
    modules = run(refiner, inputs, "auto", fast_stages=False)
    ref = fast[2]
    assert torch.equal(ref, modules[2])  # the same patches are chosen
    assert 0 < ref.sum() < ref.numel()
    assert ref[:, :, 0].sum() > 0 and ref[:, :, :, -1].sum() > 0, "border patches must be refined"
    if coarse_h > 5:
        assert ref[:, :, 2:-2, 2:-2].sum() > 0, "and patches whose windows do not slide"
    # The refined pixels really changed (the patches are not the bilinear upsample).
    upsampled = F.interpolate(torch.cat(inputs[2:4], 1), (height, width), mode="bilinear")
    assert (fast[0] - upsampled[:, :1]).abs().max() > 0.1
    assert max_difference(fast, modules) <= TOLERANCE


def test_fast_stages_on_a_real_model_and_when_scripted():
    torch.manual_seed(0)
    model = MattingRefine("mobilenetv2", refine_sample_pixels=16 * 200).eval()
    with torch.no_grad():
        model.decoder.conv4.bias[4] = 0.3  # an error map that is not all zero
        for module in model.refiner.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.uniform_(0.5, 1.5)
                module.running_mean.normal_(0, 0.1)
    original = accelerate(copy.deepcopy(model), fold=False).to(memory_format=CL)
    model = accelerate(model).to(memory_format=CL)
    assert model.refiner.folded and not original.refiner.folded
    generator = torch.Generator().manual_seed(1)
    src, bgr = (
        torch.rand(2, 3, 128, 160, generator=generator).contiguous(memory_format=CL)
        for _ in range(2)
    )
    with torch.inference_mode():
        fast = model(src, bgr)
        model.refiner.fast_stages = False
        folded_modules = model(src, bgr)
        model.refiner.fast_stages = True
        modules = original(src, bgr)
    assert max_difference(folded_modules, modules) <= TOLERANCE
    assert 0 < fast.ref_sm.sum() < fast.ref_sm.numel()
    assert max_difference(fast, modules) <= TOLERANCE
    with pytest.warns(FutureWarning):  # "torch.jit.script is deprecated" (still works)
        scripted = torch.jit.script(model)
    with torch.inference_mode():
        assert max_difference(scripted(src, bgr), fast) == 0.0
        scripted.refiner.fast_stages = False  # settable on the scripted model too
        assert max_difference(scripted(src, bgr), folded_modules) == 0.0


def test_fast_path_is_taken_only_in_eval_mode_at_hd_geometry(monkeypatch):
    calls: list[str] = []
    for name in ("stages_from_windows", "stage1"):
        original = getattr(WindowRefiner, name)

        def spy(self, *args, _name=name, _original=original):
            calls.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(WindowRefiner, name, spy)
    inputs = refiner_inputs(1, 96, 160, (24, 40))
    unfolded = randomise(WindowRefiner("sampling", 16 * 100), seed=0)
    refiner = copy.deepcopy(unfolded)
    fold_batchnorms(refiner)

    def taken(refiner: WindowRefiner, inputs: tuple) -> list[str]:
        calls.clear()
        with torch.no_grad():
            refiner(*inputs)
        return list(calls)

    assert taken(unfolded, inputs) == ["stage1"], "the fast stages need folded BatchNorms"
    assert taken(refiner, inputs) == ["stages_from_windows"]
    refiner.train()  # training: BatchNorm uses the batch's statistics, the modules run
    assert taken(refiner, inputs) == ["stage1"]
    refiner.eval().fast_stages = False
    assert taken(refiner, inputs) == ["stage1"]
    refiner.fast_stages = True
    nchw = tuple(t.contiguous() for t in inputs)  # the official layout: whole-frame path
    assert taken(refiner, nchw) == ["stage1"]
    four_k = refiner_inputs(1, 128, 192, (16, 24))  # factor 4 (4K at 1/8)
    assert taken(refiner, four_k) == ["stage1"]
    one = randomise(WindowRefiner("sampling", 16 * 100, kernel_size=1), seed=0)
    fold_batchnorms(one)
    assert taken(one, inputs) == ["stage1"]


def test_training_gradients_are_the_modules_own():
    """Training never sees the fast path: same loss and gradients as with it switched off."""
    inputs = refiner_inputs(2, 96, 160, (24, 40))
    grads = []
    torch.manual_seed(0)
    built = randomise(WindowRefiner("sampling", 16 * 100), seed=1)
    for fast in (True, False):
        refiner = copy.deepcopy(built).train()
        refiner.fast_stages = fast
        pha, fgr, _ = refiner(*inputs)
        (pha.square().mean() + fgr.abs().mean()).backward()
        grads.append([p.grad.clone() for p in refiner.parameters()])
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def test_fast_stages_under_bfloat16():
    """A bfloat16 model (Matter on a CPU with native bfloat16) stays close to fp32."""
    refiner = randomise(WindowRefiner("sampling", 16 * 300), seed=4)
    inputs = refiner_inputs(2, 96, 160, (24, 40))
    exact = run(refiner, inputs, "auto", fast_stages=False)
    low = refiner.to(torch.bfloat16)
    fast = run(low, tuple(t.to(torch.bfloat16) for t in inputs), "auto", fast_stages=True)
    assert fast[0].dtype == torch.bfloat16
    assert (fast[0].float() - exact[0]).abs().mean() < 2e-2


@pytest.mark.parametrize(("mode", "offset", "support"), [("bilinear", 1, 3), ("nearest", 0, 2)])
def test_upsampled_conv_kernel_is_upsample_crop_then_conv(mode, offset, support):
    generator = torch.Generator().manual_seed(0)
    small = torch.randn(7, 5, 5, 5, generator=generator)
    weight = torch.randn(6, 5, 3, 3, generator=generator)
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    upsampled = F.interpolate(small, (10, 10), mode=mode, **kwargs)
    crop = 6 + 2 * (support - 1) if mode == "nearest" else 8
    expected = F.conv2d(upsampled[:, :, offset : offset + crop, offset : offset + crop], weight)
    upsample = resize_matrix(5, 2, mode, torch.float32, torch.device("cpu"))
    kernel = upsampled_conv_kernel(weight, upsample, offset, support)
    assert kernel.shape == (24, 5, support, support)
    rows = (crop - 2) // 2 + support - 1  # source rows the crop's outputs read
    got = F.pixel_shuffle(F.conv2d(small[:, :, :rows, :rows], kernel), 2)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_resize_matrix_is_the_upsampling():
    x = torch.randn(3, 7)
    matrix = resize_matrix(7, 2, "bilinear", torch.float32, torch.device("cpu"))
    expected = F.interpolate(x.view(3, 1, 7, 1), (14, 1), mode="bilinear", align_corners=False)
    torch.testing.assert_close(x @ matrix.t(), expected.view(3, 14), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="bilinear"):
        resize_matrix(7, 2, "bicubic", torch.float32, torch.device("cpu"))


def test_fold_batchnorms_keeps_the_function_of_every_pair():
    """One folding rule for the base network's pairs (Sequential, convN/bnN) and the refiner."""
    generator = torch.Generator().manual_seed(0)
    model = torch.nn.ModuleDict(
        {
            "sequential": torch.nn.Sequential(
                torch.nn.Conv2d(4, 6, 3, bias=False), torch.nn.BatchNorm2d(6, eps=1e-3)
            ),
            "decoder": Decoder([8, 6, 5, 4, 3], [4, 4, 4, 3]),
        }
    )
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.normal_(0, 1, generator=generator)
            bn.running_var.uniform_(0.1, 2, generator=generator)
            bn.weight.uniform_(0.5, 2, generator=generator)
            bn.bias.normal_(0, 1, generator=generator)
    x = torch.randn(3, 4, 9, 9, generator=generator)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorms(model)
    model.eval()
    before = model["sequential"](x)
    assert fold_batchnorms(model) == 1 + 3  # the Sequential's pair, the decoder's three
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model["sequential"](x), before, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
def test_add_pixel_shuffled_in_place(layout):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 6, 8, generator=generator)
    y = torch.randn(3, 20, 3, 4, generator=generator)
    if layout == "channels_last":
        x, y = x.contiguous(memory_format=CL), y.contiguous(memory_format=CL)
    expected = x + F.pixel_shuffle(y, 2)
    out = add_pixel_shuffled_(x, y)
    assert out is x
    assert torch.equal(out, expected)
