"""Issue 14: what the shipped model is trained with beyond the official recipe.

Random extra patches for the refiner while training, the camera effects on top of the official
augmentations, exact plates for a share of the samples, the holes metric, and the generator's
whole-body people, sub-pixel hair, glasses and sheer cloth.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mattingkit.core.model import MattingRefine
from mattingkit.core.refiner import select_refinement_regions
from mattingkit.data import drawing as _drawing
from mattingkit.data.augment import _ground_shadow, augment_batch, camera_effects
from mattingkit.data.synthetic import make_sample
from mattingkit.training import metrics
from mattingkit.training.loop import TrainConfig, _make_batch, build_model

# --- the refiner sees easy patches too ---------------------------------------------------------


def _error_map(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 1, 12, 16, generator=torch.Generator().manual_seed(seed))


def test_random_share_keeps_k_patches_and_the_hardest_ones():
    err = _error_map()
    k = 64
    plain = select_refinement_regions(err, "sampling", k * 16, 0.1)
    torch.manual_seed(123)  # not the error map's own seed: that would replay its values
    mixed = select_refinement_regions(err, "sampling", k * 16, 0.1, random_share=0.5)
    assert mixed.sum(dim=(1, 2, 3)).tolist() == [k, k]  # still exactly k distinct patches
    # The hardest k/2 patches of each image are always among them.
    hardest = select_refinement_regions(err, "sampling", k // 2 * 16, 0.1)
    assert bool((mixed >= hardest).all())
    # ...and the other half is not simply the next-hardest ones.
    assert not torch.equal(mixed, plain)
    # Random patches reach the easy end of the error map too.
    easy = err <= err.flatten(1).median(dim=1).values.view(-1, 1, 1, 1)
    assert float((mixed * easy).sum()) > 0
    assert float((plain * easy).sum()) == 0


def test_random_share_zero_is_the_official_selection():
    err = _error_map(1)
    a = select_refinement_regions(err, "sampling", 50 * 16, 0.1)
    b = select_refinement_regions(err, "sampling", 50 * 16, 0.1, random_share=0.0)
    assert torch.equal(a, b)


def test_random_patches_only_while_training():
    model = build_model(TrainConfig(stage="refine", size=128, refine_random_share=0.5))
    assert model.refiner.train_random_share == 0.5
    src = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    bgr = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    model.eval()
    with torch.no_grad():
        torch.manual_seed(0)
        ref_a = model(src, bgr).ref_sm
        torch.manual_seed(1)
        ref_b = model(src, bgr).ref_sm
    assert torch.equal(ref_a, ref_b)  # eval: the error map alone decides
    model.train()
    with torch.no_grad():
        torch.manual_seed(0)
        ref_c = model(src, bgr).ref_sm
        torch.manual_seed(1)
        ref_d = model(src, bgr).ref_sm
    assert not torch.equal(ref_c, ref_d)  # train: a random share changes with the seed
    assert ref_c.sum() == ref_a.sum()


def test_official_model_has_no_random_share():
    assert MattingRefine("mobilenetv2").refiner.train_random_share == 0.0
    with pytest.raises(ValueError, match="refine-random-share"):
        TrainConfig(stage="refine", refine_random_share=1.5).validate()


def test_scripted_refiner_keeps_working():
    model = MattingRefine("mobilenetv2", refine_sample_pixels=16 * 20).eval()
    scripted = torch.jit.script(model)
    src, bgr = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(scripted(src, bgr)[0], model(src, bgr)[0])


# --- camera effects and exact plates ------------------------------------------------------------


def _batch(n: int = 4, size: int = 96) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    samples = [make_sample(i, (size, size), subject="person") for i in range(n)]
    return tuple(torch.stack([getattr(s, k) for s in samples]) for k in ("fgr", "pha", "bgr"))


def test_camera_effects_are_deterministic_and_in_range():
    fgr, pha, bgr = _batch()
    a = camera_effects(fgr, pha, bgr, torch.Generator().manual_seed(5))
    b = camera_effects(fgr, pha, bgr, torch.Generator().manual_seed(5))
    c = camera_effects(fgr, pha, bgr, torch.Generator().manual_seed(6))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
        assert x.shape == bgr.shape and float(x.min()) >= 0 and float(x.max()) <= 1
    assert not torch.equal(a[0], c[0])


def test_ground_shadow_lies_on_the_floor_of_a_standing_subject():
    pha = torch.zeros(1, 1, 64, 64)
    pha[:, :, 10:50, 28:36] = 1.0  # a standing bar whose lowest row is 49
    shadow = _ground_shadow(pha.repeat(8, 1, 1, 1), torch.Generator().manual_seed(0))
    assert shadow.shape == (8, 1, 64, 64)
    assert float(shadow.max()) <= 0.65 + 1e-6 and float(shadow.min()) >= 0
    # Squashed to at most 0.6 of the subject's height around the floor row: nothing at the top.
    assert float(shadow[:, :, :8].max()) == 0.0
    assert float(shadow.sum()) > 0


def test_scene_argument_puts_a_shadow_in_the_frame_but_not_in_the_plate():
    fgr, pha, bgr = _batch(2)
    scene = bgr * 0.5
    generator = torch.Generator().manual_seed(0)
    src, plate = augment_batch(fgr, pha, bgr, torch.Generator().manual_seed(0), scene=scene)
    src0, plate0 = augment_batch(fgr, pha, bgr, generator)
    assert torch.equal(plate, plate0)  # the plate never sees the scene's shadow
    outside = (pha == 0).expand_as(src)
    assert float(src[outside].mean()) < float(src0[outside].mean()) - 0.05
    with pytest.raises(ValueError, match="scene"):
        augment_batch(fgr, pha, bgr, scene=bgr[:, :, :10])


def test_jpeg_and_exposure_make_the_plate_differ_from_the_true_background():
    fgr, pha, bgr = _batch(8)
    src, plate = camera_effects(fgr, pha, bgr, torch.Generator().manual_seed(3))
    outside = (pha == 0).expand_as(src)
    # Even where there is no subject, frame and plate disagree by more than rounding.
    assert float((src - plate).abs()[outside].mean()) > 0.01


def test_exact_plate_share_one_gives_the_exact_composite():
    fgr, pha, bgr = _batch(3)
    batch = {"fgr": fgr, "pha": pha, "bgr": bgr}
    config = TrainConfig(exact_plate_share=1.0, camera_effects=True)
    src, plate, _, _ = _make_batch(batch, config, torch.Generator().manual_seed(0))
    assert torch.equal(plate, bgr)
    assert torch.equal(src, pha * fgr + (1 - pha) * bgr)
    config = TrainConfig(exact_plate_share=0.0, camera_effects=True)
    src, plate, _, _ = _make_batch(batch, config, torch.Generator().manual_seed(0))
    assert not torch.equal(plate, bgr)
    with pytest.raises(ValueError, match="exact-plate-share"):
        TrainConfig(exact_plate_share=-0.1).validate()


# --- the holes metric -----------------------------------------------------------------------------


def test_holes_is_the_share_of_the_opaque_subject_predicted_transparent():
    true = np.zeros((40, 40), np.float32)
    true[10:30, 10:30] = 1.0  # 400 opaque pixels
    true[9, 10:30] = 0.5  # a soft edge, not counted
    pred = true.copy()
    assert metrics.holes(pred, true) == 0.0
    pred[15:20, 15:23] = 0.2  # a 40-pixel hole
    assert metrics.holes(pred, true) == pytest.approx(40 / 400)
    pred[9, 10:30] = 0.0  # errors on the soft edge do not count as holes
    assert metrics.holes(pred, true) == pytest.approx(40 / 400)
    assert metrics.holes(pred, np.zeros_like(true)) == 0.0


# --- the generator ------------------------------------------------------------------------------


def test_hair_strands_cover_part_of_a_pixel():
    rng = np.random.default_rng(0)
    roots = np.stack([np.full(200, 64.0), np.full(200, 20.0)], 1)
    alpha = _drawing._strands(rng, 128, 128, roots, np.full(200, math.pi / 2), 60.0, 0.2, 0.5)
    strands = alpha[alpha > 0]
    # Drawn at twice the resolution and averaged down: most strand pixels are partly covered,
    # where they cross they thicken towards opaque, and nothing leaves [0, 1].
    assert np.mean(strands < 0.6) > 0.5
    assert strands.max() > 0.8
    assert alpha.min() >= 0 and alpha.max() <= 1


def test_some_people_are_seen_whole_with_a_gap_between_their_legs():
    found = 0
    for seed in range(40):
        pha = make_sample(seed, (192, 128), subject="person").pha[0].numpy()
        rows = np.flatnonzero(pha.max(axis=1) > 0.5)
        if rows.max() >= 186:  # the subject reaches the bottom edge: not a whole body
            continue
        # A whole body: somewhere in the lower part a row crosses the subject twice (two legs).
        lower = pha[rows.min() + int(0.75 * (rows.max() - rows.min())) : rows.max()]
        crossings = (np.diff((lower > 0.5).astype(int), axis=1) == 1).sum(axis=1)
        found += bool((crossings >= 2).any())
    assert found >= 5


def test_glasses_scarves_and_held_glasses_add_see_through_parts():
    def layers_of(fn, *args):
        layers = _drawing._Layers(160, 160)
        fn(np.random.default_rng(1), layers, 160, 160, *args)
        return layers.alpha

    on_head = lambda dx, dy: (80 + dx, 60 + dy)  # noqa: E731
    glasses = layers_of(_drawing._draw_glasses, on_head, 30.0, 0.0)
    lens = glasses[62, 90]  # the middle of the right lens
    assert 0.05 < lens < 0.5  # tinted glass, not opaque
    assert glasses.max() > 0.9  # the rims are opaque
    scarf = layers_of(_drawing._draw_scarf, 80.0, 70.0, 40.0, 25.0)
    woven = scarf[(scarf > 0.01)]
    assert woven.size > 100 and np.percentile(woven, 50) < 0.9  # a sheer weave
    glass = layers_of(_drawing._draw_held_glass, (80.0, 100.0), 30.0)
    assert 0.05 < np.median(glass[glass > 0.01]) < 0.5
