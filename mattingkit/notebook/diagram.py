"""Chapters 03-04. Architecture diagrams drawn from the model itself.

A hand-drawn architecture figure drifts from the code the day a layer changes. These
diagrams are measured instead: one real forward pass with forward hooks records the
input and output shape of every stage (the paper's Fig. 2, blue and green parts), and
the boxes, labels and channel sums are written from those shapes. Change the model and
the picture changes with it.

* :func:`base_network_stages` / :func:`draw_base_network`: backbone, ASPP and decoder of
  a :class:`~mattingkit.core.model.MattingBase` or :class:`~mattingkit.core.model.MattingRefine`
  (chapter 03), as a U: the encoder going down, the decoder coming back up, one skip
  connection per scale.
* :func:`refiner_stages` / :func:`draw_refiner`: the refiner's two stages on the P
  chosen patches (chapter 04).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from torch import nn

from mattingkit.core.model import MattingBase, MattingRefine

__all__ = [
    "Stage",
    "capture_shapes",
    "base_network_stages",
    "draw_base_network",
    "refiner_stages",
    "draw_refiner",
]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Stage:
    """One box of a diagram: a tensor the model really produced, and where it came from."""

    name: str  # what the box is called in the chapter, e.g. "skip4" or "decoder.conv2"
    shape: Shape  # (B or P, C, H, W) as measured
    note: str = ""  # one line under the shape, e.g. "in 152 = 128 + 24"

    @property
    def channels(self) -> int:
        return self.shape[1]

    def size_text(self) -> str:
        lead, channels, height, width = self.shape
        patches = f"{lead:,} patches × " if self.name.startswith("refiner") else ""
        return f"{patches}{channels} × {height}×{width}"


def _shape(value: Any) -> Shape:
    if isinstance(value, torch.Tensor):
        return tuple(int(v) for v in value.shape)
    raise TypeError(f"expected a tensor, got {type(value).__name__}")


def capture_shapes(
    modules: Mapping[str, nn.Module], run: Callable[[], Any]
) -> dict[str, tuple[list[Any], Any]]:
    """Call ``run()`` once and return, per module, its (inputs, output) of the first call.

    Inputs are the positional arguments the module received; the output is whatever it
    returned (tensors, tuples of tensors). Hooks are always removed again.
    """
    seen: dict[str, tuple[list[Any], Any]] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            seen.setdefault(name, (list(inputs), output))

        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in modules.items()]
    try:
        with torch.inference_mode():
            run()
    finally:
        for handle in handles:
            handle.remove()
    missing = sorted(set(modules) - set(seen))
    if missing:
        raise RuntimeError(f"these modules never ran in the forward pass: {', '.join(missing)}")
    return seen


def base_network_stages(model: MattingBase, src: torch.Tensor, bgr: torch.Tensor) -> list[Stage]:
    """The base network's stages, measured on ``model(src, bgr)``. Chapter 03.

    Returns, in order: the 6-channel input, the backbone's skip2/skip4/skip8/out16 maps,
    the ASPP output, the decoder's four convolutions (with the concatenated input channels
    they read, skip included) and the four predictions split from the 37 channels.
    For a ``MattingRefine`` the base network runs at ``backbone_scale``; that is what is shown.
    """
    decoder = model.decoder
    convs = {f"decoder.conv{i}": getattr(decoder, f"conv{i}") for i in range(1, 5)}
    seen = capture_shapes(
        {"backbone": model.backbone, "aspp": model.aspp, **convs}, lambda: model(src, bgr)
    )
    (network_input,), features = seen["backbone"]
    stages = [Stage("input: frame + plate", _shape(network_input), "src 3 + bgr 3 channels")]
    for name in ("skip2", "skip4", "skip8", "out16"):
        shape = _shape(getattr(features, name))
        stages.append(Stage(f"backbone {name}", shape, f"1/{_scale(network_input, shape)}"))
    aspp_out = _shape(seen["aspp"][1])
    rates = [branch[0].dilation[0] for branch in list(model.aspp.convs)[1:4]]
    stages.append(Stage("ASPP", aspp_out, "dilations " + ", ".join(map(str, rates)) + " + pool"))
    previous = aspp_out[1]
    skips = [stages[3], stages[2], stages[1], stages[0]]  # skip8, skip4, skip2, input
    for (name, (inputs, output)), skip in zip(((n, seen[n]) for n in convs), skips):
        read = _shape(inputs[0])[1]
        stages.append(Stage(name, _shape(output), f"reads {read} = {previous} + {skip.channels}"))
        previous = _shape(output)[1]
    raw = seen["decoder.conv4"][1]
    height, width = raw.shape[2:]
    split = {"α (pha)": 1, "F − I residual": 3, "error map E": 1, "hidden H": 32}
    offset = 0
    for name, channels in split.items():
        span = f"{offset}" if channels == 1 else f"{offset}–{offset + channels - 1}"
        stages.append(Stage(name, (raw.shape[0], channels, height, width), f"channel {span}"))
        offset += channels
    if offset != raw.shape[1]:
        raise RuntimeError(f"the decoder outputs {raw.shape[1]} channels, not {offset}")
    return stages


def _scale(reference: torch.Tensor, shape: Shape) -> int:
    return round(reference.shape[2] / shape[2])


def refiner_stages(model: MattingRefine, src: torch.Tensor, bgr: torch.Tensor) -> list[Stage]:
    """The refiner's stages on the patches it chose for ``model(src, bgr)``. Chapter 04.

    Needs ``refine_mode`` "sampling" or "thresholding" with at least one chosen patch
    (``"full"`` convolves whole frames instead of patches).
    """
    if model.refine_mode == "full":
        raise ValueError("draw the refiner in 'sampling' or 'thresholding' mode, not 'full'")
    refiner = model.refiner
    convs = {f"refiner.conv{i}": getattr(refiner, f"conv{i}") for i in range(1, 5)}
    modules = {"refiner": refiner, **convs}
    try:
        seen = capture_shapes(modules, lambda: model(src, bgr))
    except RuntimeError as error:
        raise ValueError(f"no patch was refined, so there is nothing to draw ({error})") from None
    frame, _, coarse_pha, coarse_fgr, _, hidden = seen["refiner"][0]
    final_pha, final_fgr, _ = seen["refiner"][1]
    parts = [_shape(coarse_pha)[1], _shape(coarse_fgr)[1], _shape(hidden)[1]]
    coarse_note = f"α {parts[0]} + residual {parts[1]} + hidden {parts[2]}"
    batch, _, height, width = _shape(frame)
    stage1_in = _shape(seen["refiner.conv1"][0][0])
    stage2_in = _shape(seen["refiner.conv3"][0][0])
    stage1_out = _shape(seen["refiner.conv2"][1])
    images = stage2_in[1] - stage1_out[1]
    return [
        Stage("coarse outputs", (batch, sum(parts), *_shape(hidden)[2:]), coarse_note),
        Stage("frame + plate", (batch, images, height, width), "full resolution"),
        Stage("resampled to 1/2", (batch, stage1_in[1], height // 2, width // 2), "concatenated"),
        Stage("refiner crops (1/2 res)", stage1_in, "8×8 around each chosen patch"),
        Stage("refiner.conv1", _shape(seen["refiner.conv1"][1]), "3×3, no padding"),
        Stage("refiner.conv2", stage1_out, "3×3, no padding"),
        Stage("refiner nearest ×2", (*stage1_out[:2], *stage2_in[2:]), "back to 8×8"),
        Stage("refiner crops (full res)", (stage2_in[0], images, *stage2_in[2:]), "frame + plate"),
        Stage("refiner stage-2 input", stage2_in, f"{stage1_out[1]} + {images} channels"),
        Stage("refiner.conv3", _shape(seen["refiner.conv3"][1]), "3×3, no padding"),
        Stage("refiner.conv4", _shape(seen["refiner.conv4"][1]), "α + foreground residual"),
        Stage(
            "output (pasted)",
            (batch, _shape(final_pha)[1] + _shape(final_fgr)[1], height, width),
            "upsampled coarse + patches",
        ),
    ]


# --- drawing ------------------------------------------------------------------------------

_COLORS = {
    "input": "#dddddd",
    "backbone": "#9ecae1",
    "aspp": "#fdae6b",
    "decoder": "#a1d99b",
    "output": "#fcbba1",
    "refiner": "#c7e9c0",
    "coarse": "#9ecae1",
}


BOX_WIDTH = 2.5  # wide enough for the longest measured label, "1,250 patches × 42 × 8×8"
EDGE = BOX_WIDTH / 2 + 0.02  # arrows start and end just outside a box


def _box(
    ax: plt.Axes, x: float, y: float, stage: Stage, color: str, width: float = BOX_WIDTH
) -> None:
    corner = (x - width / 2, y - 0.34)
    style = {"boxstyle": "round,pad=0.02", "facecolor": color, "edgecolor": "0.25"}
    ax.add_patch(FancyBboxPatch(corner, width, 0.68, linewidth=1.0, **style))
    text = f"{stage.name}\n{stage.size_text()}"
    if stage.note:
        text += f"\n{stage.note}"
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5)


def _arrow(
    ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], **style: Any
) -> None:
    props = {"arrowstyle": "-|>", "color": "0.3", "lw": 1.2, "shrinkA": 0, "shrinkB": 0}
    ax.annotate("", xy=end, xytext=start, arrowprops=props | style)


def draw_base_network(model: MattingBase, src: torch.Tensor, bgr: torch.Tensor) -> Figure:
    """The base network as a U, every box measured on ``model(src, bgr)``. Chapter 03."""
    stages = base_network_stages(model, src, bgr)
    encoder, aspp, decoder, outputs = stages[:5], stages[5], stages[6:10], stages[10:]
    fig, ax = plt.subplots(figsize=(13, 7.4))
    levels = len(encoder)  # input, 1/2, 1/4, 1/8, 1/16
    y_of = {level: 2.0 * (levels - 1 - level) for level in range(levels)}
    x_enc, x_dec, x_out = 0.0, 6.0, 9.2
    for level, stage in enumerate(encoder):
        _box(ax, x_enc, y_of[level], stage, _COLORS["input" if level == 0 else "backbone"])
        if level:
            _arrow(ax, (x_enc, y_of[level - 1] - 0.36), (x_enc, y_of[level] + 0.36))
    _box(ax, 3.0, y_of[levels - 1], aspp, _COLORS["aspp"])
    _arrow(ax, (x_enc + EDGE, y_of[levels - 1]), (3.0 - EDGE, y_of[levels - 1]))
    for step, stage in enumerate(decoder):  # conv1 at 1/8 ... conv4 at full resolution
        level = levels - 2 - step
        _box(ax, x_dec, y_of[level], stage, _COLORS["decoder"])
        start = (3.0 + EDGE, y_of[levels - 1]) if step == 0 else (x_dec, y_of[level + 1] + 0.36)
        _arrow(ax, start, (x_dec, y_of[level] - 0.36))
        skip = encoder[level]
        _arrow(ax, (x_enc + EDGE, y_of[level]), (x_dec - EDGE, y_of[level]), ls="--", color="0.5")
        label = f"skip: {skip.channels} ch at {skip.shape[2]}×{skip.shape[3]}"
        ax.text(3.0, y_of[level] + 0.12, label, ha="center", fontsize=8, color="0.35")
    for index, stage in enumerate(outputs):
        y = y_of[0] + 0.9 - 0.95 * index
        _box(ax, x_out, y, stage, _COLORS["output"], width=2.0)
        _arrow(ax, (x_dec + EDGE, y_of[0]), (x_out - 1.02, y), color="0.5", lw=0.8)
    ax.set(xlim=(-1.4, 10.4), ylim=(y_of[levels - 1] - 0.8, y_of[0] + 1.5))
    ax.axis("off")
    ax.set_title(
        f"{type(model).__name__}({_backbone_name(model)!r}): shapes measured by forward hooks "
        "(channels × height×width)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _backbone_name(model: MattingBase) -> str:
    """Which backbone a model has, read from its modules (ResNet-101 has 23 blocks in layer3)."""
    if hasattr(model.backbone, "features"):
        return "mobilenetv2"
    return "resnet101" if len(model.backbone.layer3) == 23 else "resnet50"


def draw_refiner(model: MattingRefine, src: torch.Tensor, bgr: torch.Tensor) -> Figure:
    """The refiner's two stages on the chosen patches, measured on ``model(src, bgr)``. Chapter 04."""
    stages = refiner_stages(model, src, bgr)
    fig, ax = plt.subplots(figsize=(13.5, 5.2))
    coarse, frame, resampled, crops1, conv1, conv2 = stages[:6]
    upsampled, crops2, joined, conv3, conv4, pasted = stages[6:]
    row1, row2, row0 = 2.2, 0.2, 4.0
    _box(ax, 0.0, row0, coarse, _COLORS["coarse"])
    _box(ax, 3.0, row0, frame, _COLORS["input"])
    _box(ax, 1.5, row1, resampled, _COLORS["input"])
    _arrow(ax, (0.0, row0 - 0.36), (1.2, row1 + 0.36))
    _arrow(ax, (3.0, row0 - 0.36), (1.8, row1 + 0.36))
    chain1 = [crops1, conv1, conv2]
    for index, stage in enumerate(chain1):
        _box(ax, 4.5 + 3.0 * index, row1, stage, _COLORS["refiner"])
    _arrow(ax, (1.5 + EDGE, row1), (4.5 - EDGE, row1))
    for index in range(1, len(chain1)):
        _arrow(ax, (4.5 + 3.0 * (index - 1) + EDGE, row1), (4.5 + 3.0 * index - EDGE, row1))
    _box(ax, 0.0, row2, upsampled, _COLORS["refiner"])
    _arrow(
        ax, (10.5, row1 - 0.36), (0.6, row2 + 0.36), color="0.5", connectionstyle="arc3,rad=0.08"
    )
    _box(ax, 3.0, row2 - 1.2, crops2, _COLORS["input"])
    _box(ax, 3.0, row2, joined, _COLORS["refiner"])
    _arrow(ax, (EDGE, row2), (3.0 - EDGE, row2))
    _arrow(ax, (3.0, row2 - 1.2 + 0.36), (3.0, row2 - 0.36))
    for index, stage in enumerate([conv3, conv4, pasted]):
        color = _COLORS["output"] if stage is pasted else _COLORS["refiner"]
        _box(ax, 6.0 + 3.0 * index, row2, stage, color)
        previous_x = 3.0 if index == 0 else 6.0 + 3.0 * (index - 1)
        _arrow(ax, (previous_x + EDGE, row2), (6.0 + 3.0 * index - EDGE, row2))
    ax.text(13.45, row1, "stage 1\n(half resolution)", ha="left", va="center", fontsize=9)
    ax.text(13.45, row2 - 0.6, "stage 2\n(full resolution)", ha="left", va="center", fontsize=9)
    ax.set(xlim=(-1.4, 15.4), ylim=(row2 - 1.8, row0 + 0.7))
    ax.axis("off")
    ax.set_title(
        f"Refiner ({model.refine_mode}): shapes measured by forward hooks; "
        f"{conv1.shape[0]:,} patches this frame",
        fontsize=10,
    )
    fig.tight_layout()
    return fig
