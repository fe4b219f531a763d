"""Exercise checks of chapters 03 and 04: accept right answers, reject typical wrong ones."""

from __future__ import annotations

import math

import pytest
import torch

from mattingkit.notebook import exercises


def ceil_halving(height, width):
    for _ in range(4):
        height, width = math.ceil(height / 2), math.ceil(width / 2)
    return height, width


def test_deepest_size(capsys: pytest.CaptureFixture) -> None:
    assert exercises.check_deepest_size(ceil_halving)
    assert not exercises.check_deepest_size(lambda h, w: (h // 16, w // 16))
    assert "round up" in capsys.readouterr().out
    assert not exercises.check_deepest_size(lambda h, w: (h // 32, w // 32))
    assert not exercises.check_deepest_size(lambda h, w: None)


def test_conv_parameters(capsys: pytest.CaptureFixture) -> None:
    assert exercises.check_conv_parameters(lambda i, o, k, b: o * i * k * k + (o if b else 0))
    assert not exercises.check_conv_parameters(lambda i, o, k, b: o * i * k * k)
    assert "bias" in capsys.readouterr().out
    assert not exercises.check_conv_parameters(lambda i, o, k, b: 1 / 0)


def right_split(raw, src):
    return (
        raw[:, :1].clamp(0, 1),
        (src + raw[:, 1:4]).clamp(0, 1),
        raw[:, 4:5].clamp(0, 1),
        raw[:, 5:].relu(),
    )


def test_split_outputs(capsys: pytest.CaptureFixture) -> None:
    assert exercises.check_split_outputs(right_split)

    def unclamped(raw, src):
        return (raw[:, :1], *right_split(raw, src)[1:])

    def no_residual(raw, src):
        pha, _, err, hid = right_split(raw, src)
        return pha, raw[:, 1:4].clamp(0, 1), err, hid

    assert not exercises.check_split_outputs(unclamped)
    assert not exercises.check_split_outputs(no_residual)
    assert "fgr" in capsys.readouterr().out
    assert not exercises.check_split_outputs(lambda raw, src: right_split(raw, src)[:3])


def test_patch_count(capsys: pytest.CaptureFixture) -> None:
    assert exercises.check_patch_count(lambda p, h, w: min(p // 16, (h // 4) * (w // 4)))
    assert not exercises.check_patch_count(lambda p, h, w: p // 16)
    assert "cap it" in capsys.readouterr().out
    assert not exercises.check_patch_count(lambda p, h, w: p / 16)


def test_select_worst() -> None:
    def right(err, k):
        flat = err.flatten(1)
        out = torch.zeros_like(flat).scatter_(1, flat.topk(k, dim=1).indices, 1.0)
        return out.view_as(err)

    def smallest(err, k):
        return right(-err, k)

    assert exercises.check_select_worst(right)
    assert not exercises.check_select_worst(smallest)
    assert not exercises.check_select_worst(lambda err, k: (err > 0.5).float())


def test_macs_per_patch(capsys: pytest.CaptureFixture) -> None:
    per_patch = 36 * 24 * 42 * 9 + 16 * 16 * 24 * 9 + 36 * 12 * 22 * 9 + 16 * 4 * 12 * 9
    assert exercises.check_macs_per_patch(per_patch)
    assert not exercises.check_macs_per_patch(2 * per_patch)
    assert "FLOPs" in capsys.readouterr().out
    assert not exercises.check_macs_per_patch(64 * 24 * 42 * 9)
    assert not exercises.check_macs_per_patch("474336")
