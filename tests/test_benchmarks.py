"""The benchmark scripts run end to end (tiny settings) and report what they claim."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from mattingkit.inference import cpu_has_native_bf16

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(
        f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_gmacs_table_reproduces_table3(capsys: pytest.CaptureFixture) -> None:
    rows = load("gmacs_table").main()
    assert len(rows) == 6
    for backbone, resolution, paper, parts in rows:
        assert abs(parts["total"] - paper) / paper < 0.015, (backbone, resolution)
    assert "mobilenetv2  4K" in capsys.readouterr().out


def test_speed_vs_official_tiny_run(capsys: pytest.CaptureFixture) -> None:
    """Three models timed in one table; eager equals the official code bit for bit."""
    pytest.importorskip("BackgroundMattingV2.model")
    argv = ["--size", "64x96", "--sample-pixels", "1600", "--repeats", "2", "--warmup", "0"]
    comparisons = load("speed_vs_official").main(
        [*argv, "--device", "cpu", "--backbone", "mobilenetv2"]
    )
    assert len(comparisons) == 1
    comparison = comparisons[0]
    fast = {"fast"} if cpu_has_native_bf16() else set()  # bf16 is timed where it is native
    assert set(comparison.results) == {"official", "eager", "matter"} | fast
    if fast:
        assert comparison.fast_alpha_difference < 2e-3
    assert all(len(r.times_ms) == 2 and r.size == (64, 96) for r in comparison.results.values())
    assert comparison.eager_difference == 0.0
    assert comparison.matter_alpha_difference < 1e-6
    assert all(
        0 < ms <= comparison.results[name].max_ms * 10 for name, ms in comparison.refiner_ms.items()
    )
    out = capsys.readouterr().out
    assert "mobilenetv2 96x64" in out and "vs official" in out and "refiner" in out


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
