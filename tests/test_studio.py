"""The chapter 07 studio, driven headless: set widget values, click buttons, check the state.

Real components throughout: the shipped model through ``Matter``, real image files, a real
HTTP server on loopback for URLs, and ``matte_video`` on the sample clip.
"""

from __future__ import annotations

import datetime
import functools
import http.server
import socket
import threading
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from mattingkit import download  # noqa: E402
from mattingkit.io import read_image, write_image  # noqa: E402
from mattingkit.studio import (  # noqa: E402
    PANELS,
    MediaError,
    Studio,
    fit_size,
    google_drive_id,
    load_image,
    media_kind,
    resolve_media,
    save_upload,
)
from mattingkit.synthetic import load_sample  # noqa: E402

SMALL = 160  # working size: the portrait becomes 160×90


@pytest.fixture(scope="module")
def portrait():
    return load_sample("portrait")


@pytest.fixture
def studio(tmp_path):
    return Studio(
        weights="shipped", backbone="mobilenetv2", max_side=SMALL, repeats=1, cache=tmp_path
    )


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP on loopback: (folder, base URL)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _upload_value(name: str, content: bytes) -> tuple[dict, ...]:
    return (
        {
            "name": name,
            "type": "image/png",
            "size": len(content),
            "content": memoryview(content),
            "last_modified": datetime.datetime.now(datetime.timezone.utc),
        },
    )


# --- running the model -----------------------------------------------------------------------


def test_run_on_the_sample_shows_seven_panels_and_numbers(studio, portrait):
    studio.run_button.click()
    stats, result = studio.stats, studio.result
    assert stats is not None, studio.messages
    assert result.pha.shape == (1, 1, 90, 160)
    assert (stats.height, stats.width) == (90, 160)
    assert stats.backbone == "mobilenetv2" and not stats.used_fallback
    assert stats.paper_resolution == "HD" and stats.paper_gmacs == 9.9
    assert stats.paper_fps == 100.6
    assert stats.seconds > 0 and 0 < stats.gmacs < 1.0  # far below HD's 9.9 at 160×90
    # the refined-patch count is that of the model's ref map
    assert stats.refined_patches == int(result.ref[..., ::4, ::4].sum()) > 0
    # border patches are cut to 4×2 pixels (90 = 22·4 + 2): 16 per patch is an upper bound
    assert (
        16 * stats.refined_patches - 8 * 40 <= int(result.ref.sum()) <= 16 * stats.refined_patches
    )
    titles = [ax.get_title() for ax in studio.figure.axes]
    assert [t.split(" (")[0] for t in titles[:7]] == list(PANELS)
    assert f"({stats.refined_patches:,})" in titles[5]
    panel_text = studio.figure.axes[7].texts[0].get_text()
    assert "paper (HD" in panel_text and "measured" in panel_text
    assert "fps" in studio.status.value and "GMac" in studio.status.value
    # the shipped model finds the person: alpha close to the truth at the working size
    truth = fit_size(portrait.pha, SMALL)
    assert (result.pha[0] - truth).abs().mean() < 0.05
    assert "Working at 160×90" in " ".join(studio.messages)


