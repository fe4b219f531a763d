"""mattingkit.apps.video: frames, timestamps, rotation and audio survive; outputs are atomic.

Every clip is made here (``synthetic.make_clip`` frames, a sine tone as audio) and every
output is read back with plain PyAV, independently of the code under test.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from mattingkit.apps.inference import GREEN_SCREEN, Matter
from mattingkit.apps.video import matte_video, output_paths, probe_video, read_video, write_video
from mattingkit.data import synthetic
from mattingkit.io import write_image

SIZE = (144, 256)  # the shipped model's alpha error is 0.053 here (0.17 at 96x128: too small)
FRAMES = 24


def _streams(path: Path) -> dict:
    """What plain PyAV sees in a file: decoded frame count, pts, audio packets, rates."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        info = {
            "rate": video.average_rate,
            "video_time_base": video.time_base,
            "audio_codec": audio.codec_context.name if audio else None,
            "audio_seconds": float(audio.duration * audio.time_base) if audio else None,
        }
        pts, packets, rotation = [], [], None
        for packet in container.demux(*([video] + ([audio] if audio else []))):
            if packet.stream is audio:
                if packet.size:
                    packets.append(bytes(packet))
                continue
            for frame in packet.decode():
                pts.append(frame.pts * frame.time_base)
                rotation = frame.rotation if rotation is None else rotation
    return {**info, "frames": len(pts), "pts": pts, "audio_packets": packets, "rotation": rotation}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name)


@pytest.fixture(scope="module")
def clip():
    return synthetic.make_clip(5, SIZE, FRAMES, subject="person")


@pytest.fixture(scope="module")
def media(tmp_path_factory, clip):
    """A 24-frame 256x144 H.264 clip at 24 fps with a 440 Hz AAC track, and its plate."""
    folder = tmp_path_factory.mktemp("media")
    source = write_video(folder / "src.mp4", clip.src, 24, audio_hz=440)
    plate = write_image(folder / "plate.png", clip.bgr)
    return source, plate


@pytest.fixture(scope="module")
def matter():
    return Matter(device="cpu", preset="hd")


def test_the_test_clip_has_frames_and_audio(media):
    stats = _streams(media[0])
    assert stats["frames"] == FRAMES and stats["rate"] == 24
    assert stats["audio_codec"] == "aac" and abs(stats["audio_seconds"] - 1.0) < 0.05


def test_frames_timestamps_and_audio_survive_and_alpha_matches_truth(media, clip, matter, tmp_path):
    source, plate = media
    report = matte_video(
        source, plate, tmp_path / "out.mp4", matter=matter, output_types=("composite", "pha"),
        progress=False,
    )  # fmt: skip
    assert report.frames_in == report.frames_out == report.frames == FRAMES
    assert report.outputs == {"composite": tmp_path / "out.mp4", "pha": tmp_path / "out_pha.mp4"}
    assert report.audio_copied and "copied" in report.audio
    assert report.fps > 0 and 0 < report.model_seconds <= report.seconds
    src = _streams(source)
    for path in report.outputs.values():
        out = _streams(path)
        assert out["frames"] == FRAMES
        assert out["rate"] == src["rate"]
        assert out["pts"] == src["pts"]  # every frame keeps its own timestamp
        assert out["audio_codec"] == "aac"
        assert out["audio_packets"] == src["audio_packets"]  # copied bit for bit
        assert abs(out["audio_seconds"] - src["audio_seconds"]) < 1 / 24
    assert _leftovers(tmp_path) == []
    # The alpha video decodes back close to the exact ground truth (measured: 0.054 mean
    # absolute error; the model alone, without H.264, 0.053). Predicting "no subject"
    # everywhere would score the mean alpha, about 0.3.
    pha = read_video(report.outputs["pha"])[:, :1]
    error = (pha - clip.pha).abs().mean().item()
    assert error < 0.08 < clip.pha.mean().item()
    # Where the subject is absent the composite shows the official green screen.
    composite = read_video(report.outputs["composite"])
    background = (clip.pha == 0).expand_as(composite)
    green = torch.tensor(GREEN_SCREEN).view(1, 3, 1, 1).expand_as(composite)
    assert (composite[background] - green[background]).abs().mean() < 0.05


