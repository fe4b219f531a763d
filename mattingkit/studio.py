"""The inference studio of chapter 07: your media in, a matte out, beside the paper's numbers.

Chapter 07 lets you try the pretrained model on the sample media or on your own before
adopting it. The notebook teaches; the panel lives here, so that it is tested headless and
works the same everywhere:

* **media**: the bundled samples, a local path (a mounted Google Drive too), an http(s) URL,
  a Google Drive share link, or an upload. Colab's upload widget silently drops files above
  about 1 MB, so the panel says so and offers the other routes;
* **model**: backbone, official weights (downloaded on demand; offline the shipped model is
  used and the panel says so) or a weights file; HD/4K preset, refine mode, sample pixels;
* **results**: source, plate, alpha, foreground, error map, refined patches and composite in
  one figure, with the measured fps and GMac beside the paper's Table 3;
* **a new background** (colour, image, the blurred plate) without running the model again;
* **video export** with a progress bar, through :func:`mattingkit.video.matte_video`.

Only core ipywidgets are used (JupyterLab, Notebook 7, VS Code and Colab need no setup).
``Studio.show()`` displays the live panel; in fast mode (tests, CI) it runs the very same
code once with the current values and shows static figures instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Union
from urllib.parse import unquote, urlparse

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from mattingkit.download import DownloadError, cache_dir, drive_file_url, fetch
from mattingkit.io import atomic_write, read_image
from mattingkit.plotting import image_grid, overlay_mask, rgba_on_checkerboard
from mattingkit.runtime import asset_path, fast_mode, in_colab

__all__ = [
    "COLAB_UPLOAD_LIMIT",
    "MediaError",
    "RunStats",
    "Studio",
    "StudioMedia",
    "fit_size",
    "google_drive_id",
    "load_image",
    "media_kind",
    "read_first_frame",
    "refined_patch_count",
    "resolve_media",
    "results_figure",
    "sample_media",
    "save_upload",
]

PathLike = Union[str, os.PathLike]

#: Colab's upload widget loses files above about this many bytes, without an error.
COLAB_UPLOAD_LIMIT = 1_000_000
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm")
#: The official demos' green, (120, 255, 155) / 255.
DEFAULT_GREEN = "#78ff9b"

UPLOAD_TIP = (
    "Colab's upload button silently drops files larger than about 1 MB: nothing arrives and "
    "no error is shown. For larger files put them on Google Drive and use the path "
    "(/content/drive/MyDrive/..., after drive.mount) or a share link, or give an http(s) URL."
)


class MediaError(ValueError):
    """Media could not be found, downloaded or decoded; the message says what to do."""


# --------------------------------------------------------------------------------------
# Media: paths, URLs, Google Drive, uploads
# --------------------------------------------------------------------------------------
_DRIVE_PATTERNS = (
    re.compile(r"drive\.google\.com/file/d/([\w-]{10,})"),
    re.compile(r"(?:drive|docs)\.google\.com/(?:open|uc)\?(?:[^#]*&)?id=([\w-]{10,})"),
)


def google_drive_id(text: str) -> str | None:
    """The file id in a Google Drive share link (``.../file/d/<id>/view``, ``open?id=``)."""
    for pattern in _DRIVE_PATTERNS:
        match = pattern.search(text)
        if match:
            return match.group(1)
    return None


def _is_url(text: str) -> bool:
    return urlparse(text).scheme in ("http", "https")


def _safe_name(name: str) -> str:
    """``name`` with runs of other characters than ``\\w``, ``.``, ``-`` as ``_``, ends stripped."""
    return re.sub(r"[^\w.\-]+", "_", name).strip("._")


def _url_filename(url: str) -> str:
    """A safe local file name from the last part of a URL (suffix kept: it tells the kind)."""
    name = _safe_name(unquote(urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]))
    return name[-100:] or "download"


def _missing_file_hint(path: Path) -> str:
    if str(path).startswith("/content/drive") and not Path("/content/drive/MyDrive").exists():
        return (
            " Google Drive is not mounted: run `from google.colab import drive; "
            "drive.mount('/content/drive')` first."
        )
    if not path.is_absolute():
        return f" Relative paths start in {Path.cwd()}."
    return ""


def resolve_media(
    source: PathLike,
    *,
    cache: PathLike | None = None,
    timeout: float = 20.0,
    downloader: Any = None,
) -> Path:
    """A local file for a path, an http(s) URL or a Google Drive share link.

    Downloads go through :func:`mattingkit.download.fetch` into ``<cache>/media/<hash>/``
    (default :func:`mattingkit.download.cache_dir`): complete files only, an HTML page
    (Drive's quota or sign-in page) is refused, and the same URL is not downloaded twice.

    Raises:
        MediaError: nothing given, file missing, or the download failed (with the reason:
            no network, connection refused, HTTP 404, Drive refused, ...).
    """
    text = str(source).strip().strip("'\"")
    if not text:
        raise MediaError(
            "no file given: type a path, an http(s) URL or a Google Drive link, or upload a file"
        )
    drive_id = google_drive_id(text)
    if drive_id or _is_url(text):
        url = drive_file_url(drive_id) if drive_id else text
        name = f"drive_{drive_id}" if drive_id else _url_filename(text)
        tag = hashlib.sha1(text.encode()).hexdigest()[:10]
        try:
            return fetch(
                f"media/{tag}/{name}",
                urls=[url],
                cache_dir=cache,
                downloader=downloader,
                progress=False,
                timeout=timeout,
            )
        except DownloadError as error:
            reasons = "; ".join(reason for _, reason in error.attempts) or str(error)
            raise MediaError(
                f"could not download {text}: {reasons}. Open the address in a browser to "
                "check it; a Google Drive file must be shared with 'Anyone with the link'. "
                "Or download it yourself and give its path."
            ) from None
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise MediaError(f"{path} is a folder; give the file inside it")
    raise MediaError(f"file not found: {path}.{_missing_file_hint(path)}")


def _upload_items(value: Any) -> list[tuple[str, bytes]]:
    """(name, content) pairs from a FileUpload value (ipywidgets 8 tuple, or 7 dict)."""
    if isinstance(value, dict):  # ipywidgets 7: {name: {"metadata": ..., "content": ...}}
        return [(name, bytes(item["content"])) for name, item in value.items()]
    return [(item["name"], bytes(item["content"])) for item in value or ()]


def save_upload(value: Any, folder: PathLike | None = None) -> Path:
    """Write the file of a ``FileUpload`` widget's value to ``folder`` and return its path.

    ``folder`` defaults to ``<cache>/uploads``. The file is written atomically under its own
    (sanitised) name; a former upload of the same name is replaced (the folder is the
    studio's own, never a folder of yours).

    Raises:
        MediaError: nothing was uploaded, or the upload arrived empty (on Colab: a file
            above about 1 MB, see :data:`UPLOAD_TIP`).
    """
    items = _upload_items(value)
    if not items:
        raise MediaError("nothing uploaded yet. " + (UPLOAD_TIP if in_colab() else ""))
    name, content = items[-1]
    if not content:
        raise MediaError(f"the upload of {name} arrived empty. {UPLOAD_TIP}")
    target = Path(folder) if folder is not None else cache_dir() / "uploads"
    path = target / (_safe_name(Path(name).name) or "upload")
    with atomic_write(path, "wb") as f:
        f.write(content)
    return path


def media_kind(path: PathLike) -> str:
    """``"video"`` or ``"image"``: by suffix, else by the first bytes (mp4/mov, mkv, avi)."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return "video"
    with open(path, "rb") as f:
        head = f.read(16)
    if head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3" or head[8:12] == b"AVI ":
        return "video"
    return "image"


def read_first_frame(path: PathLike) -> torch.Tensor:
    """The first frame of a video as a float32 RGB tensor (3, H, W) in [0, 1] (PyAV)."""
    import av

    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                array = frame.to_ndarray(format="rgb24")
                return torch.from_numpy(array).permute(2, 0, 1).float() / 255.0
    except (av.FFmpegError, IndexError, ValueError) as error:
        raise MediaError(f"could not read {path} as a video: {error}") from None
    raise MediaError(f"{path} holds no video frames")


def load_image(source: PathLike, **resolve_options: Any) -> torch.Tensor:
    """An image from a path, URL or Drive link as (3, H, W) float32 in [0, 1].

    Raises :class:`MediaError` when it is missing, a video, or not a decodable image.
    """
    path = resolve_media(source, **resolve_options)
    if media_kind(path) == "video":
        raise MediaError(
            f"{path.name} is a video; give an image here (a video goes in the frame/video field)"
        )
    try:
        return read_image(path)
    except ValueError as error:
        raise MediaError(str(error)) from None


def fit_size(image: torch.Tensor, max_side: int | None) -> torch.Tensor:
    """Shrink (3, H, W) so that its longest side is at most ``max_side`` (aspect kept).

    On a CPU a 4K photo takes seconds per pass: the studio works on a smaller copy, and
    frame and plate are scaled identically so they stay aligned.
    """
    if not max_side or max(image.shape[-2:]) <= max_side:
        return image
    scale = max_side / max(image.shape[-2:])
    size = [max(4, round(side * scale)) for side in image.shape[-2:]]
    resized = F.interpolate(image[None], size=size, mode="bilinear", antialias=True)
    return resized[0].clamp(0, 1)


@dataclass
class StudioMedia:
    """What the studio mattes: a frame (or a video's first frame) and its clean plate.

    ``src``/``bgr`` are (3, H, W) float32; ``video`` and ``plate_path`` are set when a whole
    video can be exported; ``true_pha`` (1, H, W) when the ground truth is known (samples).
    """

    src: torch.Tensor
    bgr: torch.Tensor
    label: str
    video: Path | None = None
    plate_path: Path | None = None
    true_pha: torch.Tensor | None = None


SAMPLES = ("portrait", "clip")


def sample_media(name: str = "portrait") -> StudioMedia:
    """The bundled samples: ``"portrait"`` (an image with true alpha) or ``"clip"`` (video)."""
    from mattingkit.synthetic import load_sample

    if name == "portrait":
        sample = load_sample("portrait")
        return StudioMedia(sample.src, sample.bgr, "sample portrait", true_pha=sample.pha)
    if name == "clip":
        video, plate = asset_path("samples", "clip_src.mp4"), asset_path("samples", "clip_bgr.png")
        if not (video.is_file() and plate.is_file()):
            raise MediaError(
                f"the sample clip is missing ({video}); run `python scripts/make_assets.py`"
            )
        return StudioMedia(
            read_first_frame(video), read_image(plate), "sample clip", video=video, plate_path=plate
        )
    raise ValueError(f"unknown sample {name!r}; choose one of {SAMPLES}")


# --------------------------------------------------------------------------------------
# Measuring a run
# --------------------------------------------------------------------------------------
def refined_patch_count(ref: torch.Tensor) -> int:
    """Patches refined, from a full-resolution ``ref`` map: one top-left pixel per 4×4 patch.

    (Summing the map and dividing by 16 is wrong at the border of a frame whose size is not
    a multiple of 4: the edge patches are cropped.)
    """
    return int(ref[..., ::4, ::4].sum())


def _pairs(items: list[str]) -> list[list[str]]:
    return [items[i : i + 2] for i in range(0, len(items), 2)]


@dataclass(frozen=True)
class RunStats:
    """What one studio run measured, and the paper's figures to compare with. Chapter 07.

    ``seconds`` is the median model time of one frame over the timed repeats (after one
    untimed warm-up pass); ``gmacs`` counts convolutions and matrix products of that frame
    like :func:`mattingkit.profile.gmacs`. The paper's numbers are for 1920×1080 (HD) or
    3840×2160 (4K) on an RTX 2080 Ti.
    """

    height: int
    width: int
    device: str
    precision: str
    backbone: str
    weights_name: str
    used_fallback: bool
    settings: dict = field(default_factory=dict)
    seconds: float = math.nan
    gmacs: float | None = None
    refined_patches: int = 0
    paper_resolution: str = "HD"
    paper_fps: float | None = None
    paper_gmacs: float | None = None

    @property
    def fps(self) -> float:
        return 1.0 / self.seconds if self.seconds > 0 else math.inf

    def _gmac_text(self) -> str:
        return f"{self.gmacs:.2f} GMac" if self.gmacs is not None else "GMac n/a"

    def summary(self) -> str:
        """One line: measured fps and GMac beside the paper's."""
        line = (
            f"{self.weights_name}: {self.fps:.1f} fps, {self._gmac_text()} at {self.width}×{self.height} "
            f"on {self.device}, {self.refined_patches:,} patches refined"
        )
        if self.paper_fps is not None:
            line += (
                f" | paper ({self.paper_resolution}, RTX 2080 Ti): {self.paper_fps:.1f} fps, "
                f"{self.paper_gmacs:.1f} GMac"
            )
        return line

    def lines(self) -> list[str]:
        """A few lines for a figure or a print: measured beside paper."""
        paper_size = "1920×1080" if self.paper_resolution == "HD" else "3840×2160"
        lines = [
            f"model: {self.weights_name} ({self.backbone})"
            + (" — FALLBACK, official weights unavailable" if self.used_fallback else ""),
            *(
                "  " + ", ".join(pair)
                for pair in _pairs([f"{k}={v}" for k, v in self.settings.items()])
            ),
            f"measured: {self.fps:.1f} fps ({1000 * self.seconds:.0f} ms), {self._gmac_text()}",
            f"  at {self.width}×{self.height} on {self.device} ({self.precision}), "
            f"{self.refined_patches:,} patches refined",
        ]
        if self.paper_fps is not None:
            lines.append(
                f"paper ({self.paper_resolution}, {paper_size}, RTX 2080 Ti): "
                f"{self.paper_fps:.1f} fps, {self.paper_gmacs:.1f} GMac"
            )
        return lines


def measure(
    matter: Any, src: torch.Tensor, bgr: torch.Tensor, repeats: int = 3
) -> tuple[Any, RunStats]:
    """Run ``matter(src, bgr)`` once untimed (warm-up), then ``repeats`` timed times.

    GMac are counted on this very frame with :func:`mattingkit.profile.gmacs` (in
    thresholding mode the number of refined patches depends on the content). Returns the
    first result and a :class:`RunStats`.
    """
    from mattingkit.paper import TABLE3
    from mattingkit.profile import gmacs

    result = matter(src, bgr)
    times = [matter(src, bgr).seconds for _ in range(max(1, repeats))]
    try:  # the settings of the last call are still set on the model
        cost: float | None = gmacs(matter.model, inputs=(result.src, result.bgr))
    except Exception:  # noqa: BLE001 -- e.g. a half-precision TorchScript file: no count
        cost = None
    height, width = result.pha.shape[-2:]
    settings = dict(matter.settings_for(height, width))
    resolution = "4k" if float(settings.get("backbone_scale", 0.25)) <= 1 / 8 else "hd"
    paper = TABLE3.get((matter.backbone, resolution))
    stats = RunStats(
        height=int(height),
        width=int(width),
        device=str(matter.device),
        precision=str(matter.precision),
        backbone=str(matter.backbone),
        weights_name=str(matter.weights_name),
        used_fallback=bool(matter.used_fallback),
        settings=settings,
        seconds=statistics.median(times),
        gmacs=cost,
        refined_patches=refined_patch_count(result.ref[0]),
        paper_resolution=resolution.upper(),
        paper_fps=paper.fps if paper else None,
        paper_gmacs=paper.gmacs if paper else None,
    )
    return result, stats


# --------------------------------------------------------------------------------------
# The results figure
# --------------------------------------------------------------------------------------
PANELS = ("source", "plate", "alpha", "foreground", "error map", "refined patches", "composite")


def results_figure(
    result: Any,
    stats: RunStats | None = None,
    *,
    background: Any = DEFAULT_GREEN,
    true_pha: torch.Tensor | None = None,
    title: str | None = None,
    index: int = 0,
    size: float = 3.2,
) -> Figure:
    """The seven panels side by side, plus the numbers or the alpha error. Chapter 07.

    source, plate, alpha, foreground (over a checkerboard), error map (stretched to its
    maximum, which the title gives: the predicted errors are small), refined patches (the
    4×4 patches the refiner re-predicted, tinted red on the frame) and the composite on
    ``background``. The eighth panel shows ``stats`` as text, or ``|α − α*|`` when
    ``true_pha`` (1, H, W) is given.
    """
    src, bgr = result.src[index].cpu().float(), result.bgr[index].cpu().float()
    pha, fgr = result.pha[index].cpu().float(), result.fgr[index].cpu().float()
    err, ref = result.err[index].cpu().float(), result.ref[index].cpu().float()
    composite = result.composite(background)[index].cpu().float()
    err_max = float(err.max())
    images: list[Any] = [
        src,
        bgr,
        pha,
        rgba_on_checkerboard(fgr, pha, square=max(4, src.shape[-1] // 60)),
        err / err_max if err_max > 0 else err,
        overlay_mask(src, ref, color=(1.0, 0.15, 0.15), opacity=0.6),
        composite,
    ]
    titles = list(PANELS)
    titles[4] = f"error map (0 … {err_max:.2f})"
    titles[5] = f"refined patches ({refined_patch_count(ref):,})"
    if true_pha is not None:
        error = (pha - true_pha.reshape(pha.shape).cpu().float()).abs()
        images.append(error)
        titles.append(f"|α − α*|, mean {1e3 * float(error.mean()):.1f}×10⁻³")
    fig = image_grid(images, titles, ncols=4, size=size, suptitle=title)
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, height + 0.5)  # room for the second row's titles
    fig.tight_layout()
    if stats is not None and true_pha is None:
        fig.axes[7].text(0.0, 0.5, "\n".join(stats.lines()), fontsize=7.5, va="center")
    return fig


# --------------------------------------------------------------------------------------
# The panel
# --------------------------------------------------------------------------------------
BACKBONES = ("resnet50", "resnet101", "mobilenetv2")
WEIGHT_SOURCES = (
    ("official (downloaded on demand)", "official"),
    ("mattingkit shipped (offline, MobileNetV2)", "shipped"),
    ("a weights file (path or URL)", "file"),
)
SAMPLE_PIXELS = (
    ("preset", 0),
    ("10,000", 10_000),
    ("20,000", 20_000),
    ("40,000", 40_000),
    ("80,000 (HD)", 80_000),
    ("160,000", 160_000),
    ("320,000 (4K)", 320_000),
)
WORKING_SIZES = (
    ("full size", 0),
    ("longest side 1920", 1920),
    ("longest side 1280", 1280),
    ("longest side 960", 960),
    ("longest side 640", 640),
    ("longest side 480", 480),
    ("longest side 320", 320),
)


def _ipython_display(obj: Any) -> None:
    """``IPython.display.display`` inside a kernel; nothing outside one (scripts, tests)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        display(obj)


class Studio:
    """The chapter 07 inference panel: media, model and settings, run, look, export.

    Build it, set values, ``show()`` it. Everything the buttons do is a method too
    (:meth:`run`, :meth:`apply_background`, :meth:`export_video`), so a test or a script can
    drive it: set ``studio.<control>.value`` and call ``studio.run_button.click()``. The
    last results stay on the object: ``result`` (the ``Matter`` result), ``stats``
    (:class:`RunStats`), ``figure``, ``composite``, ``video_report`` and ``messages``.

    Args:
        media: ``"portrait"`` or ``"clip"`` (the samples) or ``"own"``.
        source, plate: your frame/video and clean plate (path, URL or Drive link).
        backbone, weights: see :data:`BACKBONES`, :data:`WEIGHT_SOURCES`; ``weights_file``
            for ``weights="file"``.
        preset: ``"auto"``, ``"hd"`` or ``"4k"``; refine_mode, sample_pixels (0: the
            preset's), threshold: the refiner options.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        max_side: working size (longest side; 0 = full). Default: full on a GPU, 960 px on
            a CPU, 480 px in fast mode.
        background: a colour (``"#78ff9b"``), ``"blur"`` or an image path/URL.
        output: where :meth:`export_video` writes; ``max_frames`` (0 = all) for a quick try.
        repeats: timed passes per run (median); default 1 in fast mode, 3 otherwise.
        cache: folder for downloads and uploads (default: the mattingkit cache).
    """

    def __init__(
        self,
        *,
        media: str = "portrait",
        source: str = "",
        plate: str = "",
        backbone: str = "resnet50",
        weights: str = "official",
        weights_file: str = "",
        preset: str = "auto",
        refine_mode: str = "sampling",
        sample_pixels: int = 0,
        threshold: float = 0.1,
        device: str = "auto",
        max_side: int | None = None,
        background: str = DEFAULT_GREEN,
        output: str = "outputs/studio/composite.mp4",
        max_frames: int = 0,
        repeats: int | None = None,
        cache: PathLike | None = None,
    ) -> None:
        try:
            import ipywidgets as w
        except ImportError as error:  # pragma: no cover - ipywidgets is a notebook extra
            raise ImportError(
                "the studio needs ipywidgets: pip install 'mattingkit[notebooks]'"
            ) from error
        if max_side is None:
            max_side = 480 if fast_mode() else (0 if torch.cuda.is_available() else 960)
        self.repeats = repeats if repeats is not None else (1 if fast_mode() else 3)
        self.cache = Path(cache) if cache is not None else None
        self.result: Any = None
        self.stats: RunStats | None = None
        self.media: StudioMedia | None = None
        self.figure: Figure | None = None
        self.composite: torch.Tensor | None = None
        self.composite_figure: Figure | None = None
        self.video_report: Any = None
        self.messages: list[str] = []
        self._loaded: Any = None
        self._loaded_key: tuple | None = None
        self._live = False

        style = {"description_width": "9em"}
        wide = w.Layout(width="46em")

        def text(value: str, description: str, **options: Any) -> Any:
            return w.Text(value=value, description=description, style=style, layout=wide, **options)

        self.media_choice = w.ToggleButtons(
            options=[
                ("sample portrait", "portrait"),
                ("sample video", "clip"),
                ("your own", "own"),
            ],
            value=media,
            description="media",
            style=style,
        )
        self.source = text(
            source, "frame or video", placeholder="path, http(s) URL or Google Drive link"
        )
        self.plate = text(
            plate, "clean plate", placeholder="path, http(s) URL or Google Drive link (an image)"
        )
        self.source_upload = w.FileUpload(accept="image/*,video/*", description="upload frame")
        self.plate_upload = w.FileUpload(accept="image/*", description="upload plate")
        self.upload_note = w.HTML(f"<small>{escape(UPLOAD_TIP)}</small>", layout=wide)

        self.backbone = w.Dropdown(
            options=list(BACKBONES), value=backbone, description="backbone", style=style
        )
        self.weights = w.Dropdown(
            options=list(WEIGHT_SOURCES), value=weights, description="weights", style=style
        )
        self.weights_file = text(
            weights_file,
            "weights file",
            placeholder="state_dict or TorchScript .pth (path or URL)",
        )
        self.preset = w.ToggleButtons(
            options=[("auto", "auto"), ("HD", "hd"), ("4K", "4k")],
            value=preset,
            description="preset",
            style=style,
        )
        self.refine_mode = w.ToggleButtons(
            options=["sampling", "thresholding", "full"],
            value=refine_mode,
            description="refine mode",
            style=style,
        )
        self.sample_pixels = w.Dropdown(
            options=list(SAMPLE_PIXELS),
            value=sample_pixels,
            description="sample pixels",
            style=style,
        )
        self.threshold = w.FloatSlider(
            value=threshold,
            min=0.01,
            max=0.9,
            step=0.01,
            description="threshold",
            continuous_update=False,
            style=style,
        )
        devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        self.device = w.Dropdown(options=devices, value=device, description="device", style=style)
        sizes = list(WORKING_SIZES)
        if max_side not in [value for _, value in sizes]:
            sizes.append((f"longest side {max_side}", max_side))
        self.max_side = w.Dropdown(
            options=sizes, value=max_side, description="working size", style=style
        )
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")

        kind = (
            "blur"
            if background == "blur"
            else ("colour" if background.startswith("#") else "image")
        )
        self.background_kind = w.ToggleButtons(
            options=["colour", "image", "blur"], value=kind, description="background", style=style
        )
        self.background_color = w.ColorPicker(
            value=background if kind == "colour" else DEFAULT_GREEN,
            description="colour",
            style=style,
        )
        self.background_image = text(
            background if kind == "image" else "",
            "image",
            placeholder="path, http(s) URL or Google Drive link",
        )
        self.background_button = w.Button(description="Apply background", icon="image")

        self.output_path = text(output, "video output")
        self.max_frames = w.BoundedIntText(
            value=max_frames, min=0, max=1_000_000, description="max frames (0 = all)", style=style
        )
        self.overwrite = w.Checkbox(value=False, description="overwrite an existing file")
        self.export_button = w.Button(description="Export video", icon="film")

        self.status = w.HTML()
        self.results_out = w.Output()
        self.background_out = w.Output()
        self.video_out = w.Output()

        self.run_button.on_click(lambda _: self.run())
        self.background_button.on_click(lambda _: self.apply_background())
        self.export_button.on_click(lambda _: self.export_video())
        self.media_choice.observe(lambda _: self._update_visibility(), names="value")
        self.weights.observe(lambda _: self._update_visibility(), names="value")
        self.refine_mode.observe(lambda _: self._update_visibility(), names="value")
        self.background_kind.observe(lambda _: self._update_visibility(), names="value")

        section = lambda title: w.HTML(f"<b>{title}</b>")  # noqa: E731
        self._own_media = w.VBox(
            [
                self.source,
                w.HBox([self.source_upload]),
                self.plate,
                w.HBox([self.plate_upload]),
                self.upload_note,
            ]
        )
        self.widget = w.VBox(
            [
                section("1 · Media"),
                self.media_choice,
                self._own_media,
                section("2 · Model and settings"),
                w.HBox([self.backbone, self.weights]),
                self.weights_file,
                self.preset,
                self.refine_mode,
                w.HBox([self.sample_pixels, self.threshold]),
                w.HBox([self.device, self.max_side]),
                w.HBox([self.run_button]),
                self.status,
                self.results_out,
                section("3 · New background"),
                self.background_kind,
                self.background_color,
                self.background_image,
                self.background_button,
                self.background_out,
                section("4 · Export a video"),
                self.output_path,
                w.HBox([self.max_frames, self.overwrite]),
                self.export_button,
                self.video_out,
            ]
        )
        self._update_visibility()

    # ---------------------------------------------------------------- display helpers
    def _update_visibility(self) -> None:
        def shown(widget: Any, visible: bool) -> None:
            widget.layout.display = None if visible else "none"

        shown(self._own_media, self.media_choice.value == "own")
        shown(self.weights_file, self.weights.value == "file")
        shown(self.threshold, self.refine_mode.value == "thresholding")
        shown(self.sample_pixels, self.refine_mode.value == "sampling")
        shown(self.background_color, self.background_kind.value == "colour")
        shown(self.background_image, self.background_kind.value == "image")

    def say(self, message: str) -> None:
        """Record a message, show it in the status line (and print it in static mode)."""
        self.messages.append(message)
        self.status.value = "<br>".join(escape(m) for m in self.messages[-6:])
        if not self._live:
            print(message)

    def _show(self, fig: Figure, out: Any) -> None:
        if self._live:
            out.clear_output(wait=True)
            with out:
                _ipython_display(fig)
        else:
            _ipython_display(fig)
        plt.close(fig)

    def show(self, interactive: bool | None = None) -> None:
        """Display the live panel, or (fast mode / no widgets) run once with static figures."""
        from mattingkit.widgets import widgets_enabled

        self._live = widgets_enabled() if interactive is None else interactive
        if self._live:
            _ipython_display(self.widget)
        else:
            print("Static run of the studio (fast mode): the same code as the Run button.")
            self.run()

    # ---------------------------------------------------------------- media and model
    def _file_from(self, text: str, upload: Any) -> Path:
        if _upload_items(upload.value):
            return save_upload(upload.value, self._cache_folder("uploads"))
        return resolve_media(text, cache=self.cache)

    def _cache_folder(self, name: str) -> Path:
        return (self.cache if self.cache is not None else cache_dir()) / name

    def load_media(self) -> StudioMedia:
        """The frame and plate the controls describe (downloaded / decoded as needed)."""
        if self.media_choice.value != "own":
            return sample_media(self.media_choice.value)
        source = self._file_from(self.source.value, self.source_upload)
        plate = self._file_from(self.plate.value, self.plate_upload)
        if media_kind(plate) == "video":
            raise MediaError(f"the clean plate {plate.name} is a video; give an image")
        try:
            bgr = read_image(plate)
            if media_kind(source) == "video":
                return StudioMedia(
                    read_first_frame(source), bgr, source.name, video=source, plate_path=plate
                )
            return StudioMedia(read_image(source), bgr, source.name, plate_path=plate)
        except ValueError as error:
            raise MediaError(str(error)) from None

    def _weights_argument(self) -> str:
        if self.weights.value == "official":
            return self.backbone.value
        if self.weights.value == "shipped":
            return "mattingkit"
        return str(resolve_media(self.weights_file.value, cache=self.cache))

    def model_options(self) -> dict[str, Any]:
        """The ``MattingRefine`` options the refine controls ask for."""
        options: dict[str, Any] = {"refine_mode": self.refine_mode.value}
        if self.refine_mode.value == "sampling" and self.sample_pixels.value:
            options["refine_sample_pixels"] = int(self.sample_pixels.value)
        if self.refine_mode.value == "thresholding":
            options["refine_threshold"] = float(self.threshold.value)
        return options

    def matter(self) -> Any:
        """The ``Matter`` for the current controls; rebuilt only when they change."""
        from mattingkit.inference import Matter

        weights, device = self._weights_argument(), self.device.value
        if (weights, device) != self._loaded_key:
            self._loaded = None  # free the old model before loading another
            self._loaded = Matter(weights, device=device)
            self._loaded_key = (weights, device)
            if self._loaded.used_fallback:
                self.say(
                    f"⚠ The official {self.backbone.value} weights could not be downloaded "
                    "(offline, or Drive refused): using mattingkit's shipped MobileNetV2 "
                    "instead, trained on synthetic data, far below the official quality."
                )
            else:
                self.say(f"Loaded {self._loaded.weights_name} on {self._loaded.device}.")
        loaded = self._loaded
        # New settings reuse the loaded network: a Matter around the same module.
        matter = Matter(
            loaded.model, preset=self.preset.value, device=device, **self.model_options()
        )
        matter.weights_name, matter.used_fallback = loaded.weights_name, loaded.used_fallback
        return matter

    # ---------------------------------------------------------------- actions
    def run(self) -> RunStats | None:
        """Load media and model, matte, measure, and show the results figure.

        Problems (a missing file, a failed download, a bad weights file) are reported in
        the status line and ``messages`` instead of raised: a button must not fail silently.
        """
        self.run_button.disabled = True
        try:
            self.media = self.load_media()
            src = fit_size(self.media.src, self.max_side.value)
            bgr = fit_size(self.media.bgr, self.max_side.value)
            if src.shape != bgr.shape:
                raise MediaError(
                    f"frame is {tuple(src.shape[-2:])} but plate is {tuple(bgr.shape[-2:])} "
                    "(H, W): they must come from the same camera position and size"
                )
            if src.shape != self.media.src.shape:
                self.say(
                    f"Working at {src.shape[-1]}×{src.shape[-2]} (from "
                    f"{self.media.src.shape[-1]}×{self.media.src.shape[-2]}): choose 'full size' "
                    "for the original resolution."
                )
            matter = self.matter()
            self.result, self.stats = measure(matter, src[None], bgr[None], self.repeats)
            self.figure = results_figure(
                self.result, self.stats, background=self._background(), title=self.media.label
            )
            self.say(self.stats.summary())
            self._show(self.figure, self.results_out)
            return self.stats
        except (MediaError, FileNotFoundError, ValueError, TypeError, RuntimeError) as error:
            self.say(f"✗ {error}")
            return None
        finally:
            self.run_button.disabled = False

    def _background(self) -> Any:
        kind = self.background_kind.value
        if kind == "blur":
            return "blur"
        if kind == "colour":
            return self.background_color.value
        return load_image(self.background_image.value, cache=self.cache)

    def apply_background(self) -> torch.Tensor | None:
        """Composite the last result on the chosen background (no new model pass)."""
        if self.result is None:
            self.say("✗ Run the model first (button 'Run').")
            return None
        try:
            background = self._background()
            self.composite = self.result.composite(background)
        except (MediaError, ValueError, TypeError) as error:
            self.say(f"✗ {error}")
            return None
        name = (
            self.background_kind.value
            if self.background_kind.value != "colour"
            else self.background_color.value
        )
        self.composite_figure = image_grid([self.composite[0]], [f"composite on {name}"], size=6)
        self._show(self.composite_figure, self.background_out)
        return self.composite

    def export_video(self) -> Any:
        """Matte the chosen video with the current model and background.

        :func:`mattingkit.video.matte_video` shows a tqdm progress bar (a widget in
        notebooks) and keeps the source's audio; the result is in ``video_report``.
        """
        from mattingkit.video import matte_video

        if self.media is None or self.media.video is None:
            try:
                self.media = self.load_media()
            except (MediaError, ValueError) as error:
                self.say(f"✗ {error}")
                return None
        if self.media.video is None:
            self.say("✗ The media is an image: pick the sample video or a video of your own.")
            return None
        self.export_button.disabled = True
        try:
            matter = self.matter()
            out = self.video_out if self._live else None
            if out is not None:
                out.clear_output()
            context = out if out is not None else contextlib.nullcontext()
            with context:
                report = matte_video(
                    self.media.video,
                    self.media.plate_path,
                    self.output_path.value,
                    matter=matter,
                    output_types=("composite",),
                    background=self._background(),
                    overwrite=self.overwrite.value,
                    progress=True,
                    max_frames=self.max_frames.value or None,
                )
            self.video_report = report
            self.say(
                f"✓ {report.frames} frames in {report.seconds:.1f} s ({report.fps:.1f} fps) → "
                + ", ".join(str(p) for p in report.outputs.values())
                + f" (audio: {report.audio})"
            )
            return report
        except (MediaError, FileExistsError, FileNotFoundError, ValueError, RuntimeError) as error:
            self.say(f"✗ {error}")
            return None
        finally:
            self.export_button.disabled = False
