"""Behaviour of mattingkit's model beyond parity: any input size, clear errors, TorchScript."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import mattingkit
from mattingkit.core.model import RefineOutput


@pytest.fixture(scope="module")
def model() -> mattingkit.MattingRefine:
    torch.manual_seed(0)
    model = mattingkit.MattingRefine("mobilenetv2", refine_sample_pixels=2_000).eval()
    with torch.no_grad():  # push the error channel into (0, 1) so patch selection has work
        model.decoder.conv4.bias[4] = 0.3
    return model


def test_paper_parameter_counts():
    """Table 4 of the paper: parameters of the full MattingRefine model."""
    expected = {"resnet50": 40_247_703, "resnet101": 59_239_831, "mobilenetv2": 5_006_839}
    for backbone, count in expected.items():
        model = mattingkit.MattingRefine(backbone)
        assert sum(p.numel() for p in model.parameters()) == count
    assert sum(p.numel() for p in model.refiner.parameters()) == 15_444


def test_outputs_unpack_like_the_official_tuple_and_read_by_name(model):
    src, bgr = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        out = model(src, bgr)
    pha, fgr = out[:2]
    assert isinstance(out, RefineOutput) and len(out) == 6
    assert pha is out.pha and fgr is out.fgr
    assert out.pha_sm.shape == (1, 1, 16, 24) and out.ref_sm.shape == (1, 1, 16, 24)
    for tensor in (out.pha, out.fgr, out.pha_sm, out.fgr_sm, out.err_sm):
        assert 0 <= tensor.min() and tensor.max() <= 1


@pytest.mark.parametrize("size", [(97, 131), (66, 90), (101, 64)])
def test_sizes_not_divisible_by_four_are_padded_and_cropped_back(model, size):
    height, width = size
    src, bgr = torch.rand(2, 3, height, width), torch.rand(2, 3, height, width)
    with torch.no_grad():
        out = model(src, bgr)
        padded_h, padded_w = -(-height // 4) * 4, -(-width // 4) * 4
        pad = (0, padded_w - width, 0, padded_h - height)
        reference = model(F.pad(src, pad, mode="replicate"), F.pad(bgr, pad, mode="replicate"))
    assert out.pha.shape == (2, 1, height, width)
    assert out.fgr.shape == (2, 3, height, width)
    assert torch.equal(out.pha, reference.pha[:, :, :height, :width])
    assert torch.equal(out.fgr, reference.fgr[:, :, :height, :width])


def test_size_mismatch_names_both_sizes(model):
    with pytest.raises(ValueError, match=r"src is 64x96 .* bgr is 60x96"):
        model(torch.rand(1, 3, 64, 96), torch.rand(1, 3, 60, 96))
    with pytest.raises(ValueError, match="same size"):
        mattingkit.MattingBase("mobilenetv2")(torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 92))


@pytest.mark.parametrize(
    ("src", "message"),
    [
        (torch.rand(3, 64, 64), "unsqueeze"),
        (torch.rand(1, 4, 64, 64), "3 RGB channels"),
        ((torch.rand(1, 3, 64, 64) * 255).to(torch.uint8), "255"),
    ],
)
def test_bad_inputs_get_clear_errors(model, src, message):
    with pytest.raises(ValueError, match=message):
        model(src, src)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(backbone="resnet18"), "backbone must be one of"),
        (dict(backbone="mobilenetv2", backbone_scale=0.75), "backbone_scale"),
        (dict(backbone="mobilenetv2", refine_mode="patches"), "refine_mode"),
        (dict(backbone="mobilenetv2", refine_kernel_size=5), "refine_kernel_size"),
        (dict(backbone="mobilenetv2", refine_patch_crop_method="slice"), "crop_method"),
    ],
)
def test_bad_settings_get_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mattingkit.MattingRefine(**kwargs)


def test_small_input_with_many_sample_pixels_does_not_crash():
    """The official topk asks for more patches than a small frame has; ours clamps k."""
    model = mattingkit.MattingRefine("mobilenetv2", refine_sample_pixels=80_000).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert out.pha.shape == (1, 1, 32, 32)


def test_torchscript_matches_eager_and_keeps_settable_attributes(model):
    scripted = torch.jit.script(model)
    src, bgr = torch.rand(1, 3, 96, 128), torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        eager = model(src, bgr)
        script = scripted(src, bgr)
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(eager, script))
        # The attributes the official TorchScript exports expose can be changed after scripting.
        scripted.refine_mode = "thresholding"
        scripted.refine_threshold = 0.0
        everything_with_error = scripted(src, bgr)[5].sum().item()
        scripted.refine_threshold = 2.0
        nothing = scripted(src, bgr)[5].sum().item()
        scripted.refine_mode = "sampling"
        scripted.refine_prevent_oversampling = False
        scripted.refine_sample_pixels = 16 * 7
        seven = scripted(src, bgr)[5].sum().item()
        scripted.backbone_scale = 0.5
        coarse = scripted(src, bgr)[2]
    assert everything_with_error > 0 and nothing == 0 and seven == 7
    assert coarse.shape[-2:] == (48, 64)


def test_train_mode_then_eval_mode_round_trip():
    """Training needs batches > 1 (BatchNorm); a batch of 2 trains, eval then predicts one image."""
    model = mattingkit.MattingBase("mobilenetv2").train()
    out = model(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    out.pha.mean().backward()
    assert model.decoder.conv4.weight.grad is not None
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)).pha.shape == (1, 1, 64, 64)
