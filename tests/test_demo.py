"""The README's first command ends in ``python -m mattingkit.apps.demo``: it must work offline, and
a second time, without ever replacing a file the demo did not write."""

from __future__ import annotations

import json
import subprocess
import sys

from mattingkit.apps import demo
from mattingkit.data.synthetic import load_sample
from mattingkit.io import read_alpha, read_image
from mattingkit.weights.names import SHIPPED_LABEL, shipped_quality_warning

FAST = ["--weights", "mattingkit", "--device", "cpu"]  # the shipped model: no download attempts


def test_the_first_command_runs_twice_in_a_fresh_folder(tmp_path):
    """Exactly what a newcomer types, twice: both succeed and write to outputs/demo."""
    for run in (1, 2):
        result = subprocess.run(
            [sys.executable, "-m", "mattingkit.apps.demo"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert result.returncode == 0, (run, result.stderr)
        assert "to outputs/demo/" in result.stdout, result.stdout
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["demo"]  # no demo-2
    assert "Traceback" not in result.stderr


def test_demo_mattes_the_sample_and_replaces_only_its_own_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), *FAST]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*demo.OUTPUTS, demo.MANIFEST])
    truth = load_sample("portrait")
    pha = read_alpha(out / "pha.png")
    assert pha.shape == truth.pha.shape
    # The shipped model finds the subject: most of the true foreground is predicted opaque.
    inside = truth.pha > 0.99
    assert pha[inside].mean() > 0.8 and pha[truth.pha == 0].mean() < 0.2
    assert read_image(out / "rgba.png", with_alpha=True).shape[0] == 4
    printed = capsys.readouterr().out
    assert "Against the ground truth" in printed
    assert f"Wrote {', '.join(demo.OUTPUTS)} to {out}/" in printed  # what it lists, it wrote
    # The shipped model: named, and one warning about its quality (the CLI's words).
    assert f"with {SHIPPED_LABEL} on cpu" in printed
    assert printed.count(f"⚠ {shipped_quality_warning()}") == 1
    record = json.loads((out / demo.MANIFEST).read_text())
    assert sorted(record["files"]) == sorted(demo.OUTPUTS)

    # Again: its own unchanged outputs are replaced.
    (out / "rgba.png").unlink()  # a missing one is simply written again
    assert demo.main(["--out", str(out), *FAST]) == 0
    assert (out / "rgba.png").is_file()
    capsys.readouterr()

    # A file the user changed is never replaced without --overwrite.
    (out / "fgr.png").write_bytes(b"my edit")
    assert demo.main(["--out", str(out), *FAST]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fgr.png" in err[0] and "--overwrite" in err[0], err
    assert (out / "fgr.png").read_bytes() == b"my edit"
    assert demo.main(["--out", str(out), "--overwrite", *FAST]) == 0
    assert read_image(out / "fgr.png").shape == truth.fgr.shape


def test_the_default_folder_moves_on_when_it_holds_someone_elses_files(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "outputs" / "demo" / "pha.png"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"not the demo's")  # e.g. an older version's output, or the user's file
    assert demo.main(FAST) == 0
    printed = capsys.readouterr().out
    assert "outputs/demo-2/" in printed and "pha.png" in printed
    assert mine.read_bytes() == b"not the demo's"
    assert sorted(p.name for p in (tmp_path / "outputs" / "demo").iterdir()) == ["pha.png"]
    assert (tmp_path / "outputs" / "demo-2" / "pha.png").is_file()
    assert demo.main(FAST) == 0  # demo-2 is the demo's own now: replaced, no demo-3
    assert "to outputs/demo-2/" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["demo", "demo-2"]


def test_demo_wants_frame_and_plate_together(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mattingkit.apps.demo", "--src", "x.jpg", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "give both --src and --bgr" in result.stderr


def test_demo_names_a_missing_file_in_one_line(tmp_path, capsys):
    argv = ["--src", str(tmp_path / "missing.jpg"), "--bgr", str(tmp_path / "b.jpg")]
    assert demo.main([*argv, "--out", str(tmp_path / "o"), *FAST]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"python -m mattingkit.apps.demo: error: image not found: {tmp_path / 'missing.jpg'}"
    ]
    assert not (tmp_path / "o").exists()


def test_an_output_folder_that_cannot_be_written_fails_before_the_model(
    tmp_path, capsys, monkeypatch
):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(demo, "_run", no_model)
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "demo"
    assert demo.main(["--out", str(out), *FAST]) == 1
    assert capsys.readouterr().err == (
        f"python -m mattingkit.apps.demo: error: cannot write to {out}: "
        f"{tmp_path / 'notes.txt'} is a file, not a folder; choose another output folder\n"
    )


def _offline(source, dest, **kwargs):
    raise ConnectionError(f"Failed to resolve '{source.split('/')[2]}'")


def test_weights_named_on_the_command_line_that_cannot_be_had_are_an_error(
    tmp_path, capsys, monkeypatch
):
    """The rule of the mattingkit command: no --weights, the fallback is fine; weights you
    named are an error offline unless --allow-fallback asks for the shipped model."""
    monkeypatch.setattr("mattingkit.weights.download.default_downloader", _offline)
    monkeypatch.setenv("MATTINGKIT_HOME", str(tmp_path / "cache"))
    out = tmp_path / "o"
    assert demo.main(["--weights", "resnet50", "--out", str(out), "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(
        "python -m mattingkit.apps.demo: error: could not download pytorch_resnet50.pth (3 sources "
        "tried: no network: cannot resolve host drive.google.com; no network: cannot resolve "
        "host github.com)"
    )
    assert str(tmp_path / "cache" / "pytorch_resnet50.pth") in err[0]
    assert err[0].endswith("or pass --allow-fallback to use the shipped model")
    assert not out.exists()
    assert demo.main(["--weights", "resnt50", "--out", str(out)]) == 1  # before any import
    assert "'resnt50' is neither a file nor a registry name" in capsys.readouterr().err
