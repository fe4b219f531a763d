"""The ``mattingkit`` command: it works, and it fails with one clear line and no leftovers."""

from __future__ import annotations

import importlib.metadata
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from mattingkit import cli, synthetic
from mattingkit.io import write_image
from mattingkit.pretrained import shipped_weights_path
from mattingkit.video import write_video

SIZE = (144, 256)
MODEL = ["--device", "cpu", "--preset", "hd"]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_media")
    clip = synthetic.make_clip(9, SIZE, 6, subject="person")
    source = write_video(folder / "clip.mp4", clip.src, 24, audio_hz=440)
    plate = write_image(folder / "plate.png", clip.bgr)
    frame = write_image(folder / "frame.png", clip.src[0])
    return source, plate, frame


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mattingkit", *args], capture_output=True, text=True, cwd=cwd
    )


def test_the_console_script_is_the_cli():
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert [e.value for e in scripts if e.name == "mattingkit"] == ["mattingkit.cli:main"]


def test_help_lists_the_commands(tmp_path):
    result = _run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("image", "video", "download", "benchmark"):
        assert command in result.stdout


def test_a_garbage_video_fails_in_one_line_and_leaves_nothing(media, tmp_path):
    _, plate, _ = media
    (tmp_path / "bad.mp4").write_bytes(bytes(range(256)) * 40)
    result = _run(
        "video", "bad.mp4", "--bgr", str(plate), "-o", "out.mp4", "--output-types", "composite",
        "pha", "--no-progress", *MODEL, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mattingkit: error: cannot read bad.mp4")
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]  # no output, no temp file


def test_a_truncated_video_fails_in_one_line_and_leaves_nothing(media, tmp_path, capsys):
    source, plate, _ = media
    data = source.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is lost
    out = tmp_path / "out"
    argv = ["video", str(tmp_path / "cut.mp4"), "--bgr", str(plate), "-o", str(out), *MODEL]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mattingkit: error: cannot read")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to a child on Windows")
def test_ctrl_c_stops_cleanly_and_leaves_nothing(media, tmp_path):
    _, plate, _ = media
    clip = synthetic.make_clip(9, SIZE, 6, subject="person")
    write_video(tmp_path / "long.mp4", clip.src.repeat(25, 1, 1, 1), 24, audio_hz=440)  # 150 frames
    process = subprocess.Popen(
        [sys.executable, "-m", "mattingkit", "video", "long.mp4", "--bgr", str(plate), "-o",
         "out.mp4", "--output-types", "composite", "pha", "--no-progress", *MODEL],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any("partial" in p.name for p in tmp_path.iterdir()):  # the writers are open
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err == "mattingkit: interrupted; no output was written\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


def test_a_usage_error_is_one_line_with_status_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["video", "clip.mp4", "-o", "out.mp4"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "mattingkit: error: the following arguments are required: --bgr "
        "(see 'mattingkit video --help')"
    ]


def test_video_command_writes_every_output_and_refuses_to_overwrite(media, tmp_path, capsys):
    source, plate, _ = media
    out = tmp_path / "out.mp4"
    argv = ["video", str(source), "--bgr", str(plate), "-o", str(out), "--no-progress"]
    argv += ["--output-types", "composite", "pha", "--background", "white", *MODEL]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "Matted 6 frames" in printed and "aac copied" in printed
    assert out.is_file() and (tmp_path / "out_pha.mp4").is_file()

    before = out.stat().st_mtime_ns
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("mattingkit: error:") and "--overwrite" in err
    assert out.stat().st_mtime_ns == before
    assert cli.main([*argv, "--overwrite", "--max-frames", "2"]) == 0
    assert "Matted 2 frames" in capsys.readouterr().out


def test_image_command_cutout_png_and_green_jpeg(media, tmp_path, capsys):
    _, plate, frame = media
    argv = ["image", str(frame), "--bgr", str(plate), *MODEL]
    assert (
        cli.main([*argv, "-o", str(tmp_path / "cut.png"), "--output-types", "composite", "err"])
        == 0
    )
    rgba = cv2.imread(str(tmp_path / "cut.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (*SIZE, 4)  # PNG: a transparent cut-out by default
    assert cv2.imread(str(tmp_path / "cut_err.png"), cv2.IMREAD_UNCHANGED).shape == SIZE
    assert cli.main([*argv, "-o", str(tmp_path / "cut.jpg")]) == 0
    assert cv2.imread(str(tmp_path / "cut.jpg")).shape == (*SIZE, 3)
    assert "Wrote composite" in capsys.readouterr().out
    assert cli.main([*argv, "-o", str(tmp_path / "x.jpg"), "--background", "transparent"]) == 1
    assert "cannot store transparency" in capsys.readouterr().err
    assert not (tmp_path / "x.jpg").exists()


def test_download_prints_the_path_or_fails_in_one_line(tmp_path, capsys, monkeypatch):
    assert cli.main(["download", "mattingkit"]) == 0
    assert capsys.readouterr().out.strip() == str(shipped_weights_path())

    assert cli.main(["download", "no-such-model"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no pretrained weights named 'no-such-model'" in err[0]

    def offline(source, dest, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("mattingkit.download.default_downloader", offline)
    assert cli.main(["download", "resnet50", "--cache-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mattingkit: error: Could not download")
    assert "network is unreachable" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_benchmark_prints_gmacs_beside_the_paper(capsys):
    argv = ["benchmark", "--size", "64x64", "--repeats", "1", "--warmup", "0", "--device", "cpu"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "HD         9.76           9.9" in out and "4K        16.88          17.0" in out
    assert "fps" in out and "100.6" in out
