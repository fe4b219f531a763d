"""Tests for mattingkit.weights.pretrained, offline, with weights files the tests make themselves."""

from __future__ import annotations

import dataclasses
import pickle
import warnings
from pathlib import Path

import pytest
import torch

from mattingkit import MattingBase, MattingRefine
from mattingkit.core.paper import official_settings
from mattingkit.weights.download import DownloadError, drive_file_url
from mattingkit.weights.pretrained import (
    RELEASE_URL,
    WeightsFormatError,
    detect_format,
    get_weights,
    infer_backbone,
    list_pretrained,
    load_pretrained,
    load_torchscript,
    read_state_dict,
)

official = pytest.importorskip("BackgroundMattingV2.model")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def official_mbv2_state() -> dict[str, torch.Tensor]:
    """A state_dict from the official implementation, with non-default values everywhere."""
    torch.manual_seed(0)
    model = official.MattingRefine("mobilenetv2")
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.uniform_(0.5, 1.5)
    return model.state_dict()


@pytest.fixture()
def mbv2_file(tmp_path, official_mbv2_state) -> Path:
    path = tmp_path / "pytorch_mobilenetv2.pth"
    torch.save(official_mbv2_state, path)
    return path


@pytest.fixture()
def no_shipped(tmp_path, monkeypatch):
    """An assets folder without the shipped weights."""
    (tmp_path / "assets" / "weights").mkdir(parents=True)
    monkeypatch.setenv("MATTINGKIT_ASSETS", str(tmp_path / "assets"))
    return tmp_path / "assets" / "weights" / "mattingkit_mobilenetv2_fp16.pth"


def _offline(source: str, dest: Path) -> None:
    raise ConnectionError(f"Failed to resolve '{source.split('/')[2]}'")


def _weights_equal(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(model.state_dict()[k], v.float()) for k, v in state.items())


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------
def test_registry_entries_and_aliases():
    names = list_pretrained()
    assert {"pytorch_resnet50", "pytorch_resnet101", "pytorch_mobilenetv2"} <= set(names)
    assert "torchscript_resnet50_fp32" in list_pretrained("torchscript")
    assert get_weights("resnet50") is get_weights("pytorch_resnet50.pth")
    r50 = get_weights("resnet50")
    assert r50.drive_id == "1ErIAsB_miVhYL9GDlYUmfbqlV293mSYf"
    assert r50.urls == (f"{RELEASE_URL}/pytorch_resnet50.pth",)
    assert r50.paper["fps_hd"] == 60.0 and r50.settings["4k"]["refine_sample_pixels"] == 320_000
    assert get_weights("torchscript_resnet50_fp32").drive_id == "1-t9SO--H4WmP7wUl1tVNNeDkq47hjbv4"
    assert not get_weights("onnx_mobilenetv2_4k").verified
    assert get_weights("mattingkit").is_shipped
    with pytest.raises(KeyError, match="pytorch_resnet50"):
        get_weights("resnet18")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r50.backbone = "resnet101"  # type: ignore[misc]


def test_the_names_the_command_checks_before_importing_torch_are_the_registry():
    from mattingkit.weights import names as names

    assert [Path(f).stem for f in names.FILENAMES] == list_pretrained()
    assert [get_weights(n).filename for n in list_pretrained()] == list(names.FILENAMES)
    for alias, target in names.ALIASES.items():
        assert get_weights(alias).name == target == names.resolve_name(alias.upper())
    assert names.resolve_name("resnt50") is None
    for weights in map(get_weights, list_pretrained()):  # one copy of where files come from
        if not weights.is_shipped:
            sources = names.official_sources(weights.filename)
            assert (weights.drive_id, weights.drive_folder_id, weights.urls) == (
                sources["drive_id"], sources["drive_folder_id"], sources["urls"]
            )  # fmt: skip
            assert weights.sha256 is None and weights.size is None  # or the light path needs them
    assert names.fetch_registry_file("shipped") == get_weights("shipped").local_path()


