"""mattingkit.speed.profile: GMac counts reproduce the paper's Table 3; fps measures sanely."""

from __future__ import annotations

import time

import pytest
import torch

from mattingkit import MattingBase, MattingRefine
from mattingkit.speed.profile import (
    PAPER_SETTINGS,
    PAPER_TABLE3,
    FpsResult,
    fps,
    gmacs,
    gmacs_by_module,
    speed_test_model,
    time_forward,
)

# Multiply-accumulates of one refined 4x4 patch with 3x3 kernels, from the conv shapes:
# stage 1 on an 8x8 crop: 42->24 (6x6 out), 24->16 (4x4 out); stage 2 on 8x8: 22->12 (6x6), 12->4 (4x4).
MACS_PER_PATCH = 36 * 24 * 42 * 9 + 16 * 16 * 24 * 9 + 36 * 12 * 22 * 9 + 16 * 4 * 12 * 9


@pytest.mark.parametrize(("backbone", "resolution"), list(PAPER_TABLE3))
def test_gmacs_reproduce_paper_table3(backbone: str, resolution: str) -> None:
    with torch.device("meta"):  # no weights to initialise: the count only needs shapes
        model = speed_test_model(backbone, resolution)
    size = PAPER_SETTINGS[resolution][0]
    paper = PAPER_TABLE3[(backbone, resolution)][1]
    ours = gmacs(model, size)
    assert abs(ours - paper) / paper < 0.015, (
        f"{backbone} {resolution}: ours {ours:.2f}, paper {paper}"
    )


def test_refiner_cost_is_patches_times_cost_per_patch() -> None:
    with torch.device("meta"):
        model = speed_test_model("mobilenetv2", "4K")
    parts = gmacs_by_module(model, (2160, 3840))
    assert list(parts) == ["backbone", "aspp", "decoder", "refiner", "total"]
    assert parts["refiner"] == pytest.approx(320_000 // 16 * MACS_PER_PATCH / 1e9, rel=1e-9)
    assert sum(v for k, v in parts.items() if k != "total") == pytest.approx(parts["total"])
    assert all(v > 0 for v in parts.values())


def test_meta_count_equals_real_forward_count() -> None:
    torch.manual_seed(0)
    model = MattingRefine(
        "mobilenetv2",
        backbone_scale=1 / 4,
        refine_sample_pixels=16 * 50,
        refine_prevent_oversampling=False,
    ).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    on_meta = gmacs_by_module(model, (96, 128))
    on_cpu = gmacs_by_module(model, (96, 128), device="cpu")
    assert on_meta == pytest.approx(on_cpu, rel=1e-12)
    assert on_meta["refiner"] == pytest.approx(50 * MACS_PER_PATCH / 1e9)
    # The user's model is untouched: still real CPU tensors with the same values.
    after = model.state_dict()
    assert all(after[k].device.type == "cpu" and torch.equal(before[k], after[k]) for k in before)


def test_gmacs_scale_with_batch_and_area() -> None:
    with torch.device("meta"):
        base = MattingBase("mobilenetv2")
    one = gmacs(base, (128, 128))
    assert gmacs(base, (128, 128), batch=3) == pytest.approx(3 * one)
    assert gmacs(base, (256, 256)) == pytest.approx(4 * one, rel=0.02)


def test_gmacs_thresholding_needs_a_real_device() -> None:
    # A negative threshold selects every one of the (64/4)^2 = 256 patches.
    model = MattingRefine("mobilenetv2", refine_mode="thresholding", refine_threshold=-1.0).eval()
    with pytest.raises(ValueError, match="thresholding"):
        gmacs(model, (64, 64))
    parts = gmacs_by_module(model, (64, 64), device="cpu")
    assert parts["refiner"] == pytest.approx(256 * MACS_PER_PATCH / 1e9)


def test_gmacs_on_given_inputs_counts_the_patches_that_frame_selects() -> None:
    model = MattingRefine("mobilenetv2", refine_mode="thresholding").eval()
    src = torch.rand(1, 3, 64, 64)
    model.refine_threshold = 2.0  # errors are in [0, 1]: nothing is refined
    nothing = gmacs_by_module(model, inputs=(src, src))
    assert "refiner" not in nothing
    model.refine_threshold = -1.0  # everything is refined
    everything = gmacs_by_module(model, inputs=(src, src))
    assert everything["refiner"] == pytest.approx(256 * MACS_PER_PATCH / 1e9)
    assert everything["total"] - nothing["total"] == pytest.approx(everything["refiner"])
    assert gmacs(model, inputs=(src, src)) == pytest.approx(everything["total"])


def test_gmacs_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="same shape"):
        gmacs(MattingBase("mobilenetv2"), inputs=(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 12)))


