"""The scale sweep of ``scripts/diagnose_shipped_model.py`` (issue: holes grow at full resolution).

The shipped base network was trained on 128 x 128 inputs only. Run so that its input stays near
that size whatever the frame (``mattingkit.core.paper.fixed_base_settings``: a 192 px short
side), it sees the same subject
at the same pixel size at every resolution, so a model that is fine at the small size must stay
fine at a larger one: the holes (the share of the truly opaque subject predicted below 0.5)
must not grow with the resolution. The paper's fixed 1/4 gives it 256 px at 1024 and there the
holes were measured three times those at 512 (6.4 % vs 2.2 %, four subjects): that is the
issue's fault 1.
"""

from __future__ import annotations

import pytest
import torch

from mattingkit.core.matting import difference_key
from mattingkit.training import metrics
from mattingkit.weights.pretrained import load_pretrained


@pytest.fixture(scope="module")
def subjects(diagnose):
    """Three held-out subjects rendered at 1024 px and area-downsampled to 512 px."""
    return diagnose.heldout_subjects(3, [512, 1024])


def _holes(diagnose, model, samples, scale: str) -> float:
    values = [
        metrics.holes(diagnose.predict(model, s["src"], s["bgr"], scale, "sampling"), s["pha"])
        for s in samples
    ]
    return sum(values) / len(values)


def test_backbone_scale_choices(diagnose):
    assert diagnose.backbone_scale("paper", 1080, 1920) == 0.25
    assert diagnose.backbone_scale("paper", 2160, 3840) == 0.125
    assert diagnose.backbone_scale("base128", 1080, 1920) * 1080 == pytest.approx(128)
    assert diagnose.backbone_scale("base128", 2048, 2048) * 2048 == pytest.approx(128)
    assert diagnose.backbone_scale("base256", 256, 256) == 0.5  # at most 1/2 (MattingRefine)
    assert diagnose.backbone_scale("0.2", 100, 100) == 0.2
    assert diagnose.backbone_scale("preset", 1080, 1920) * 1080 == pytest.approx(192)


def test_heldout_subjects_are_the_same_at_every_size(subjects):
    small, large = subjects[512], subjects[1024]
    for a, b in zip(small, large):
        down = torch.nn.functional.interpolate(b["pha"][None], size=(512, 512), mode="area")[0]
        assert torch.allclose(a["pha"], down)
        # The same subject: the same share of the frame is opaque.
        assert float((a["pha"] > 0.5).float().mean()) == pytest.approx(
            float((b["pha"] > 0.5).float().mean()), abs=0.01
        )


@pytest.mark.slow
def test_holes_do_not_grow_with_resolution_when_the_base_input_stays_in_range(diagnose, subjects):
    if not diagnose.WEIGHTS.is_file():
        pytest.skip("the shipped weights are not in assets/weights")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = load_pretrained(diagnose.WEIGHTS)
        small = _holes(diagnose, model, subjects[512], "preset")
        large = _holes(diagnose, model, subjects[1024], "preset")
    finally:
        torch.set_num_threads(threads)
    keying = sum(
        metrics.holes(difference_key(s["src"], s["bgr"], 0.1, 0.1), s["pha"]) for s in subjects[512]
    ) / len(subjects[512])
    # Fine at the small size: no more holes than difference keying (measured 2.6 % vs 2.6 %).
    assert small <= max(keying, 0.01) * 1.5, (small, keying)
    # ... and not more at twice the resolution (measured 2.7 %; the paper's 1/4 gives 6.3 %).
    assert large <= 1.25 * small + 0.005, (small, large)


def test_fixed_base_settings_keep_the_base_input_size():
    from mattingkit.core.paper import SHIPPED_BASE_SIDE, fixed_base_settings, refine_pixels_for

    for height, width in ((512, 512), (1080, 1920), (2048, 2048), (2160, 3840)):
        settings = fixed_base_settings(height, width)
        assert settings["backbone_scale"] * min(height, width) == pytest.approx(SHIPPED_BASE_SIDE)
        assert settings["refine_sample_pixels"] == refine_pixels_for(height, width)
    assert fixed_base_settings(256, 256)["backbone_scale"] == 0.5  # MattingRefine's limit
    assert fixed_base_settings(1080, 1920, base_side=128)["backbone_scale"] == 128 / 1080
    with pytest.raises(ValueError, match="base_side"):
        fixed_base_settings(1080, 1920, base_side=0)
