"""The README's first command ends in ``python -m mattingkit.demo``: it must work offline."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mattingkit import demo
from mattingkit.io import read_alpha, read_image
from mattingkit.synthetic import load_sample


def test_demo_mattes_the_sample_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--weights", "mattingkit", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(demo.OUTPUTS)
    truth = load_sample("portrait")
    pha = read_alpha(out / "pha.png")
    assert pha.shape == truth.pha.shape
    # The shipped model finds the subject: most of the true foreground is predicted opaque.
    inside = truth.pha > 0.99
    assert pha[inside].mean() > 0.8 and pha[truth.pha == 0].mean() < 0.2
    assert read_image(out / "rgba.png", with_alpha=True).shape[0] == 4
    assert "Against the ground truth" in capsys.readouterr().out

    before = (out / "pha.png").stat().st_mtime_ns
    assert demo.main(["--out", str(out), "--weights", "mattingkit", "--device", "cpu"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "pha.png").stat().st_mtime_ns == before


def test_demo_wants_frame_and_plate_together(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mattingkit.demo", "--src", "x.jpg", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "give both --src and --bgr" in result.stderr


def test_demo_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        demo.main(
            [
                "--src",
                str(tmp_path / "missing.jpg"),
                "--bgr",
                str(tmp_path / "b.jpg"),
                "--out",
                str(tmp_path / "o"),
                "--weights",
                "mattingkit",
            ]
        )