def test_refine_controls_change_the_work_and_reuse_the_loaded_model(studio):
    studio.refine_mode.value = "sampling"
    studio.sample_pixels.value = 10_000
    studio.run_button.click()
    loaded = studio._loaded
    sampled = studio.stats
    assert sampled.settings["refine_sample_pixels"] == 10_000
    assert sampled.refined_patches <= 10_000 // 16

    studio.refine_mode.value = "full"
    studio.run_button.click()
    full = studio.stats
    assert full.refined_patches == (92 // 4) * (160 // 4)  # every patch (H padded to 92)
    # full mode convolves the whole frame once; sampling pays for each patch's 8×8 context,
    # so on a frame this small refining everything is even cheaper: the counts must differ
    assert full.gmacs > 0 and full.gmacs != sampled.gmacs

    studio.refine_mode.value = "thresholding"
    counts = {}
    for threshold in (0.02, 0.5):
        studio.threshold.value = threshold
        studio.run_button.click()
        assert studio.stats.settings["refine_threshold"] == threshold
        counts[threshold] = studio.stats.refined_patches
    assert counts[0.02] > counts[0.5]
    assert studio._loaded is loaded  # settings changed, weights not reloaded

    studio.preset.value = "4k"
    studio.refine_mode.value = "sampling"
    studio.sample_pixels.value = 0
    studio.run_button.click()
    assert studio.stats.settings["backbone_scale"] == 0.125
    assert studio.stats.paper_resolution == "4K" and studio.stats.paper_gmacs == 17.0


def test_offline_official_weights_fall_back_and_say_so(tmp_path, monkeypatch):
    def no_network(source, dest, **kwargs):
        raise ConnectionError("Failed to resolve 'drive.google.com'")

    monkeypatch.setattr(download, "default_downloader", no_network)
    monkeypatch.setenv("MATTINGKIT_HOME", str(tmp_path / "home"))
    studio = Studio(weights="official", backbone="resnet50", max_side=160, repeats=1)
    with pytest.warns(UserWarning, match="shipped|own MobileNetV2"):
        studio.run()
    assert studio.stats is not None and studio.stats.used_fallback
    assert studio.stats.backbone == "mobilenetv2"
    assert any("could not be downloaded" in m and "shipped" in m for m in studio.messages)
    assert "FALLBACK" in studio.figure.axes[7].texts[0].get_text()


# --- backgrounds -----------------------------------------------------------------------------


def test_background_before_a_run_says_what_to_do(studio):
    studio.background_button.click()
    assert studio.composite is None
    assert "Run the model first" in studio.messages[-1]


def test_new_backgrounds_colour_blur_and_image(studio, tmp_path):
    studio.run_button.click()
    result = studio.result
    studio.background_kind.value = "colour"
    studio.background_color.value = "#ff0000"
    studio.background_button.click()
    expected = result.pha * result.fgr + (1 - result.pha) * torch.tensor([1.0, 0, 0]).view(
        1, 3, 1, 1
    )
    torch.testing.assert_close(studio.composite, expected, atol=1e-5, rtol=0)

    studio.background_kind.value = "blur"
    studio.background_button.click()
    torch.testing.assert_close(studio.composite, result.composite("blur"))
    assert "blur" in studio.composite_figure.axes[0].get_title()

    image = torch.zeros(3, 90, 160)
    image[2] = 1.0  # blue
    path = write_image(tmp_path / "blue.png", image)
    studio.background_kind.value = "image"
    studio.background_image.value = str(path)
    studio.background_button.click()
    opaque = result.pha[0, 0] > 0.99
    transparent = result.pha[0, 0] < 1e-3
    assert opaque.any() and transparent.any()
    torch.testing.assert_close(
        studio.composite[0, :, transparent], image[:, transparent], atol=1e-3, rtol=0
    )

    studio.background_image.value = str(tmp_path / "missing.png")
    studio.background_button.click()
    assert studio.messages[-1].startswith("✗ file not found")


# --- your own media ----------------------------------------------------------------------------


def _write_pair(folder: Path, portrait) -> tuple[Path, Path]:
    src = write_image(folder / "frame.png", fit_size(portrait.src, SMALL))
    bgr = write_image(folder / "plate.png", fit_size(portrait.bgr, SMALL))
    return src, bgr


def test_own_media_from_paths(studio, tmp_path, portrait):
    src, bgr = _write_pair(tmp_path, portrait)
    studio.media_choice.value = "own"
    assert studio._own_media.layout.display is None  # shown now
    studio.source.value, studio.plate.value = str(src), str(bgr)
    studio.run_button.click()
    assert studio.stats is not None, studio.messages
    torch.testing.assert_close(studio.result.src[0], read_image(src))
    assert studio.media.label == "frame.png"


def test_own_media_from_urls_over_loopback_http(studio, served, tmp_path, portrait):
    folder, base = served
    _write_pair(folder, portrait)
    studio.media_choice.value = "own"
    studio.source.value = f"{base}/frame.png"
    studio.plate.value = f"{base}/plate.png"
    studio.run_button.click()
    assert studio.stats is not None, studio.messages
    torch.testing.assert_close(studio.result.src[0], read_image(folder / "frame.png"))
    downloaded = list((tmp_path / "media").rglob("frame.png"))
    assert (
        len(downloaded) == 1 and downloaded[0].read_bytes() == (folder / "frame.png").read_bytes()
    )


def test_url_downloads_are_cached_and_complete(served, tmp_path):
    folder, base = served
    (folder / "a.png").write_bytes(b"\x89PNG fake but complete")
    first = resolve_media(f"{base}/a.png", cache=tmp_path / "cache")
    (folder / "a.png").unlink()  # the server no longer has it: the cached copy is used
    assert resolve_media(f"{base}/a.png", cache=tmp_path / "cache") == first
    assert first.read_bytes() == b"\x89PNG fake but complete"
    assert not list(first.parent.glob("*.part"))


def test_unreachable_url_gives_a_clear_message(studio, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/frame.png"
    with pytest.raises(MediaError, match="could not download .*connection refused"):
        resolve_media(url, cache=tmp_path, timeout=5)
    studio.media_choice.value = "own"
    studio.source.value, studio.plate.value = url, url
    assert studio.run() is None
    assert studio.stats is None
    assert studio.messages[-1].startswith("✗ could not download")
    assert "connection refused" in studio.status.value


def test_a_missing_page_and_an_html_page_are_refused(served, tmp_path):
    folder, base = served
    with pytest.raises(MediaError, match="HTTP error 404|404"):
        resolve_media(f"{base}/nothing.png", cache=tmp_path)
    (folder / "quota.png").write_text("<!DOCTYPE html><html>Quota exceeded</html>")
    with pytest.raises(MediaError, match="HTML page"):
        resolve_media(f"{base}/quota.png", cache=tmp_path)


def test_google_drive_links_are_turned_into_downloads(tmp_path):
    file_id = "1AbCdEfGhIjKlMnOp_qr-st"
    for link in (
        f"https://drive.google.com/file/d/{file_id}/view?usp=sharing",
        f"https://drive.google.com/open?id={file_id}",
        f"https://drive.google.com/uc?export=download&id={file_id}",
    ):
        assert google_drive_id(link) == file_id
    assert google_drive_id("https://example.com/file.png") is None

    asked = []

    def fake_gdown(source, dest):
        asked.append(source)
        Path(dest).write_bytes(b"video bytes")

    path = resolve_media(
        f"https://drive.google.com/file/d/{file_id}/view", cache=tmp_path, downloader=fake_gdown
    )
    assert asked == [f"https://drive.google.com/uc?id={file_id}"]
    assert path.read_bytes() == b"video bytes"


def test_missing_paths_say_where_they_looked(tmp_path):
    with pytest.raises(MediaError, match="no file given"):
        resolve_media("  ")
    with pytest.raises(MediaError, match="Google Drive is not mounted"):
        resolve_media("/content/drive/MyDrive/clip.mp4")
    with pytest.raises(MediaError, match="is a folder"):
        resolve_media(tmp_path)


def test_uploads_are_saved_and_used(studio, tmp_path, portrait):
    src, bgr = _write_pair(tmp_path, portrait)
    studio.media_choice.value = "own"
    studio.source_upload.value = _upload_value("my frame.png", src.read_bytes())
    studio.plate_upload.value = _upload_value("plate.png", bgr.read_bytes())
    studio.run_button.click()
    assert studio.stats is not None, studio.messages
    saved = tmp_path / "uploads" / "my_frame.png"
    assert saved.read_bytes() == src.read_bytes()
    torch.testing.assert_close(studio.result.src[0], read_image(src))


def test_an_empty_upload_explains_the_colab_limit(tmp_path):
    with pytest.raises(MediaError, match="1 MB"):
        save_upload(_upload_value("big.mp4", b""), tmp_path)
    with pytest.raises(MediaError, match="nothing uploaded"):
        save_upload((), tmp_path)
    assert "1 MB" in Studio().upload_note.value


def test_media_kind_and_image_loading(tmp_path):
    clip = Path(__file__).resolve().parents[1] / "assets" / "samples" / "clip_src.mp4"
    renamed = tmp_path / "drive_file"  # a Drive download has no suffix
    renamed.write_bytes(clip.read_bytes())
    assert media_kind(renamed) == "video"
    assert media_kind(clip) == "video"
    with pytest.raises(MediaError, match="is a video"):
        load_image(clip)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(MediaError, match="could not read"):
        load_image(text)


def test_frame_and_plate_of_different_sizes(studio, tmp_path, portrait):
    src = write_image(tmp_path / "frame.png", fit_size(portrait.src, SMALL))
    bgr = write_image(tmp_path / "plate.png", fit_size(portrait.bgr, 120))
    studio.media_choice.value = "own"
    studio.source.value, studio.plate.value = str(src), str(bgr)
    assert studio.run() is None
    assert "must come from the same camera" in studio.messages[-1]


# --- video ---------------------------------------------------------------------------------


def test_export_video_with_audio(tmp_path):
    from mattingkit.synthetic import load_clip
    from mattingkit.video import read_video, write_video

    clip = load_clip()
    frames = torch.nn.functional.interpolate(clip.src[:4], size=(96, 160), mode="area")
    plate = torch.nn.functional.interpolate(clip.bgr[None], size=(96, 160), mode="area")[0]
    video = write_video(tmp_path / "take.mp4", frames, fps=24, audio_hz=440)
    plate_path = write_image(tmp_path / "plate.png", plate)
    studio = Studio(
        media="own",
        source=str(video),
        plate=str(plate_path),
        weights="shipped",
        backbone="mobilenetv2",
        repeats=1,
        output=str(tmp_path / "out" / "composite.mp4"),
        max_frames=3,
        cache=tmp_path,
    )
    studio.run_button.click()
    assert studio.stats is not None, studio.messages
    assert studio.media.video == video
    assert (studio.result.src[0] - frames[0]).abs().mean() < 0.02  # the mp4 is lossy
    studio.export_button.click()
    report = studio.video_report
    assert report is not None, studio.messages
    assert report.frames == 3 and report.audio_copied
    assert "3 frames" in studio.messages[-1] and "audio" in studio.messages[-1]
    written = read_video(report.outputs["composite"])
    assert written.shape == (3, 3, 96, 160)

    studio.video_report = None
    studio.export_button.click()  # the file exists and overwrite is off
    assert studio.video_report is None
    assert "already exist" in studio.messages[-1]
    studio.overwrite.value = True
    studio.max_frames.value = 0  # all frames
    studio.export_button.click()
    assert studio.video_report is not None and studio.video_report.frames == 4


def test_the_sample_video_is_offered(tmp_path):
    studio = Studio(media="clip", weights="shipped", backbone="mobilenetv2", max_side=160)
    studio.repeats = 1
    studio.run_button.click()
    assert studio.stats is not None and studio.media.video.name == "clip_src.mp4"
    assert studio.media.plate_path.name == "clip_bgr.png"
    assert studio.result.src.shape[-2:] == (90, 160)


def test_export_needs_a_video(studio):
    studio.export_button.click()
    assert "is an image" in studio.messages[-1]


def test_show_in_fast_mode_runs_once_statically(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MATTINGKIT_FAST", "1")
    studio = Studio(weights="shipped", backbone="mobilenetv2", cache=tmp_path)
    assert studio.max_side.value == 480 and studio.repeats == 1
    studio.max_side.value = 320  # keep the test quick
    studio.show()
    assert studio.stats is not None and not studio._live
    assert studio.stats.width == 320 and studio.figure is not None
    assert "fps" in capsys.readouterr().out


# --- the chapter's exercise checks -------------------------------------------------------------


def test_chapter_07_exercise_checks_accept_right_and_explain_wrong(capsys):
    from mattingkit.exercises import check_gmac_ratio, check_naive_composite, check_preset_patches

    def patches(preset, height, width):
        return min({"hd": 80_000, "4k": 320_000}[preset] // 16, (height // 4) * (width // 4))

    assert check_preset_patches(patches)
    assert not check_preset_patches(lambda preset, h, w: {"hd": 80_000, "4k": 320_000}[preset])
    assert "each patch is 4×4" in capsys.readouterr().out
    assert not check_preset_patches(lambda preset, h, w: {"hd": 5_000, "4k": 20_000}[preset])
    assert "cap it" in capsys.readouterr().out
    assert check_gmac_ratio(16.88 / 9.76)
    assert not check_gmac_ratio(4)
    assert "ratio of pixels" in capsys.readouterr().out
    assert not check_gmac_ratio(None)
    assert check_naive_composite(lambda src, pha, bgr: pha * src + (1 - pha) * bgr)
    assert not check_naive_composite(lambda src, pha, bgr: pha * bgr + (1 - pha) * src)
