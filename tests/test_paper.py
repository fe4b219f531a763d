"""One home for each fact: the paper's tables, the backbone list, the HD/4K settings.

Every module that prints or uses a paper figure must read mattingkit.core.paper (or
mattingkit.core.backbones for the backbone list), never a copy of its own.
"""

from __future__ import annotations

import pytest

import mattingkit
from mattingkit.core import backbones, paper
from mattingkit.core.model import MattingRefine
from mattingkit.speed import profile
from mattingkit.training import loop as train
from mattingkit.weights import pretrained


def test_every_table_covers_exactly_the_backbones():
    assert set(paper.TABLE4) == set(paper.TABLE6) == set(backbones.BACKBONES)
    assert set(paper.TABLE3) == {(b, r) for b in backbones.BACKBONES for r in paper.RESOLUTIONS}


def test_the_backbone_list_is_one_object():
    assert pretrained.BACKBONES is backbones.BACKBONES
    assert train.BACKBONES is backbones.BACKBONES
    assert paper.BACKBONES is backbones.BACKBONES
    with pytest.raises(ValueError, match="mobilenetv2"):
        MattingRefine("vgg16")


def test_registry_and_profile_read_the_paper_tables():
    for (backbone, resolution), speed in paper.TABLE3.items():
        assert profile.PAPER_TABLE3[backbone, resolution.upper()] == (speed.fps, speed.gmacs)
        weights = pretrained.get_weights(backbone)
        assert weights.paper[f"fps_{resolution}"] == speed.fps
        assert weights.paper[f"gmacs_{resolution}"] == speed.gmacs
        assert weights.num_params == paper.TABLE4[backbone].num_params
        assert weights.paper["distinctions_sad"] == paper.TABLE6[backbone].sad
    for name, resolution in paper.RESOLUTIONS.items():
        size, scale, pixels = profile.PAPER_SETTINGS[name.upper()]
        assert (size, scale, pixels) == tuple(resolution)
        assert dict(pretrained.get_weights("resnet50").settings[name]) == resolution.settings()


def test_hd_and_4k_settings_and_the_size_rule():
    assert paper.RESOLUTIONS["hd"].settings() == {
        "backbone_scale": 0.25,
        "refine_sample_pixels": 80_000,
    }
    assert paper.RESOLUTIONS["4k"].settings() == {
        "backbone_scale": 0.125,
        "refine_sample_pixels": 320_000,
    }
    assert [paper.resolution_for(*s) for s in ((1080, 1920), (2048, 2048), (2160, 3840))] == [
        "hd",
        "hd",
        "4k",
    ]
    assert paper.official_settings(2049, 100) == paper.RESOLUTIONS["4k"].settings()
    assert paper.REFINE_SHARE == 80_000 / (1920 * 1080)


def test_tab_completion_lists_the_lazy_exports():
    names = dir(mattingkit)
    assert set(mattingkit.__all__) <= set(names)  # loaded or not, every export is listed
    assert {"MattingRefine", "load_pretrained", "pick_device", "gmacs", "TrainConfig"} <= set(names)
    assert names == sorted(names) and "__version__" in names


def test_scaled_settings_refine_the_papers_share_with_a_floor():
    # The paper's own sizes give exactly the paper's settings ...
    assert paper.scaled_settings(1080, 1920) == paper.RESOLUTIONS["hd"].settings()
    assert paper.scaled_settings(2160, 3840) == paper.RESOLUTIONS["4k"].settings()
    assert paper.REFINE_SHARE == 80_000 / (1920 * 1080) == 320_000 / (3840 * 2160)
    # ... other sizes the same share of their area, in whole 4x4 patches ...
    assert paper.refine_pixels_for(480, 640) == 11_856  # 741 patches, 3.86 %
    assert paper.refine_pixels_for(540, 960) == 20_000
    assert paper.refine_pixels_for(720, 1280) == 35_552
    assert paper.scaled_settings(2048, 2048)["backbone_scale"] == 0.25
    assert paper.scaled_settings(2049, 2048)["backbone_scale"] == 0.125
    for size in [(480, 640), (720, 1280), (1000, 1000), (3000, 4000)]:
        pixels = paper.refine_pixels_for(*size)
        assert pixels % 16 == 0
        assert abs(pixels - paper.REFINE_SHARE * size[0] * size[1]) <= 8
    # ... and never fewer than the floor: 320 x 240 would get 2,960.
    assert paper.refine_pixels_for(240, 320) == paper.MIN_REFINE_PIXELS == 4_096
    assert paper.refine_pixels_for(4, 4) == 4_096  # the refiner caps it at the patches there are
    for bad in [(0, 640), (480, -1), (480.5, 640)]:
        with pytest.raises(ValueError, match="positive integers"):
            paper.refine_pixels_for(*bad)
