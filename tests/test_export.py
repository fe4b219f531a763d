"""mattingkit.apps.export: TorchScript and ONNX files that compute what PyTorch computes."""

from __future__ import annotations

import warnings

import pytest
import torch

from mattingkit import Matter, MattingBase, load_pretrained
from mattingkit.apps.export import (
    export_onnx,
    export_torchscript,
    random_pair,
    rebuild,
    validate_export,
)
from mattingkit.weights.pretrained import detect_format

SIZE = (128, 160)  # small: the whole file runs in well under a minute on 2 CPU cores
PIXELS = 4_000  # refine_sample_pixels that fits SIZE (20,480 pixels)


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still works
        return torch.jit.load(str(path))


@pytest.fixture(scope="module")
def model():
    return load_pretrained("mattingkit")


def test_torchscript_fp32_is_exact_and_loads_everywhere(model, tmp_path):
    # From a Matter: its model holds channels-last weights, the export must not care.
    path = export_torchscript(Matter(device="cpu"), tmp_path / "m.pt", refine_sample_pixels=PIXELS)
    assert detect_format(path) == "torchscript"
    check = validate_export(path, model, size=SIZE)
    assert check.kind == "torchscript" and set(check.max_abs) >= {"pha", "fgr", "err_sm", "ref_sm"}
    assert max(check.max_abs.values()) < 1e-5  # measured: 0.0 (same kernels)
    assert _load(path).refine_sample_pixels == PIXELS  # stored as the file's default
    assert model.refine_sample_pixels == 80_000  # the original is untouched
    # Loads with Matter and stays settable, as in the official export.
    matter = Matter(path, device="cpu", refine_sample_pixels=1_600)
    assert matter.scripted and 0 < matter(*random_pair(1, *SIZE)).ref.sum() <= 1_600


def test_torchscript_fp16(model, tmp_path):
    path = export_torchscript(model, tmp_path / "half.pt", precision="fp16")
    assert all(p.dtype == torch.float16 for p in _load(path).parameters())
    check = validate_export(path, model, size=(48, 64))
    # Measured at 128x160: mean 1.2e-4, max 5.3e-3 against fp32 PyTorch.
    assert check.mean_abs["pha"] < 2e-3 and check.max_abs["pha"] < 0.05


@pytest.mark.parametrize(("mode", "opset"), [("sampling", 12), ("thresholding", 17)])
def test_onnx_matches_pytorch(model, tmp_path, mode, opset):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    path = export_onnx(
        model, tmp_path / f"{mode}.onnx", opset=opset, refine_mode=mode,
        refine_sample_pixels=PIXELS, export_size=SIZE,
    )  # fmt: skip
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == opset
    ops = {node.op_type for node in proto.graph.node}
    assert {"RoiAlign", "ScatterElements"} <= ops  # the ONNX-friendly crop / replace
    assert ("TopK" in ops) == (mode == "sampling")  # thresholding: nothing TensorRT rejects
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["mattingkit.refine_mode"] == mode and meta["mattingkit.backbone"] == "mobilenetv2"
    # At the export size and at another one (dynamic axes). Measured max: 1.3e-6 and 6.3e-6.
    for size in (SIZE, (192, 256)):
        check = validate_export(path, model, size=size)
        assert check.kind == "onnx" and check.size == size
        assert check.max_abs["pha"] < 1e-3 and check.max_abs["fgr"] < 1e-3, str(check)
        assert check.max_abs["ref_sm"] == 0  # the same patches were refined
    assert model.refiner.patch_crop_method == "unfold"  # the original is untouched


def test_base_network_exports_too(tmp_path):
    pytest.importorskip("onnxruntime")
    base = MattingBase("mobilenetv2").eval()
    path = export_onnx(base, tmp_path / "base.onnx", export_size=(64, 96))
    check = validate_export(path, base, size=(96, 64))
    assert set(check.max_abs) == {"pha", "fgr", "err", "hid"}
    assert max(check.max_abs.values()) < 1e-3, str(check)


def test_bad_arguments_and_no_silent_overwrite(model, tmp_path):
    existing = tmp_path / "taken.pt"
    existing.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_torchscript(model, existing)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_onnx(model, existing, export_size=(288, 288))
    assert existing.read_bytes() == b"mine"
    with pytest.raises(ValueError, match="precision"):
        export_torchscript(model, tmp_path / "x.pt", precision="int8")
    with pytest.raises(TypeError, match="unknown setting"):
        export_torchscript(model, tmp_path / "x.pt", refine_kernel_size=1)
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "x.onnx", opset=11)
    with pytest.raises(ValueError, match="fewer than refine_sample_pixels"):
        export_onnx(model, tmp_path / "x.onnx", export_size=SIZE)
    with pytest.raises(ValueError, match="multiples of 4"):
        export_onnx(model, tmp_path / "x.onnx", export_size=(130, 160), refine_sample_pixels=PIXELS)
    with pytest.raises(TypeError, match="expected a Matter"):
        export_torchscript("resnet50", tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a TorchScript or ONNX"):
        validate_export(existing, model)
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".*.tmp"))


def test_rebuild_copies_weights_and_settings(model):
    model.refine_threshold = 0.3
    try:
        copy = rebuild(model, refine_patch_crop_method="gather")
    finally:
        model.refine_threshold = 0.1
    assert copy is not model and copy.refine_threshold == 0.3
    assert (
        copy.refiner.patch_crop_method == "gather" and model.refiner.patch_crop_method == "unfold"
    )
    src, bgr = random_pair(2, 64, 64, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(copy(src, bgr).pha, model(src, bgr).pha, atol=1e-5, rtol=0)
