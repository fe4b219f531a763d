"""The ``mattingkit`` command: it works, and it fails with one clear line and no leftovers."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from mattingkit.apps import cli
from mattingkit.apps.video import write_video
from mattingkit.data import synthetic
from mattingkit.io import write_image
from mattingkit.weights.names import SHIPPED_LABEL, shipped_quality_warning
from mattingkit.weights.pretrained import shipped_weights_path

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
    assert [e.value for e in scripts if e.name == "mattingkit"] == ["mattingkit.apps.cli:main"]


def test_help_lists_the_commands(tmp_path):
    result = _run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("image", "video", "download", "benchmark", "export"):
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


def _default_ctrl_c() -> None:
    """In the child before it starts: SIGINT as a terminal delivers it (not as inherited)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to a child on Windows")
def test_ctrl_c_stops_cleanly_and_leaves_nothing(media, tmp_path):
    _, plate, _ = media
    clip = synthetic.make_clip(9, SIZE, 6, subject="person")
    write_video(tmp_path / "long.mp4", clip.src.repeat(25, 1, 1, 1), 24, audio_hz=440)  # 150 frames
    # A child inherits an ignored SIGINT (nohup, a background job, some CI runners), and
    # Python then installs no KeyboardInterrupt handler: give it the default a terminal gives.
    process = subprocess.Popen(
        [sys.executable, "-m", "mattingkit", "video", "long.mp4", "--bgr", str(plate), "-o",
         "out.mp4", "--output-types", "composite", "pha", "--no-progress", *MODEL],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_ctrl_c,
    )  # fmt: skip
    # No time limit (a loaded machine takes minutes to import torch): the run either opens
    # its writers, or ends and the assertion shows why.
    while not any("partial" in p.name for p in tmp_path.iterdir()):  # the writers are open
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate()
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
    assert err == (
        f"mattingkit: error: {out}, {tmp_path / 'out_pha.mp4'} already exist; pass "
        "--overwrite to replace them\n"
    )
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
    out = capsys.readouterr().out
    assert "Wrote composite" in out and f"Matted {SIZE[0]}×{SIZE[1]} (H×W)" in out
    assert cli.main([*argv, "-o", str(tmp_path / "cut.jpg")]) == 1  # the same words as video
    assert capsys.readouterr().err == (
        f"mattingkit: error: {tmp_path / 'cut.jpg'} already exists; pass --overwrite to "
        "replace it\n"
    )
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

    monkeypatch.setattr("mattingkit.weights.download.default_downloader", offline)
    assert cli.main(["download", "resnet50", "--cache-dir", str(tmp_path)]) == 1
    printed = capsys.readouterr()
    assert printed.out == ""  # nothing claims to be downloading
    err = printed.err.strip().splitlines()
    # The error, one plain line per source tried, one line saying where a copy goes.
    assert err[0] == "mattingkit: error: Could not download pytorch_resnet50.pth:"
    assert len(err) == 1 + 3 + 1, err
    assert all(line.endswith("OSError: network is unreachable") for line in err[1:4])
    assert str(tmp_path / "pytorch_resnet50.pth") in err[4]
    assert list(tmp_path.iterdir()) == []