def test_png_sequence_is_rgba_and_counts_every_frame(media, matter, tmp_path):
    source, plate = media
    report = matte_video(
        source, plate, tmp_path / "frames", matter=matter, output_types=("composite", "pha"),
        progress=False, max_frames=10,
    )  # fmt: skip
    assert report.frames == 10
    assert "PNG sequences carry no audio" in report.audio and not report.audio_copied
    composite_dir, pha_dir = tmp_path / "frames", tmp_path / "frames_pha"
    names = [f"{i:06d}.png" for i in range(10)] + ["timestamps.csv"]
    assert sorted(p.name for p in composite_dir.iterdir()) == names
    assert sorted(p.name for p in pha_dir.iterdir()) == names
    rgba = cv2.imread(str(composite_dir / "000003.png"), cv2.IMREAD_UNCHANGED)
    grey = cv2.imread(str(pha_dir / "000003.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (*SIZE, 4) and grey.shape == SIZE
    np.testing.assert_array_equal(rgba[:, :, 3], grey)  # the composite's alpha is the matte
    assert _leftovers(tmp_path) == []
    assert "timestamps.csv" in str(report)
    # Again, over the folders it wrote (frames and timestamps): replaced with overwrite=True.
    with pytest.raises(FileExistsError, match="pass overwrite=True to replace them"):
        matte_video(source, plate, composite_dir, matter=matter, output_types=("composite", "pha"),
                    progress=False, max_frames=2)  # fmt: skip
    matte_video(source, plate, composite_dir, matter=matter, output_types=("composite", "pha"),
                progress=False, max_frames=2, overwrite=True)  # fmt: skip
    assert len(list(pha_dir.glob("*.png"))) == 2


def _times(folder: Path) -> list[Fraction]:
    """Each frame's time as a PNG sequence's timestamps.csv gives it, read with csv only."""
    import csv

    with open(folder / "timestamps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["file"] for row in rows] == sorted(p.name for p in folder.glob("*.png"))
    for row in rows:
        assert float(row["seconds"]) == pytest.approx(
            float(int(row["pts"]) * Fraction(row["time_base"])), abs=1e-6
        )
    return [int(row["pts"]) * Fraction(row["time_base"]) for row in rows]


def test_existing_outputs_are_refused_before_any_work(media, matter, tmp_path):
    source, plate = media
    (tmp_path / "out_pha.mp4").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="out_pha.mp4"):
        matte_video(
            source, plate, tmp_path / "out.mp4", matter=matter, output_types=("composite", "pha"),
            progress=False,
        )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_pha.mp4"]  # nothing started
    assert (tmp_path / "out_pha.mp4").read_bytes() == b"mine"
    report = matte_video(
        source, plate, tmp_path / "out.mp4", matter=matter, output_types=("composite", "pha"),
        progress=False, overwrite=True, max_frames=3,
    )  # fmt: skip
    assert _streams(report.outputs["pha"])["frames"] == 3


class _NeverCalled:
    """A matter that fails the test if any model work starts (or even its device is asked)."""

    @property
    def device(self):
        raise AssertionError("the model was reached before the output folder was checked")

    def __call__(self, src, bgr):
        raise AssertionError("the model ran before the output folder was checked")


@pytest.mark.parametrize("output", ["out.mp4", "frames"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(
    media, tmp_path, output
):
    """A "folder" that is a file stops root too; a read-only disk is tested in test_cli.py."""
    source, plate = media
    (tmp_path / "notes.txt").write_text("mine")
    target = tmp_path / "notes.txt" / "takes" / output
    with pytest.raises(PermissionError) as error:
        matte_video(source, plate, target, matter=_NeverCalled(), progress=False)
    assert str(error.value) == (
        f"cannot write to {target.parent}: {tmp_path / 'notes.txt'} is a file, not a folder; "
        "choose another output folder"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


class _FailingMatter:
    """The real Matter, except that call number ``at`` raises ``error``."""

    def __init__(self, inner: Matter, at: int, error: BaseException) -> None:
        self.inner, self.at, self.error, self.calls = inner, at, error, 0
        self.device = inner.device

    def __call__(self, src, bgr):
        self.calls += 1
        if self.calls == self.at:
            raise self.error
        return self.inner(src, bgr)


@pytest.mark.parametrize("error", [RuntimeError("model failed"), KeyboardInterrupt()])
@pytest.mark.parametrize("output", ["out.mp4", "frames"])
def test_a_crash_midway_leaves_no_output_and_no_temporary_files(
    media, matter, tmp_path, error, output
):
    source, plate = media
    # An older result with the same name must survive a failed overwrite untouched.
    old = tmp_path / "out_pha.mp4" if output == "out.mp4" else tmp_path / "frames_pha"
    if output == "out.mp4":
        old.write_bytes(b"previous run")
    else:
        old.mkdir()
        (old / "000000.png").write_bytes(b"previous run")
    failing = _FailingMatter(matter, at=5, error=error)
    with pytest.raises(type(error)):
        matte_video(
            source, plate, tmp_path / output, matter=failing, output_types=("composite", "pha"),
            progress=False, overwrite=True,
        )  # fmt: skip
    assert failing.calls == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == [old.name]
    content = old.read_bytes() if old.is_file() else (old / "000000.png").read_bytes()
    assert content == b"previous run"


def test_rotation_is_kept_and_an_upright_plate_is_turned_to_match(clip, matter, tmp_path):
    small = synthetic.make_clip(6, SIZE, 4, subject="person")
    source = write_video(tmp_path / "phone.mp4", small.src, 30, rotation=90)
    upright_plate = torch.rot90(small.bgr, 1, dims=(-2, -1))  # what the phone's gallery shows
    assert probe_video(source).rotation == 90
    report = matte_video(
        source, upright_plate.permute(1, 2, 0).numpy(), tmp_path / "out.mov", matter=matter,
        output_types=("pha",), progress=False,
    )  # fmt: skip
    out = _streams(report.outputs["pha"])
    assert out["rotation"] == 90 and out["frames"] == 4
    assert probe_video(report.outputs["pha"]).display_matrix == probe_video(source).display_matrix
    pha = read_video(report.outputs["pha"])[:, :1]  # stored orientation, like the source
    assert (pha - small.pha).abs().mean() < 0.08


def test_audio_the_container_cannot_hold_is_reencoded_to_aac(clip, matter, tmp_path):
    small = synthetic.make_clip(7, SIZE, 12, subject="person")
    source = write_video(tmp_path / "src.mov", small.src, 24, audio_hz=300, audio_codec="pcm_mulaw")
    assert _streams(source)["audio_codec"] == "pcm_mulaw"  # not storable in .mp4
    report = matte_video(
        source, small.bgr, tmp_path / "out.mp4", matter=matter, output_types=("pha",),
        progress=False,
    )  # fmt: skip
    assert not report.audio_copied and "re-encoded to AAC" in report.audio
    out = _streams(report.outputs["pha"])
    assert out["audio_codec"] == "aac" and out["frames"] == 12
    assert abs(out["audio_seconds"] - 0.5) < 0.05


def test_variable_frame_rate_keeps_each_frame_time(matter, tmp_path):
    """Frames at irregular times (as phones record) come out at the same times."""
    small = synthetic.make_clip(8, SIZE, 6, subject="person")
    times_ms = [0, 33, 70, 200, 233, 400]
    source = tmp_path / "vfr.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        images = (small.src * 255).round().byte().permute(0, 2, 3, 1).numpy()
        for image, ms in zip(images, times_ms):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert probe_video(source).frames_hint is None  # Matroska stores no frame count
    report = matte_video(source, small.bgr, tmp_path / "out.mkv", matter=matter, progress=False)
    out = _streams(report.outputs["composite"])
    assert out["pts"] == [Fraction(ms, 1000) for ms in times_ms]
    # A PNG sequence cannot hold times: they are written beside the frames, exactly.
    report = matte_video(source, small.bgr, tmp_path / "frames", matter=matter, progress=False)
    assert _times(report.outputs["composite"]) == [Fraction(ms, 1000) for ms in times_ms]


def test_a_video_background_is_looped_behind_the_subject(media, clip, matter, tmp_path):
    source, plate = media
    colours = np.array([[255, 0, 0], [0, 0, 255], [255, 255, 255]], np.uint8)
    frames = np.broadcast_to(colours[:, None, None, :], (3, 64, 64, 3)).copy()
    backdrop = write_video(tmp_path / "backdrop.mp4", frames, 24)  # 3 frames, another size
    report = matte_video(
        source, plate, tmp_path / "out.mp4", matter=matter, background=backdrop,
        progress=False, max_frames=7,
    )  # fmt: skip
    composite = read_video(report.outputs["composite"])
    assert composite.shape[0] == 7
    for t in range(7):  # frame t shows backdrop frame t % 3 where the subject is absent
        empty = clip.pha[t, 0] == 0
        seen = composite[t][:, empty].mean(dim=1)
        expected = torch.from_numpy(colours[t % 3]).float() / 255
        assert (seen - expected).abs().max() < 0.1, (t, seen, expected)


def test_output_names_and_bad_arguments(media, matter, tmp_path):
    assert output_paths("a/out.mp4", ["composite", "pha", "err"]) == {
        "composite": Path("a/out.mp4"),
        "pha": Path("a/out_pha.mp4"),
        "err": Path("a/out_err.mp4"),
    }
    assert output_paths("frames", ["ref", "fgr"]) == {
        "ref": Path("frames"),
        "fgr": Path("frames_fgr"),
    }
    with pytest.raises(ValueError, match="unknown output type"):
        output_paths("out.mp4", ["alpha"])
    with pytest.raises(ValueError, match="'.avi'"):
        output_paths("out.avi")
    with pytest.raises(ValueError, match="the alpha matte is 'pha'"):
        output_paths("out.mp4", ["alpha"])
    result = matter(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="the alpha matte is 'pha'"):  # the same hint
        result.image("alpha")
    source, plate = media
    with pytest.raises(ValueError, match="cannot store transparency"):
        matte_video(source, plate, tmp_path / "o.mp4", matter=matter, background="transparent")
    with pytest.raises(ValueError, match="is the source video itself"):
        matte_video(source, plate, source, matter=matter, overwrite=True)
    assert list(tmp_path.iterdir()) == []


def test_pipeline_benchmark_runs_and_reports_the_ratio(capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "video_pipeline.py"
    spec = importlib.util.spec_from_file_location("video_pipeline_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--size", "144x256", "--frames", "4", "--rounds", "1", "--device", "cpu"]
    results = module.main(argv)
    assert len(results["model_fps"]) == len(results["pipeline_fps"]) == 1
    assert "best: model only" in capsys.readouterr().out


def test_a_plate_of_another_size_is_scaled_to_the_video_with_one_warning(
    media, clip, matter, tmp_path
):
    source, _ = media
    # The same view at twice the resolution (a photo from the same camera): a plain resize.
    big = torch.nn.functional.interpolate(clip.bgr[None], scale_factor=2.0, mode="bilinear")[0]
    with pytest.warns(UserWarning, match="plate is 288×512 but the video is 144×256") as caught:
        report = matte_video(source, big, tmp_path / "o.mp4", matter=matter,
                             output_types=("pha",), progress=False, max_frames=4)  # fmt: skip
    messages = [str(w.message) for w in caught if "plate is" in str(w.message)]
    assert len(messages) == 1 and "same aspect ratio, nothing cropped" in messages[0]
    pha = read_video(report.outputs["pha"])[:, :1]
    assert (pha - clip.pha[:4]).abs().mean() < 0.08  # matted as well as with the exact plate
    # Another aspect ratio (4:3 for a 16:9 video): scaled to cover and centre-cropped, said so.
    with pytest.warns(UserWarning, match="aspect ratios differ"):
        matte_video(source, np.zeros((96, 128, 3), np.uint8), tmp_path / "o2.mp4", matter=matter,
                    progress=False, max_frames=1)  # fmt: skip


class _HoleyMatter:
    """The real Matter, but every matte it returns is a known one: a filled rectangle (the
    subject) with a square hole in it and a speck beside it."""

    def __init__(self, inner: Matter) -> None:
        self.inner, self.device = inner, inner.device
        self.pha = torch.zeros(1, 1, *SIZE)
        self.pha[..., 20:120, 60:180] = 1.0
        self.pha[..., 60:70, 120:130] = 0.0  # the hole
        self.pha[..., 10:14, 220:224] = 1.0  # the speck

    def __call__(self, src, bgr):
        import dataclasses

        return dataclasses.replace(self.inner(src, bgr), pha=self.pha.clone())


def test_clean_matte_fills_the_holes_of_every_frame(matter, tmp_path):
    small = synthetic.make_clip(11, SIZE, 3, subject="person")
    source = write_video(tmp_path / "src.mp4", small.src, 24)
    holey = _HoleyMatter(matter)
    plain = matte_video(source, small.bgr, tmp_path / "plain", matter=holey,
                        output_types=("pha",), progress=False)  # fmt: skip
    cleaned = matte_video(source, small.bgr, tmp_path / "clean", matter=holey,
                          output_types=("pha",), progress=False, clean_matte=True)  # fmt: skip
    expected = holey.pha.clone()
    expected[..., 60:70, 120:130] = 1.0
    expected[..., 10:14, 220:224] = 0.0
    for t in range(3):
        name = f"{t:06d}.png"
        before = cv2.imread(str(plain.outputs["pha"] / name), cv2.IMREAD_UNCHANGED)
        after = cv2.imread(str(cleaned.outputs["pha"] / name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(before, (holey.pha[0, 0] * 255).byte().numpy())
        np.testing.assert_array_equal(after, (expected[0, 0] * 255).byte().numpy())
