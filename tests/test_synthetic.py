"""Tests for mattingkit.data.synthetic: exact, deterministic synthetic matting samples."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mattingkit.data import drawing as _drawing
from mattingkit.data import synthetic
from mattingkit.data.synthetic import (
    MattingSample,
    SyntheticMattingDataset,
    load_sample,
    make_background,
    make_clip,
    make_foreground,
    make_sample,
)
from mattingkit.io import read_image

SIZE = (96, 128)


def _enclosed_zero_region(pha: torch.Tensor) -> bool:
    """True when some fully transparent region does not touch the image border (a hole)."""
    zero = (pha[0].numpy() <= 0).astype(np.uint8)
    count, labels = cv2.connectedComponents(zero, connectivity=4)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    return any(label not in border for label in range(1, count) if (labels == label).sum() > 4)


def test_same_seed_is_bit_identical_and_seeds_differ():
    a, b = make_sample(3, SIZE), make_sample(3, SIZE)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    c = make_sample(4, SIZE)
    assert not torch.equal(a.src, c.src)
    assert not torch.equal(a.pha, c.pha)


def test_shapes_dtypes_ranges_and_exact_matting_equation():
    for seed in range(6):
        s = make_sample(seed, SIZE)
        assert isinstance(s, MattingSample)
        assert s.src.shape == s.bgr.shape == s.fgr.shape == (3, *SIZE)
        assert s.pha.shape == (1, *SIZE)
        for t in s:
            assert t.dtype == torch.float32
            assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
            assert torch.isfinite(t).all()
        assert torch.equal(s.src, s.pha * s.fgr + (1 - s.pha) * s.bgr)


def test_alpha_has_fractional_values_opaque_core_and_holes():
    samples = [make_sample(seed, (128, 128)) for seed in range(24)]
    for s in samples:
        fractional = ((s.pha > 0.02) & (s.pha < 0.98)).float().mean()
        assert fractional > 0, "every subject has anti-aliased or soft edges"
    # Most subjects also have a fully opaque core.
    assert sum(bool((s.pha == 1).any()) for s in samples) >= 12
    assert any(_enclosed_zero_region(s.pha) for s in samples), "expected some holes"


def test_subject_is_neither_empty_nor_everything():
    coverage = [float(make_sample(seed, SIZE).pha.mean()) for seed in range(12)]
    assert all(0.005 < c < 0.95 for c in coverage)


def test_building_blocks_return_numpy_images():
    rng = np.random.default_rng(0)
    bgr = make_background(rng, (40, 60))
    fgr, pha = make_foreground(rng, (40, 60), background=bgr)
    assert bgr.shape == fgr.shape == (40, 60, 3) and pha.shape == (40, 60)
    assert bgr.dtype == fgr.dtype == pha.dtype == np.float32


@pytest.mark.parametrize("size", [(4, 64), (64,), "big", (64, -3)])
def test_bad_size_is_a_clear_error(size):
    with pytest.raises(ValueError, match="size"):
        make_sample(0, size)


def test_dataset_is_deterministic_per_index():
    ds = SyntheticMattingDataset(5, size=(32, 48), seed=11)
    assert len(ds) == 5
    item = ds[2]
    assert set(item) == {"fgr", "pha", "bgr"}
    assert item["fgr"].shape == (3, 32, 48) and item["pha"].shape == (1, 32, 48)
    again = SyntheticMattingDataset(5, size=(32, 48), seed=11)[2]
    assert all(torch.equal(item[k], again[k]) for k in item)
    assert not torch.equal(ds[1]["pha"], item["pha"])
    other_seed = SyntheticMattingDataset(5, size=(32, 48), seed=12)[2]
    assert not torch.equal(other_seed["bgr"], item["bgr"])
    assert torch.equal(ds[-1]["pha"], ds[4]["pha"])
    with pytest.raises(IndexError):
        ds[5]
    with_src = SyntheticMattingDataset(5, size=(32, 48), seed=11, with_src=True)[2]
    assert torch.equal(with_src["src"], item["pha"] * item["fgr"] + (1 - item["pha"]) * item["bgr"])


def test_dataset_works_with_a_dataloader():
    loader = torch.utils.data.DataLoader(SyntheticMattingDataset(4, size=(32, 32)), batch_size=2)
    batch = next(iter(loader))
    assert batch["fgr"].shape == (2, 3, 32, 32) and batch["pha"].shape == (2, 1, 32, 32)


def test_clip_has_static_plate_moving_subject_and_exact_frames():
    clip = make_clip(5, size=(48, 64), frames=6)
    assert clip.src.shape == (6, 3, 48, 64) and clip.pha.shape == (6, 1, 48, 64)
    assert clip.bgr.shape == (3, 48, 64)
    for t in range(6):
        assert torch.equal(clip.src[t], clip.pha[t] * clip.fgr[t] + (1 - clip.pha[t]) * clip.bgr)
    assert not torch.equal(clip.pha[0], clip.pha[-1]), "the subject moves"
    again = make_clip(5, size=(48, 64), frames=6)
    assert torch.equal(clip.src, again.src)


def test_load_sample_regenerates_when_files_are_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(synthetic.SAMPLE_SPECS, "tiny", (1, (40, 56), None))
    monkeypatch.setattr(synthetic, "_samples_dir", lambda: tmp_path)
    generated = load_sample("tiny")
    assert generated.pha.shape == (1, 40, 56)
    assert torch.equal(
        generated.src, generated.pha * generated.fgr + (1 - generated.pha) * generated.bgr
    )
    # 8-bit values, like the committed PNG files.
    assert torch.equal(torch.round(generated.fgr * 255) / 255, generated.fgr)

    # Write the files as scripts/make_assets.py does; reading them back gives the same sample.
    for part in ("fgr", "pha", "bgr"):
        image = (getattr(generated, part).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        if image.shape[2] == 3:
            image = image[:, :, ::-1]
        cv2.imwrite(str(tmp_path / f"tiny_{part}.png"), image)
    from_files = load_sample("tiny")
    for x, y in zip(generated, from_files):
        assert torch.equal(x, y)


def test_load_sample_unknown_name():
    with pytest.raises(ValueError, match="portrait"):
        load_sample("no-such-sample")


def test_photo_sources_include_the_matplotlib_portrait():
    pytest.importorskip("matplotlib")
    assert "grace_hopper" in synthetic.photo_sources()


# --------------------------------------------------------------------------------------
# Committed assets (assets/samples) stay in sync with the generator
# --------------------------------------------------------------------------------------

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "samples"


def _manifest() -> dict:
    path = SAMPLES / "manifest.json"
    if not path.is_file():
        pytest.skip("assets/samples has not been generated")
    manifest = json.loads(path.read_text())
    if manifest["photo_sources"] != list(synthetic.photo_sources()):
        pytest.skip(
            "the assets were generated with other photo sources "
            f"({manifest['photo_sources']}); they cannot be reproduced bit for bit here"
        )
    return manifest


def _quantized(t: torch.Tensor) -> torch.Tensor:
    return torch.round(t.clamp(0, 1) * 255) / 255


@pytest.mark.parametrize("name", sorted(synthetic.SAMPLE_SPECS))
def test_committed_samples_are_reproduced_by_the_generator(name, tmp_path, monkeypatch):
    _manifest()
    from_files = load_sample(name)
    monkeypatch.setattr(synthetic, "_samples_dir", lambda: tmp_path)  # force regeneration
    regenerated = load_sample(name)
    for part in ("fgr", "pha", "bgr", "src"):
        assert torch.equal(getattr(from_files, part), getattr(regenerated, part)), part
    # The stored frame is the full-precision frame, rounded once.
    stored_src = read_image(SAMPLES / f"{name}_src.png")
    assert torch.equal(stored_src, _quantized(synthetic.generate_named_sample(name).src))


def test_committed_triangulation_pair_is_reproduced(tmp_path, monkeypatch):
    _manifest()
    from_files = synthetic.load_triangulation_sample()
    monkeypatch.setattr(synthetic, "_samples_dir", lambda: tmp_path)
    regenerated = synthetic.load_triangulation_sample()
    for x, y in zip(from_files, regenerated):
        assert torch.equal(x, y)
    tri = from_files
    assert torch.equal(tri.src1, tri.pha * tri.fgr + (1 - tri.pha) * tri.bgr1)
    assert float((tri.bgr1 - tri.bgr2).abs().sum(0).min()) > 0.3, "plates differ everywhere"


def test_manifest_checksums_and_folder_size():
    manifest = _manifest()
    total = 0
    for name, entry in manifest["files"].items():
        data = (SAMPLES / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        total += len(data)
    assert total < 6_000_000
    assert {"portrait_src.png", "tri_src2.png", "clip_src.mp4"} <= set(manifest["files"])


def test_committed_clip_decodes_close_to_the_exact_clip():
    _manifest()
    av = pytest.importorskip("av")
    with av.open(str(SAMPLES / "clip_src.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    exact = synthetic.load_clip()
    assert len(frames) == exact.src.shape[0]
    decoded = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    assert decoded.shape == exact.src.shape
    assert float((decoded - exact.src).abs().mean()) < 0.03


def test_asset_writer_keeps_different_files_unless_overwrite(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_assets", Path(__file__).resolve().parents[1] / "scripts" / "make_assets.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    writer = module.AssetWriter(tmp_path, overwrite=False)
    writer.image("a.png", image)
    writer.image("a.png", image)
    assert writer.written == ["a.png"] and writer.unchanged == ["a.png"]
    writer.image("a.png", 1 - image)
    assert writer.conflicts == ["a.png"]
    assert torch.equal(read_image(tmp_path / "a.png"), _quantized(image))
    forced = module.AssetWriter(tmp_path, overwrite=True)
    forced.image("a.png", 1 - image)
    assert torch.equal(read_image(tmp_path / "a.png"), _quantized(1 - image))


def test_works_without_any_photo_source(monkeypatch):
    monkeypatch.setattr(_drawing, "_photos", lambda: {"bg": {}, "tex": {}})
    for seed in range(8):
        s = make_sample(seed, (48, 64))
        assert torch.equal(s.src, s.pha * s.fgr + (1 - s.pha) * s.bgr)
        assert 0 < float(s.pha.mean()) < 1


def test_some_subjects_wear_the_background_colour():
    """The hard case: a subject whose colour is close to the plate's mean colour."""
    close = 0
    for seed in range(30):
        s = make_sample(seed, (64, 64))
        inside = s.pha[0] > 0.99
        if inside.sum() < 20:
            continue
        subject_mean = s.fgr[:, inside].mean(1)
        plate_mean = s.bgr.flatten(1).mean(1)
        close += bool((subject_mean - plate_mean).abs().max() < 0.12)
    assert close >= 2


def test_subject_argument_forces_people_or_blobs():
    with pytest.raises(ValueError, match="subject"):
        make_sample(0, (32, 32), subject="cat")
    person = make_sample(1, (96, 96), subject="person")
    blobs = make_sample(1, (96, 96), subject="blobs")
    assert not torch.equal(person.pha, blobs.pha)
    assert torch.equal(person.bgr, blobs.bgr), "the plate is drawn before the subject"


def test_triangulation_sample_is_exact_and_plates_differ():
    tri = synthetic.make_triangulation_sample(3, (48, 64))
    assert torch.equal(tri.src1, tri.pha * tri.fgr + (1 - tri.pha) * tri.bgr1)
    assert torch.equal(tri.src2, tri.pha * tri.fgr + (1 - tri.pha) * tri.bgr2)
    assert float((tri.bgr1 - tri.bgr2).abs().sum(0).min()) > 0.3
