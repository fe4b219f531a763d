"""The benchmark scripts run end to end (tiny settings) and report what they claim."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mattingkit.apps.inference import cpu_has_native_bf16

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
    assert set(comparison.results) == {"official", "eager", "window", "matter"} | fast
    if fast:
        assert comparison.fast_alpha_difference < 2e-3
    assert all(len(r.times_ms) == 2 and r.size == (64, 96) for r in comparison.results.values())
    assert comparison.eager_difference == 0.0
    assert comparison.matter_alpha_difference < 1e-6
    assert comparison.matter_alpha_max_difference < 1e-5  # the fast stages: float rounding
    assert all(
        0 < ms <= comparison.results[name].max_ms * 10 for name, ms in comparison.refiner_ms.items()
    )
    out = capsys.readouterr().out
    assert "mobilenetv2 96x64" in out and "vs official" in out and "refiner" in out
    assert "flags:" in out and "ATen" in out and "oneDNN" in out  # what the CPU runs
    table = out[out.index("| backbone |") :].splitlines()
    assert table[0].startswith("| backbone | input | official | eager | window | matter")
    assert table[2].startswith("| mobilenetv2 | 96×64 | ") and "×" in table[2]


def test_speed_vs_official_avx2_limit_takes_effect():
    """--isa avx2 re-runs the script with oneDNN/ATen/MKL limited to AVX2, and says so."""
    pytest.importorskip("BackgroundMattingV2.model")
    argv = ["--size", "64x96", "--sample-pixels", "1600", "--repeats", "1", "--warmup", "0"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "speed_vs_official.py"), *argv,
         "--device", "cpu", "--backbone", "mobilenetv2", "--isa", "avx2"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "ATen AVX2, oneDNN Intel AVX2" in out, out
    assert "native bf16 no" in out and "ONEDNN_MAX_CPU_ISA=AVX2" in out
    assert " fast " not in out  # bfloat16 is not native under AVX2: "auto" means fp32


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


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_gpu_check_without_cuda_says_so_and_exits_0(capsys: pytest.CaptureFixture) -> None:
    assert load("gpu_check").main([]) == 0
    assert capsys.readouterr().out.strip() == "no CUDA device: nothing to check"


def test_gpu_check_dry_run_on_the_cpu(capsys: pytest.CaptureFixture) -> None:
    """The checks' own code, on the CPU at tiny sizes (the GPU run is the same code)."""
    checks = ["fp16 autocast", "pinned memory", "channels-last", "TorchScript fp16"]
    assert load("gpu_check").main(["--dry-run-cpu", "--only", *checks, "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "[     ok] fp16 autocast" in out and "[     ok] channels-last" in out
    assert "[     ok] TorchScript fp16" in out and "[skipped] pinned memory" in out
    assert "4/4 checks passed or skipped" in out


@pytest.mark.slow
def test_gpu_check_full_dry_run(capsys: pytest.CaptureFixture) -> None:
    """Every check, Table 3 included (GMac at the paper's sizes beside the paper's)."""
    assert load("gpu_check").main(["--dry-run-cpu", "--repeats", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "[     ok] video pipeline" in out and "[     ok] Table 3" in out
    assert "8/8 checks passed or skipped" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("resnet", "mobilenet"))]
    assert len(rows) == 6
    for row in rows:  # paper GMac, counted GMac: within 1.5 %
        assert abs(float(row[-1]) - float(row[-2])) / float(row[-2]) < 0.015, row


def test_training_step_times_every_part_of_every_stage(capsys: pytest.CaptureFixture) -> None:
    """Each stage of the shipped recipe, split into draw / augment / forward / backward /
    optimizer, with the multi-scale stage at its smallest and largest base input, the wide one at
    its largest."""
    assert load("training_step").main(["--small", "--steps", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "CPU flags:" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "ms |" not in line]
    names = [row.split(" | ")[0][2:] for row in rows if "bf16" not in row]
    assert names == [
        "base", "refine", "multiscale, base 32 px", "multiscale, base 64 px",
        "wide, base 64 px", "refiner alone (base frozen)",
    ]  # fmt: skip
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert all(float(v) >= 0 for v in cells[2:7]), row
        assert float(cells[7]) > 0 and cells[8].endswith("%"), row
