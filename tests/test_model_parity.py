"""mattingkit's model equals the official Background Matting V2 model, output for output.

The reference is the official implementation from PyPI (``backgroundmattingv2==1.0``).
Both models get the same random weights (BatchNorm statistics and the output biases are
perturbed so that alpha, error map and patch selection are all non-trivial) and must
agree to 1e-5 in eval mode. The refiner does not depend on the backbone, so every refine
mode, kernel size and crop/replace implementation is swept on the cheapest backbone
(MobileNetV2) and each ResNet gets one refine case, plus the state_dict layout and the base
network of every backbone.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import mattingkit
from mattingkit.core.model import BaseOutput, RefineOutput

official = pytest.importorskip("BackgroundMattingV2.model")

BACKBONES = ["mobilenetv2", "resnet50", "resnet101"]
TOLERANCE = 1e-5


def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give BatchNorm layers non-trivial statistics and bias the outputs into (0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                shape = module.running_mean.shape
                module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(shape, generator=generator) * 0.1)
        # Channel 0 is alpha, 4 is the error map: centre them so clamping does not flatten them.
        model.decoder.conv4.weight.mul_(0.2)
        model.decoder.conv4.bias[0] = 0.5
        model.decoder.conv4.bias[4] = 0.3
    return model.eval()


class _OfficialWeights(dict):
    """Random official weights per (backbone, refiner kernel size), built when first asked for."""

    def __missing__(self, key: tuple[str, int]) -> dict[str, torch.Tensor]:
        name, kernel = key
        seed = BACKBONES.index(name) * 2 + kernel
        torch.manual_seed(seed)
        model = official.MattingRefine(name, refine_kernel_size=kernel)
        self[key] = randomise(model, seed=seed).state_dict()
        return self[key]


@pytest.fixture(scope="module")
def official_state_dicts() -> dict[tuple[str, int], dict[str, torch.Tensor]]:
    return _OfficialWeights()


def make_pair(
    batch: int, height: int, width: int, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    bgr = torch.rand(batch, 3, height, width, generator=generator)
    src = bgr.clone()
    # A "subject": a bright block over part of the frame, so frame and plate differ.
    src[:, :, height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = torch.rand(
        batch, 3, 1, 1, generator=generator
    )
    return src, bgr


def max_difference(ours: tuple, theirs: tuple) -> float:
    assert len(ours) == len(theirs)
    worst = 0.0
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        worst = max(worst, (a - b).abs().max().item())
    return worst


REFINE_SETTINGS = [
    dict(
        refine_mode=mode,
        refine_kernel_size=kernel,
        refine_patch_crop_method=crop,
        refine_patch_replace_method=replace,
    )
    for mode, kernel, (crop, replace) in itertools.product(
        ["full", "sampling", "thresholding"],
        [1, 3],
        [
            ("unfold", "scatter_nd"),
            ("roi_align", "scatter_element"),
            ("gather", "scatter_nd"),
            ("unfold", "scatter_element"),
        ],
    )
]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_state_dict_layout_is_identical(backbone, official_state_dicts):
    ours = mattingkit.MattingRefine(backbone).state_dict()
    theirs = official_state_dicts[backbone, 3]
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    mattingkit.MattingRefine(backbone).load_state_dict(theirs, strict=True)


# Every setting on MobileNetV2; one case per ResNet (the refiner is the same module on all three).
REFINE_CASES = [("mobilenetv2", settings) for settings in REFINE_SETTINGS] + [
    # sampling, 3x3, unfold + scatter_nd: the released models' settings
    ("resnet50", dict(zip(REFINE_SETTINGS[0], ("sampling", 3, "unfold", "scatter_nd")))),
    # thresholding, 3x3, roi_align + scatter_element: the ONNX-friendly path
    (
        "resnet101",
        dict(zip(REFINE_SETTINGS[0], ("thresholding", 3, "roi_align", "scatter_element"))),
    ),
]
assert all(settings in REFINE_SETTINGS for _, settings in REFINE_CASES)


@pytest.mark.parametrize(
    ("backbone", "settings"),
    REFINE_CASES,
    ids=[f"{b}-" + "-".join(map(str, s.values())) for b, s in REFINE_CASES],
)
def test_refine_outputs_match_official(backbone, settings, official_state_dicts):
    kwargs = dict(backbone_scale=0.25, refine_sample_pixels=2_000, refine_threshold=0.3, **settings)
    theirs = official.MattingRefine(backbone, **kwargs).eval()
    state = official_state_dicts[backbone, settings["refine_kernel_size"]]
    theirs.load_state_dict(state)
    ours = mattingkit.MattingRefine(backbone, **kwargs).eval()
    ours.load_state_dict(state, strict=True)
    # gather/scatter_element index batches wrongly in the official code, so compare them at batch 1.
    batch = 1 if "gather" in settings.values() or "scatter_element" in settings.values() else 2
    src, bgr = make_pair(batch, 96, 128)
    with torch.no_grad():
        expected = theirs(src, bgr)
        got = ours(src, bgr)
    assert isinstance(got, RefineOutput)
    if settings["refine_mode"] != "full":
        refined = got.ref_sm.sum().item()
        assert 0 < refined < got.ref_sm.numel(), "the test must exercise partial refinement"
    assert max_difference(got, expected) <= TOLERANCE


@pytest.mark.parametrize("backbone", BACKBONES)
def test_base_outputs_match_official(backbone, official_state_dicts):
    theirs = official.MattingBase(backbone).eval()
    state = {
        k: v for k, v in official_state_dicts[backbone, 3].items() if not k.startswith("refiner.")
    }
    theirs.load_state_dict(state)
    ours = mattingkit.MattingBase(backbone).eval()
    ours.load_state_dict(state, strict=True)
    src, bgr = make_pair(2, 64, 96)
    with torch.no_grad():
        got = ours(src, bgr)
        expected = theirs(src, bgr)
    assert isinstance(got, BaseOutput)
    assert got.hid.shape == (2, 32, 64, 96)
    assert max_difference(got, expected) <= TOLERANCE


def test_batched_gather_and_scatter_element_equal_unfold(official_state_dicts):
    """Ours index every image of a batch correctly (the official pixel indices ignore channels)."""
    state = official_state_dicts["mobilenetv2", 3]
    src, bgr = make_pair(3, 96, 128, seed=5)
    results = []
    for crop, replace in [
        ("unfold", "scatter_nd"),
        ("gather", "scatter_element"),
        ("roi_align", "scatter_element"),
    ]:
        model = mattingkit.MattingRefine(
            "mobilenetv2",
            refine_sample_pixels=2_000,
            refine_patch_crop_method=crop,
            refine_patch_replace_method=replace,
        ).eval()
        model.load_state_dict(state)
        with torch.no_grad():
            results.append(model(src, bgr))
    assert max_difference(results[1], results[0]) <= TOLERANCE
    assert max_difference(results[2], results[0]) <= TOLERANCE
