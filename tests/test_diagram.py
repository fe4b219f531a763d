"""Architecture diagrams are measured from the model, so they follow it when it changes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from mattingkit import MattingBase, MattingRefine
from mattingkit.notebook import diagram


def inputs(size: tuple[int, int] = (64, 96)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, *size, generator=g), torch.rand(1, 3, *size, generator=g)


def texts(fig: plt.Figure) -> str:
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts) + fig.axes[0].get_title()


@pytest.mark.parametrize(
    ("backbone", "deepest", "skips"),
    [("mobilenetv2", 320, (16, 24, 32)), ("resnet50", 2048, (64, 256, 512))],
)
def test_base_network_stages_follow_the_backbone(backbone, deepest, skips):
    model = MattingBase(backbone).eval()
    stages = {s.name: s for s in diagram.base_network_stages(model, *inputs())}
    assert stages["input: frame + plate"].shape == (1, 6, 64, 96)
    assert stages["backbone out16"].shape == (1, deepest, 4, 6)
    assert [stages[f"backbone skip{n}"].channels for n in (2, 4, 8)] == list(skips)
    assert stages["ASPP"].shape == (1, 256, 4, 6)
    assert stages["ASPP"].note.startswith("dilations 3, 6, 9")
    conv1 = model.decoder.conv1
    assert stages["decoder.conv1"].channels == conv1.out_channels
    assert stages["decoder.conv1"].note == f"reads {conv1.in_channels} = 256 + {skips[2]}"
    assert stages["decoder.conv4"].shape == (1, 37, 64, 96)
    assert [stages[n].channels for n in ("α (pha)", "F − I residual", "error map E", "hidden H")] == [
        1, 3, 1, 32,
    ]  # fmt: skip
    fig = diagram.draw_base_network(model, *inputs())
    assert f"{deepest} × 4×6" in texts(fig) and backbone in texts(fig)
    plt.close(fig)


def test_base_network_of_a_refine_model_is_drawn_at_backbone_scale():
    model = MattingRefine("mobilenetv2", backbone_scale=1 / 4).eval()
    stages = diagram.base_network_stages(model, *inputs((128, 192)))
    assert stages[0].shape == (1, 6, 32, 48)


def test_refiner_stages_are_measured_on_the_chosen_patches():
    model = MattingRefine("mobilenetv2", refine_sample_pixels=16 * 30).eval()
    model.refine_prevent_oversampling = False
    stages = {s.name: s for s in diagram.refiner_stages(model, *inputs())}
    assert stages["refiner crops (1/2 res)"].shape == (30, 42, 8, 8)
    assert stages["refiner.conv1"].shape == (30, 24, 6, 6)
    assert stages["refiner.conv2"].shape == (30, 16, 4, 4)
    assert stages["refiner stage-2 input"].shape == (30, 22, 8, 8)
    assert stages["refiner.conv4"].shape == (30, 4, 4, 4)
    assert stages["output (pasted)"].shape == (1, 4, 64, 96)
    assert stages["coarse outputs"].shape == (1, 36, 16, 24)
    fig = diagram.draw_refiner(model, *inputs())
    assert "30 patches × 24 × 6×6" in texts(fig)
    plt.close(fig)


def test_refiner_diagram_needs_patches():
    model = MattingRefine("mobilenetv2", refine_mode="full").eval()
    with pytest.raises(ValueError, match="not 'full'"):
        diagram.refiner_stages(model, *inputs())
    model = MattingRefine("mobilenetv2", refine_mode="thresholding", refine_threshold=2.0).eval()
    with pytest.raises(ValueError, match="no patch was refined"):
        diagram.refiner_stages(model, *inputs())
