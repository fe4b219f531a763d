"""The benchmark scripts run end to end (tiny settings) and report what they claim."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(
        f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gmacs_table_reproduces_table3(capsys: pytest.CaptureFixture) -> None:
    rows = load("gmacs_table").main()
    assert len(rows) == 6
    for backbone, resolution, paper, parts in rows:
        assert abs(parts["total"] - paper) / paper < 0.015, (backbone, resolution)
    assert "mobilenetv2  4K" in capsys.readouterr().out


def test_speed_vs_official_tiny_run(capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("BackgroundMattingV2.model")
    argv = [
        "--size",
        "64x96",
        "--sample-pixels",
        "1600",
        "--repeats",
        "2",
        "--warmup",
        "0",
        "--device",
        "cpu",
    ]
    results = load("speed_vs_official").main(argv)
    assert set(results) == {"official", "mattingkit"}
    assert all(len(r.times_ms) == 2 and r.size == (64, 96) for r in results.values())
    out = capsys.readouterr().out
    assert "outputs agree" in out and "time ratio mattingkit / official" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "66x96"], "divisible by 4"),
        (["--size", "64x96"], "fewer 4x4 patches"),
        (["--size", "big"], "HxW"),
    ],
)
def test_speed_vs_official_rejects_bad_sizes(argv, message, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        load("speed_vs_official").main([*argv, "--device", "cpu"])
    assert message in capsys.readouterr().err