def test_benchmark_prints_gmacs_beside_the_paper(capsys):
    argv = ["benchmark", "--size", "64x64", "--repeats", "1", "--warmup", "0", "--device", "cpu"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "HD         9.76           9.9" in out and "4K        16.88          17.0" in out
    assert "fps" in out and "100.6" in out


# --------------------------------------------------------------------------------------
# Arguments and files are checked before torch is imported
# --------------------------------------------------------------------------------------
_NO_TORCH = """
import sys
from mattingkit.apps import cli
try:
    status = cli.main(sys.argv[1:])
finally:  # also after a usage error (SystemExit)
    print("torch imported" if "torch" in sys.modules else "torch not imported")
sys.exit(status)
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["image", "missing.jpg", "--bgr", "plate.png", "-o", "o.png"], "image not found: missing.jpg"),
        (["image", "frame.png", "--bgr", "missing.png", "-o", "o.png"], "plate not found: missing.png"),
        (["image", "frame.png", "--bgr", "plate.png", "-o", "o.gif"], "needs one of the suffixes"),
        (["image", "frame.png", "--bgr", "plate.png", "-o", "frame.png"], "already exists; pass --overwrite"),
        (["image", "frame.png", "--bgr", "plate.png", "-o", "o.png", "--weights", "resnt50"],
         "'resnt50' is neither a file nor a registry name"),
        (["image", "frame.png", "--bgr", "plate.png", "-o", "o.png", "--background", "sea.jpg"],
         "background not found: sea.jpg"),
        (["video", "missing.mp4", "--bgr", "plate.png", "-o", "o.mp4"], "video not found: missing.mp4"),
        (["video", "clip.mp4", "--bgr", "plate.png", "-o", "o.avi"], "cannot write '.avi'"),
        (["video", "clip.mp4", "--bgr", "plate.png", "-o", "clip.mp4", "--overwrite"], "is the source video itself"),
        (["video", "clip.mp4", "--bgr", "plate.png", "-o", "o.mp4", "--crf", "70"], "from 0 to 51"),
        (["download", "resnt50"], "no pretrained weights named 'resnt50'"),
        (["image", "frame.png", "--bgr", "plate.png", "-o", "frame.png/o.png"],
         "cannot write to frame.png: frame.png is a file, not a folder"),
        (["video", "clip.mp4", "--bgr", "plate.png", "-o", "plate.png/new/o.mp4"],
         "cannot write to plate.png/new: plate.png is a file, not a folder"),
        (["export", "--web", "."], "already exists and is not empty; pass --overwrite"),
        (["export", "--web", "frame.png"], "frame.png is a file, not a folder"),
        (["export", "--web", "page", "--weights", "resnt50"],
         "'resnt50' is neither a file nor a registry name"),
        (["export"], "the following arguments are required: --web"),
    ],
)  # fmt: skip
def test_bad_arguments_fail_in_one_line_before_torch_is_imported(media, tmp_path, args, message):
    source, plate, frame = media
    for path in (source, plate, frame):
        (tmp_path / path.name).symlink_to(path)
    result = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode in (1, 2), result.stderr
    assert result.stdout.strip().splitlines()[-1] == "torch not imported"
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mattingkit: error:") and message in err[0], err


def test_export_web_without_the_runtime_names_the_file_and_the_fix(tmp_path, capsys, monkeypatch):
    """A checkout where `npm ci` never ran: one line naming the missing file and the command."""
    from mattingkit.apps import web

    bare = tmp_path / "static_web"
    bare.mkdir()
    shutil.copy(web.WEB_STATIC / "package.json", bare)
    monkeypatch.setattr(web, "WEB_STATIC", bare)
    assert cli.main(["export", "--web", str(tmp_path / "page")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    missing = bare / "node_modules" / "onnxruntime-web" / "dist" / "ort.min.js"
    assert len(err) == 1 and f"{missing} is missing" in err[0], err
    assert f"run `cd {bare} && npm ci --ignore-scripts`" in err[0], err
    assert not (tmp_path / "page").exists()


def _on_a_read_only_disk(folder: Path) -> list[str]:
    """A command prefix that runs the rest in a private mount namespace where ``folder`` is
    a read-only file system: a real ``EROFS``, which stops root too (chmod does not). Skips
    where user namespaces are not allowed."""
    unshare = shutil.which("unshare")
    script = 'mount -t tmpfs none "$0" && mount -o remount,ro "$0" && exec "$@"'
    prefix = [unshare or "unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script]
    probe = [*prefix, str(folder), "true"]
    if unshare is None or subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only file system here (unshare, user namespaces)")
    return [*prefix, str(folder)]


@pytest.mark.skipif(sys.platform != "linux", reason="a read-only mount needs Linux namespaces")
@pytest.mark.parametrize("command", ["image", "video"])
def test_an_output_on_a_read_only_disk_fails_before_torch_is_imported(media, tmp_path, command):
    source, plate, frame = media
    folder = tmp_path / "read-only"
    folder.mkdir()
    prefix = _on_a_read_only_disk(folder)
    inputs = [str(frame if command == "image" else source), "--bgr", str(plate)]
    name = "cut.png" if command == "image" else "out.mp4"
    for output, problem in [
        (folder / name, "it is on a read-only file system"),
        (folder / "new" / name, f"it would be created in {folder}, which is on a read-only file system"),
    ]:  # fmt: skip
        result = subprocess.run(
            [*prefix, sys.executable, "-c", _NO_TORCH, command, *inputs, "-o", str(output)],
            capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert result.stdout.strip().splitlines()[-1] == "torch not imported"  # no model work
        assert result.stderr == (
            f"mattingkit: error: cannot write to {output.parent}: {problem} ([Errno 30] "
            "Read-only file system); choose another output folder, or make it writable\n"
        )
    assert list(folder.iterdir()) == []  # outside the namespace: the real, empty folder


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0,
    reason="permissions do not stop root (the read-only disk test above does)",
)
def test_an_output_folder_without_permission_fails_before_the_model(media, tmp_path, capsys):
    _, plate, frame = media
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    argv = ["image", str(frame), "--bgr", str(plate), "-o", str(locked / "cut.png"), *MODEL]
    try:
        assert cli.main(argv) == 1
    finally:
        locked.chmod(0o755)
    assert capsys.readouterr().err == (
        f"mattingkit: error: cannot write to {locked}: it is not writable for you (no "
        "permission) ([Errno 13] Permission denied); choose another output folder, or make it "
        "writable\n"
    )


def test_download_offline_answers_without_importing_torch(tmp_path):
    """The real downloader on this offline machine: the error, with no torch import first."""
    result = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, "download", "resnet50", "--cache-dir", "cache"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    if result.returncode == 0:  # pragma: no cover - only with network access
        pytest.skip("network available: the file was downloaded")
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip().splitlines() == ["torch not imported"]
    err = result.stderr.strip().splitlines()
    assert err[0] == "mattingkit: error: Could not download pytorch_resnet50.pth:", err
    assert len(err) == 1 + 3 + 1 and str(tmp_path / "cache" / "pytorch_resnet50.pth") in err[-1]


def _offline(source, dest, **kwargs):
    raise ConnectionError(f"Failed to resolve '{source.split('/')[2]}'")


def test_named_weights_that_cannot_be_had_fail_unless_the_fallback_is_asked_for(
    media, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr("mattingkit.weights.download.default_downloader", _offline)
    monkeypatch.setenv("MATTINGKIT_HOME", str(tmp_path / "cache"))
    _, plate, frame = media
    out = tmp_path / "cut.png"
    argv = ["image", str(frame), "--bgr", str(plate), "-o", str(out), *MODEL]
    assert cli.main([*argv, "--weights", "resnet50"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(
        "mattingkit: error: could not download pytorch_resnet50.pth (3 sources"
    )
    assert "cannot resolve host drive.google.com" in err[0]  # what was tried, and why
    assert str(tmp_path / "cache" / "pytorch_resnet50.pth") in err[0]  # where a copy goes
    assert "--allow-fallback" in err[0]
    assert not out.exists()
    assert cli.main([*argv, "--backbone", "resnet101"]) == 1  # a backbone names weights too
    assert "pytorch_resnet101.pth" in capsys.readouterr().err

    assert cli.main([*argv, "--weights", "resnet50", "--allow-fallback"]) == 0
    printed = capsys.readouterr()
    warnings = [
        line for line in printed.err.splitlines() if line.startswith("mattingkit: warning:")
    ]
    assert len(warnings) == 1 and "Using mattingkit's own MobileNetV2" in warnings[0]
    assert "offline fallback for resnet50" in printed.out and out.is_file()
    out.unlink()
    assert cli.main(argv) == 0  # no --weights: the shipped model, no download
    printed = capsys.readouterr()
    assert f"with {SHIPPED_LABEL} on cpu" in printed.out
    # One warning, about its quality (the fallback's warning above says it already).
    assert printed.err == f"mattingkit: warning: {shipped_quality_warning()}\n"


def test_a_plate_of_another_size_is_scaled_with_one_warning(media, tmp_path, capsys):
    _, plate, frame = media
    big = tmp_path / "big_plate.png"
    write_image(big, cv2.resize(cv2.imread(str(plate))[:, :, ::-1], (SIZE[1] * 2, SIZE[0] * 2)))
    argv = ["image", str(frame), "--bgr", str(big), "-o", str(tmp_path / "o.png"), *MODEL]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"mattingkit: warning: the plate is {SIZE[0] * 2}×{SIZE[1] * 2} but the photo {frame} is "
        f"{SIZE[0]}×{SIZE[1]} (H×W): the plate was scaled to {SIZE[0]}×{SIZE[1]} (same aspect "
        "ratio, nothing cropped)",
        f"mattingkit: warning: {shipped_quality_warning()}",  # the shipped model made it
    ]


def test_clean_matte_option_cleans_the_image_matte(media, tmp_path, capsys, monkeypatch):
    import dataclasses

    import torch

    _, plate, frame = media
    real = cli._matter

    class Holey:
        """The real Matter, returning a rectangle with a hole in it as the matte."""

        def __init__(self, args):
            self.inner = real(args)
            self.weights_name, self.device = self.inner.weights_name, self.inner.device

        def __call__(self, src, bgr):
            pha = torch.zeros(1, 1, *SIZE)
            pha[..., 20:120, 60:180] = 1.0
            pha[..., 60:70, 120:130] = 0.0
            return dataclasses.replace(self.inner(src, bgr), pha=pha)

    monkeypatch.setattr(cli, "_matter", Holey)
    argv = ["image", str(frame), "--bgr", str(plate), "--output-types", "pha", *MODEL]
    assert cli.main([*argv, "-o", str(tmp_path / "plain.png")]) == 0
    assert cli.main([*argv, "-o", str(tmp_path / "clean.png"), "--clean-matte"]) == 0
    plain = cv2.imread(str(tmp_path / "plain.png"), cv2.IMREAD_UNCHANGED)
    clean = cv2.imread(str(tmp_path / "clean.png"), cv2.IMREAD_UNCHANGED)
    assert plain[60:70, 120:130].max() == 0 and clean[60:70, 120:130].min() == 255
    assert (plain != clean).sum() == 100  # the hole, nothing else


def test_help_names_the_output_types_without_aliases(tmp_path):
    result = _run("image", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "pha (alpha)" not in result.stdout and "the alpha matte" in result.stdout
    assert "--allow-fallback" in result.stdout and "--clean-matte" in result.stdout