@pytest.mark.parametrize("backbone", ["mobilenetv2", "resnet50"])
def test_num_params_match_the_model(backbone):
    model = MattingRefine(backbone)
    assert sum(p.numel() for p in model.parameters()) == get_weights(backbone).num_params


def test_official_settings():
    assert official_settings(1080, 1920) == {
        "backbone_scale": 0.25,
        "refine_sample_pixels": 80_000,
    }
    assert official_settings(2160, 3840)["backbone_scale"] == 0.125


# --------------------------------------------------------------------------------------
# Loading state dicts
# --------------------------------------------------------------------------------------
def test_official_state_dict_loads_via_fake_downloader(tmp_path, official_mbv2_state):
    calls = []

    def fake(source: str, dest: Path) -> None:
        calls.append(source)
        torch.save(official_mbv2_state, dest)

    model = load_pretrained("mobilenetv2", downloader=fake, cache_dir=tmp_path / "cache",
                            progress=False, refine_sample_pixels=1_000)  # fmt: skip
    assert calls == [drive_file_url(get_weights("mobilenetv2").drive_id)]
    assert isinstance(model, MattingRefine) and not model.training
    assert model.refine_sample_pixels == 1_000
    assert _weights_equal(model, official_mbv2_state)
    # Second call: cached, no download.
    load_pretrained("mobilenetv2", downloader=fake, cache_dir=tmp_path / "cache", progress=False)
    assert len(calls) == 1


def test_local_path_and_inferred_backbone(mbv2_file, official_mbv2_state):
    model = load_pretrained(str(mbv2_file))
    assert _weights_equal(model, official_mbv2_state)
    assert infer_backbone(official_mbv2_state) == "mobilenetv2"
    with torch.no_grad():
        pha, fgr = model(torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48))[:2]
    assert pha.shape == (1, 1, 32, 48) and fgr.shape == (1, 3, 32, 48)


def test_resnet_depth_is_inferred():
    r50 = official.MattingRefine("resnet50").state_dict()
    r101_like = dict(r50)
    for i in range(6, 23):  # only the key names matter for inference
        r101_like[f"backbone.layer3.{i}.conv1.weight"] = torch.zeros(1)
    assert infer_backbone(r50) == "resnet50"
    assert infer_backbone(r101_like) == "resnet101"
    with pytest.raises(WeightsFormatError, match="backbone"):
        infer_backbone({"conv.weight": torch.zeros(1)})


def test_wrong_backbone_names_both(mbv2_file):
    with pytest.raises(WeightsFormatError, match=r"mobilenetv2.*'resnet50'"):
        load_pretrained(mbv2_file, backbone="resnet50")


def test_fp16_checkpoint_in_a_training_wrapper(tmp_path, official_mbv2_state):
    half = {k: v.half() if v.is_floating_point() else v for k, v in official_mbv2_state.items()}
    path = tmp_path / "mine.pth"
    torch.save({"model_state": half, "epoch": 3}, path)
    model = load_pretrained(path)
    assert next(model.parameters()).dtype == torch.float32
    assert _weights_equal(model, half)


def test_base_checkpoint_loads_into_matting_base(tmp_path):
    state = official.MattingBase("mobilenetv2").state_dict()
    torch.save(state, tmp_path / "base.pth")
    model = load_pretrained(tmp_path / "base.pth")
    assert type(model) is MattingBase


def test_state_dict_that_does_not_fit(tmp_path, official_mbv2_state):
    broken = dict(official_mbv2_state)
    del broken["refiner.conv1.weight"]
    broken["extra.weight"] = torch.zeros(1)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(WeightsFormatError, match=r"1 missing keys.*1 unexpected keys"):
        load_pretrained(tmp_path / "broken.pth")