@pytest.mark.parametrize("bad", [(64,), (0, 64), (64.5, 64)])
def test_gmacs_rejects_bad_size(bad) -> None:
    with pytest.raises(ValueError, match="size"):
        gmacs(MattingBase("mobilenetv2"), bad)


def test_speed_test_model_rejects_unknown_resolution() -> None:
    with pytest.raises(ValueError, match="8K"):
        speed_test_model("resnet50", "8K")


def test_fps_structure_on_cpu() -> None:
    torch.manual_seed(0)
    model = MattingRefine("mobilenetv2", refine_sample_pixels=320).train()
    result = fps(model, (32, 48), device="cpu", batch=2, warmup=0, repeats=4)
    assert isinstance(result, FpsResult)
    assert len(result.times_ms) == 4 and all(t > 0 for t in result.times_ms)
    assert result.min_ms <= result.median_ms <= result.max_ms
    assert 0 <= result.iqr_ms <= result.max_ms - result.min_ms
    assert result.ms_per_frame == pytest.approx(result.median_ms / 2)
    assert result.fps == pytest.approx(2000 / result.median_ms)
    assert (result.size, result.batch, result.device, result.precision) == (
        (32, 48),
        2,
        "cpu",
        "float32",
    )
    assert "fps" in str(result)
    # The caller's model keeps its mode, dtype and device.
    assert model.training
    assert next(model.parameters()).dtype == torch.float32


class Sleeper(torch.nn.Module):
    """Takes at least ``seconds`` per forward pass, whatever else the machine is doing."""

    calls_of_all_copies = 0

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.calls = 0

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        Sleeper.calls_of_all_copies += 1
        time.sleep(self.seconds)
        return src


def test_fps_times_the_whole_forward_pass() -> None:
    # Sleeping never ends early, so these lower bounds hold on a busy machine too.
    short = fps(Sleeper(0.01), (8, 8), device="cpu", warmup=1, repeats=3)
    long = fps(Sleeper(0.05), (8, 8), device="cpu", warmup=1, repeats=3)
    assert short.min_ms >= 10 and long.min_ms >= 50
    assert long.fps <= 20 and short.fps <= 100


def test_fps_runs_warmup_and_repeats_on_a_copy() -> None:
    model = Sleeper(0.0)
    before = Sleeper.calls_of_all_copies
    result = fps(model, (8, 8), device="cpu", warmup=2, repeats=5)
    assert Sleeper.calls_of_all_copies - before == 2 + 5
    assert len(result.times_ms) == 5
    assert model.calls == 0  # a copy ran; the caller's module was left alone


def test_fps_float16_needs_cuda() -> None:
    with pytest.raises(ValueError, match="CUDA"):
        fps(MattingBase("mobilenetv2"), (32, 32), device="cpu", precision="float16")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "int8"}, "precision"),
        ({"backend": "onnx"}, "backend"),
        ({"repeats": 0}, "repeats"),
        ({"batch": 0}, "batch"),
    ],
)
def test_fps_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fps(MattingBase("mobilenetv2"), (32, 32), device="cpu", **kwargs)


def test_fps_fast_mode_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATTINGKIT_FAST", "1")
    result = fps(TinyMatting(), (32, 32), device="cpu")
    assert len(result.times_ms) == 3


class TinyMatting(torch.nn.Module):
    """A scriptable stand-in with the matting call signature: model(src, bgr)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(6, 1, 3, padding=1)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([src, bgr], dim=1)).sigmoid()


class NotScriptable(TinyMatting):
    def forward(self, src, bgr, **options):  # **kwargs cannot be scripted
        return super().forward(src, bgr)


def test_fps_torchscript_backend() -> None:
    result = fps(TinyMatting(), (16, 16), device="cpu", warmup=0, repeats=2, backend="torchscript")
    assert result.backend == "torchscript" and len(result.times_ms) == 2


def test_fps_torchscript_failure_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="NotScriptable cannot be compiled"):
        fps(NotScriptable(), (16, 16), device="cpu", repeats=1, backend="torchscript")


def test_time_forward_counts_the_call() -> None:
    src = torch.rand(1, 3, 16, 16)
    assert time_forward(TinyMatting(), src, src) > 0