# --------------------------------------------------------------------------------------
# Files that are not state dicts
# --------------------------------------------------------------------------------------
def test_legacy_format_loads_and_truncated_legacy_is_explained(tmp_path, official_mbv2_state):
    path = tmp_path / "old.pth"
    torch.save(official_mbv2_state, path, _use_new_zipfile_serialization=False)
    assert detect_format(path) == "legacy_pickle"
    assert _weights_equal(load_pretrained(path), official_mbv2_state)
    data = path.read_bytes()
    for cut in (100, len(data) // 2):
        (tmp_path / "cut.pth").write_bytes(data[:cut])
        with pytest.raises(WeightsFormatError, match="truncated or damaged"):
            load_pretrained(tmp_path / "cut.pth")


def test_truncated_file(tmp_path, mbv2_file):
    data = mbv2_file.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    assert detect_format(cut) == "corrupt_zip"
    with pytest.raises(WeightsFormatError, match="truncated"):
        load_pretrained(cut)


def test_text_html_empty_and_lfs_files(tmp_path):
    cases = {
        "notes.pth": (b"just some notes\n", "text file"),
        "quota.pth": (
            b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>"
            b"<body>Too many users have viewed or downloaded this file recently.</body></html>",
            "quota",
        ),
        "empty.pth": (b"", "empty"),
        "lfs.pth": (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n", "git lfs"),
    }  # fmt: skip
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(WeightsFormatError, match=f"(?i){message}"):
            load_pretrained(tmp_path / name)


def test_onnx_file_is_recognised(tmp_path):
    # Start of an ONNX ModelProto: ir_version (field 1) then producer_name "pytorch".
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07\x12\x07pytorch\x1a\x052.1.0" + bytes(100))
    assert detect_format(tmp_path / "m.onnx") == "onnx"
    with pytest.raises(WeightsFormatError, match="onnxruntime"):
        load_pretrained(tmp_path / "m.onnx")
    with pytest.raises(WeightsFormatError, match="onnxruntime"):
        load_pretrained("onnx_mobilenetv2_hd")


class _Payload:
    """Unpickling this would create a marker file: it must never happen."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, legacy):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pth"
    obj = {"backbone.features.0.0.weight": torch.zeros(1), "x": _Payload(marker)}
    if legacy:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    else:
        torch.save(obj, path)
    with pytest.raises(WeightsFormatError, match="refused"):
        load_pretrained(path)
    assert not marker.exists()


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a file nor a registry name"):
        load_pretrained(tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="backbone must be one of"):
        load_pretrained("mobilenetv2", backbone="vgg")


# --------------------------------------------------------------------------------------
# TorchScript
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scripted_file(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    model = MattingRefine("mobilenetv2").eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(model)
    path = tmp_path_factory.mktemp("ts") / "torchscript_mobilenetv2_fp32.pth"
    scripted.save(str(path))
    return path


def test_torchscript_archive_loads_with_settings(scripted_file):
    assert detect_format(scripted_file) == "torchscript"
    model = load_pretrained(scripted_file, backbone_scale=0.125, refine_sample_pixels=320_000)
    assert isinstance(model, torch.jit.ScriptModule)
    assert model.backbone_scale == 0.125 and model.refine_sample_pixels == 320_000
    with torch.no_grad():
        pha = model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))[0]
    assert pha.shape == (1, 1, 64, 64)
    with pytest.raises(TypeError, match="fixed at export"):
        load_torchscript(scripted_file, refine_kernel_size=1)
    with pytest.raises(WeightsFormatError, match="resnet50"):
        load_pretrained(scripted_file, backbone="resnet50")


def test_torchscript_where_state_dict_expected(scripted_file):
    with pytest.raises(
        WeightsFormatError, match=r"TorchScript archive, not a state_dict.*jit\.load"
    ):
        read_state_dict(scripted_file)


def test_state_dict_where_torchscript_expected(mbv2_file):
    with pytest.raises(WeightsFormatError, match=r"state_dict.*not a TorchScript.*load_state_dict"):
        load_torchscript(mbv2_file)


def test_registry_kind_mismatch(tmp_path, official_mbv2_state, no_shipped):
    """A state_dict saved under a TorchScript name (e.g. a manual copy) is explained."""

    def fake(source: str, dest: Path) -> None:
        torch.save(official_mbv2_state, dest)

    with pytest.raises(WeightsFormatError, match="expected a torchscript file"):
        load_pretrained("torchscript_mobilenetv2_fp32", downloader=fake, cache_dir=tmp_path,
                        progress=False)  # fmt: skip


# --------------------------------------------------------------------------------------
# Offline fallback
# --------------------------------------------------------------------------------------
def test_fallback_to_shipped_model(tmp_path, monkeypatch, official_mbv2_state, capsys):
    weights = tmp_path / "assets" / "weights"
    weights.mkdir(parents=True)
    shipped = {k: v.half() if v.is_floating_point() else v for k, v in official_mbv2_state.items()}
    torch.save(shipped, weights / "mattingkit_mobilenetv2_fp16.pth")
    monkeypatch.setenv("MATTINGKIT_ASSETS", str(tmp_path / "assets"))

    with pytest.warns(
        UserWarning, match="Could not fetch the official pytorch_resnet50.pth"
    ) as caught:
        model = load_pretrained("resnet50", downloader=_offline, cache_dir=tmp_path / "cache",
                                progress=False)  # fmt: skip
    assert isinstance(model, MattingRefine) and _weights_equal(model, shipped)
    notices = [str(w.message) for w in caught if "mattingkit's own MobileNetV2" in str(w.message)]
    assert len(notices) == 1  # the notice comes once ...
    assert str(tmp_path / "cache" / "pytorch_resnet50.pth") in notices[0]  # where to put a copy
    # Three sources failed, two of them on drive.google.com: each reason once, on one line.
    assert notices[0].count("cannot resolve host drive.google.com") == 1
    assert "cannot resolve host github.com" in notices[0] and "\n" not in notices[0]
    printed = capsys.readouterr()
    assert "mattingkit's own" not in printed.out + printed.err  # ... and not a second time
    assert load_pretrained("mattingkit").refine_sample_pixels == 80_000


def test_no_fallback_raises(tmp_path, monkeypatch):
    weights = tmp_path / "assets" / "weights"
    weights.mkdir(parents=True)
    (weights / "mattingkit_mobilenetv2_fp16.pth").write_bytes(b"never read")
    monkeypatch.setenv("MATTINGKIT_ASSETS", str(tmp_path / "assets"))
    with pytest.raises(DownloadError, match="pytorch_resnet50.pth"):
        load_pretrained("resnet50", allow_fallback=False, downloader=_offline,
                        cache_dir=tmp_path / "cache", progress=False)  # fmt: skip


def test_fallback_missing_too_raises(tmp_path, no_shipped):
    with pytest.raises(DownloadError, match="fallback.*missing too"):
        load_pretrained("resnet50", downloader=_offline, cache_dir=tmp_path / "cache",
                        progress=False)  # fmt: skip
    with pytest.raises(FileNotFoundError, match="train_shipped_model"):
        load_pretrained("mattingkit")


def test_shipped_card_lines_print_the_cards_own_numbers():
    """Chapters print the shipped model's held-out table from its card instead of quoting it."""
    from mattingkit.weights.names import shipped_card, shipped_card_lines

    card = shipped_card()
    lines = shipped_card_lines()
    assert f"{card['eval_count']} samples" in lines[0]
    for (key, scores), row in zip(card["metrics"].items(), lines[2:]):  # one row each, in order
        plate = key.split("/")[1]
        assert row.startswith(plate), (key, row)
        assert f"{scores['mse'] * 1e3:.1f}" in row and f"{scores['sad']:.2f}" in row, (key, row)
    assert len(lines) == 2 + len(card["metrics"])
    for name in ("previous", "earlier"):  # the models before it, each its own column
        assert f"{name} MSE" in lines[1]
        none = card[f"{name}_metrics"]["none/clean"]["mse"] * 1e3
        assert f"{none:.1f}" in next(row for row in lines if "no refinement" in row)
    assert "previous MSE" not in shipped_card_lines(previous=False)[1]
