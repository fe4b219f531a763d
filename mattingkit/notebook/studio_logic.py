"""What chapter 07's studio does, as plain functions: no widgets, so every rule is tested headless.

:mod:`mattingkit.notebook.studio` is a thin widget view over this module. Here live:

* **media resolution**: the bundled samples, a local path (a mounted Google Drive too), an
  http(s) URL, a Google Drive share link, or an upload (:func:`resolve_media`,
  :func:`save_upload`, :func:`load_media`). Colab's upload widget silently drops files above
  about 1 MB, so the messages say so and offer the other routes;
* **settings**: :class:`StudioSettings`, one value per control, and :func:`visible_fields`,
  which fields each choice needs (the view shows those and hides the others);
* **run**: :class:`ModelCache` (weights loaded once, settings applied per run),
  :func:`run_model` (media → model → :class:`RunStats`), :func:`results_figure` and
  :func:`stats_html` (the numbers beside the paper's, as readable text, not inside a figure);
* **export**: :func:`check_export` (everything that can be wrong, before any work) and
  :func:`export_video` (through :func:`mattingkit.apps.video.matte_video`);
* **messages**: every outcome is a list of :class:`Message`; an error is one sentence
  (:func:`error_message`), never a traceback.

None of these functions raises for a user's mistake: :func:`run_model`,
:func:`composite_on` and :func:`export_video` return the error as a message, because a
button that fails must say why in the panel.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import statistics
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from html import escape
from pathlib import Path
from typing import Any, Union
from urllib.parse import unquote, urlparse

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from mattingkit.io import atomic_write, read_image
from mattingkit.notebook.plotting import image_grid, overlay_mask, rgba_on_checkerboard
from mattingkit.runtime import asset_path, in_colab
from mattingkit.weights.download import DownloadError, cache_dir, drive_file_url, fetch

__all__ = [
    "ALWAYS_VISIBLE",
    "BACKBONES",
    "COLAB_UPLOAD_LIMIT",
    "DEFAULT_GREEN",
    "EXPORT_FIELDS",
    "ExportOutcome",
    "FIELD_LABELS",
    "Message",
    "MediaError",
    "ModelCache",
    "PANELS",
    "RunOutcome",
    "RunStats",
    "SAMPLE_PIXELS",
    "StudioMedia",
    "StudioSettings",
    "UPLOAD_TIP",
    "COLAB_UPLOAD_NOTE",
    "COLAB_DRIVE",
    "WEIGHT_SOURCES",
    "WORKING_SIZES",
    "background_argument",
    "background_label",
    "check_export",
    "colab_upload_value",
    "composite_on",
    "error_message",
    "export_video",
    "fit_size",
    "google_drive_id",
    "load_image",
    "load_media",
    "measure",
    "media_kind",
    "messages_html",
    "model_options",
    "read_first_frame",
    "refined_patch_count",
    "resolve_media",
    "results_figure",
    "run_model",
    "sample_media",
    "save_upload",
    "stats_html",
    "figure_html",
    "progress_html",
    "visible_fields",
    "weights_argument",
    "working_pair",
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

#: What the upload row says on Colab, where the buttons open Colab's own file picker.
COLAB_UPLOAD_NOTE = (
    "On Colab the upload buttons open Colab's own file picker (google.colab.files.upload), "
    "which has no 1 MB limit: the file does not travel through widget messages. Very large "
    "videos are quicker from Google Drive: click 'mount Google Drive', then give the path "
    "(/content/drive/MyDrive/...)."
)
#: Where Colab mounts Google Drive.
COLAB_DRIVE = "/content/drive"


def colab_upload_value(picked: dict[str, bytes]) -> tuple[dict[str, Any], ...]:
    """What ``google.colab.files.upload()`` returned (``{name: bytes}``) as a ``FileUpload``
    value (the ipywidgets 8 shape), so that :func:`save_upload` takes either."""
    return tuple(
        {"name": name, "content": bytes(content), "size": len(content)}
        for name, content in picked.items()
    )


SAMPLES = ("portrait", "clip")
MEDIA_CHOICES = (("sample portrait", "portrait"), ("sample video", "clip"), ("your own", "own"))
BACKBONES = ("resnet50", "resnet101", "mobilenetv2")
WEIGHT_SOURCES = (
    ("official (downloaded on demand)", "official"),
    ("mattingkit shipped (offline, MobileNetV2)", "shipped"),
    ("a weights file (path or URL)", "file"),
)
PRESET_CHOICES = (("auto", "auto"), ("HD", "hd"), ("4K", "4k"))
REFINE_MODES = ("sampling", "thresholding", "full")
BACKGROUND_KINDS = ("colour", "image", "blur")
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


class MediaError(ValueError):
    """Media could not be found, downloaded or decoded; the message says what to do."""


# --------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    """One line for a status bar: ``level`` is ``"info"``, ``"busy"``, ``"ok"``, ``"warn"`` or ``"error"``."""

    level: str
    text: str

    def __str__(self) -> str:
        mark = {"ok": "✓ ", "warn": "⚠ ", "error": "✗ ", "busy": "⏳ "}.get(self.level, "")
        return mark + self.text


_PLAIN_ERRORS = (MediaError, FileExistsError, FileNotFoundError, ValueError, DownloadError)


def error_message(error: BaseException) -> str:
    """Any exception as one sentence for the status line (first line only, no traceback).

    Errors the studio expects (missing files, failed downloads, an existing output, a bad
    value) read as they are; anything else keeps its type name, which says where to look.
    """
    text = " ".join(str(error).split("\n", 1)[0].split()) or "no details"
    if not isinstance(error, _PLAIN_ERRORS):
        text = f"{type(error).__name__}: {text}"
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


_LEVEL_COLOURS = {"error": "#c62828", "warn": "#b26a00", "ok": "#2e7d32", "busy": "#1565c0"}


def messages_html(messages: list[Message]) -> str:
    """Messages as HTML lines at a readable size (the widget view's status lines)."""
    lines = []
    for message in messages:
        colour = _LEVEL_COLOURS.get(message.level, "inherit")
        lines.append(
            f'<div class="mk-studio-message mk-{message.level}" '
            f'style="color:{colour}; font-size:14px; line-height:1.4">{escape(str(message))}</div>'
        )
    return "".join(lines)


# --------------------------------------------------------------------------------------
# Settings and the fields each choice needs
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudioSettings:
    """Every control of the studio as a plain value (what the widgets show, or a script sets).

    Field names match :data:`FIELD_LABELS`; see :class:`mattingkit.notebook.studio.Studio` for their
    meaning. Bad choices raise ``ValueError`` with the allowed values.
    """

    media: str = "portrait"
    source: str = ""
    plate: str = ""
    backbone: str = "resnet50"
    weights: str = "official"
    weights_file: str = ""
    preset: str = "auto"
    refine_mode: str = "sampling"
    sample_pixels: int = 0
    threshold: float = 0.1
    device: str = "auto"
    max_side: int = 960
    background_kind: str = "colour"
    background_color: str = DEFAULT_GREEN
    background_image: str = ""
    output: str = "outputs/studio/composite.mp4"
    max_frames: int = 0
    overwrite: bool = False

    def __post_init__(self) -> None:
        choices = {
            "media": [v for _, v in MEDIA_CHOICES],
            "backbone": list(BACKBONES),
            "weights": [v for _, v in WEIGHT_SOURCES],
            "preset": [v for _, v in PRESET_CHOICES],
            "refine_mode": list(REFINE_MODES),
            "background_kind": list(BACKGROUND_KINDS),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    def replace(self, **changes: Any) -> StudioSettings:
        """A copy with some values changed (the settings themselves never change)."""
        return replace(self, **changes)


#: The label each field has in the panel: messages name the field to fix by it.
FIELD_LABELS = {
    "media": "media",
    "source": "frame or video",
    "source_upload": "upload frame",
    "plate": "clean plate",
    "plate_upload": "upload plate",
    "upload_note": "upload tip",
    "backbone": "backbone",
    "weights": "weights",
    "weights_file": "weights file",
    "preset": "preset",
    "refine_mode": "refine mode",
    "sample_pixels": "sample pixels",
    "threshold": "threshold",
    "device": "device",
    "max_side": "working size",
    "run": "Run",
    "background_kind": "background",
    "background_color": "colour",
    "background_image": "image",
    "background_button": "Apply background",
    "output": "video output",
    "max_frames": "max frames",
    "overwrite": "overwrite",
    "export_button": "Export video",
    "export_note": "export note",
}
#: Shown whatever the other choices are.
ALWAYS_VISIBLE = frozenset(
    {
        "media",
        "weights",
        "preset",
        "refine_mode",
        "device",
        "max_side",
        "run",
        "background_kind",
        "background_button",
    }
)
OWN_MEDIA_FIELDS = frozenset({"source", "source_upload", "plate", "plate_upload", "upload_note"})
EXPORT_FIELDS = frozenset({"output", "max_frames", "overwrite", "export_button"})


def visible_fields(settings: StudioSettings) -> frozenset[str]:
    """The fields the current choices need; the view hides every other one.

    Each choice decides only for its own fields: "your own" media needs the frame and plate
    fields and their uploads, "a weights file" its path, "official" the backbone, a refine
    mode its own parameter, a background kind its colour or image, and a video (the sample
    clip or your own media) the export fields; the sample portrait gets a note instead.
    """
    shown = set(ALWAYS_VISIBLE)
    if settings.media == "own":
        shown |= OWN_MEDIA_FIELDS
    if settings.weights == "official":
        shown.add("backbone")
    elif settings.weights == "file":
        shown.add("weights_file")
    if settings.refine_mode == "sampling":
        shown.add("sample_pixels")
    elif settings.refine_mode == "thresholding":
        shown.add("threshold")
    if settings.background_kind == "colour":
        shown.add("background_color")
    elif settings.background_kind == "image":
        shown.add("background_image")
    if settings.media == "portrait":
        shown.add("export_note")
    else:
        shown |= EXPORT_FIELDS
    return frozenset(shown)


def model_options(settings: StudioSettings) -> dict[str, Any]:
    """The ``MattingRefine`` options the refine controls ask for."""
    options: dict[str, Any] = {"refine_mode": settings.refine_mode}
    if settings.refine_mode == "sampling" and settings.sample_pixels:
        options["refine_sample_pixels"] = int(settings.sample_pixels)
    if settings.refine_mode == "thresholding":
        options["refine_threshold"] = float(settings.threshold)
    return options


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
    field: str | None = None,
    cache: PathLike | None = None,
    timeout: float = 20.0,
    downloader: Any = None,
) -> Path:
    """A local file for a path, an http(s) URL or a Google Drive share link.

    ``field`` is the label of the panel field the text came from: every message names it,
    so the user knows which field to fix. Downloads go through
    :func:`mattingkit.weights.download.fetch` into ``<cache>/media/<hash>/`` (default
    :func:`mattingkit.weights.download.cache_dir`): complete files only, an HTML page (Drive's quota
    or sign-in page) is refused, and the same URL is not downloaded twice.

    Raises:
        MediaError: nothing given, file missing, or the download failed (with the reason:
            no network, connection refused, HTTP 404, Drive refused, ...).
    """
    where = f"“{field}”: " if field else ""
    text = str(source).strip().strip("'\"")
    if not text:
        place = f" in “{field}”" if field else ""
        raise MediaError(
            f"no file given{place}: type a path, an http(s) URL or a Google Drive link"
            + (", or use its upload button" if field in ("frame or video", "clean plate") else "")
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
                f"{where}could not download {text}: {reasons}. Open the address in a browser to "
                "check it; a Google Drive file must be shared with 'Anyone with the link'. "
                "Or download it yourself and give its path"
            ) from None
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise MediaError(f"{where}{path} is a folder; give the file inside it")
    raise MediaError(f"{where}file not found: {path}.{_missing_file_hint(path)}")


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
        if in_colab():
            raise MediaError(
                "nothing uploaded yet: click 'upload frame' or 'upload plate' to open "
                "Colab's file picker, or mount Google Drive and give a path."
            )
        raise MediaError("nothing uploaded yet.")
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


def load_image(
    source: PathLike, *, field: str | None = None, **resolve_options: Any
) -> torch.Tensor:
    """An image from a path, URL or Drive link as (3, H, W) float32 in [0, 1].

    Raises :class:`MediaError` when it is missing, a video, or not a decodable image.
    """
    path = resolve_media(source, field=field, **resolve_options)
    where = f"“{field}”: " if field else ""
    if media_kind(path) == "video":
        raise MediaError(
            f"{where}{path.name} is a video; give an image here (a video goes in the "
            "frame/video field)"
        )
    try:
        return read_image(path)
    except ValueError as error:
        raise MediaError(f"{where}{error}") from None


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


def sample_media(name: str = "portrait") -> StudioMedia:
    """The bundled samples: ``"portrait"`` (an image with true alpha) or ``"clip"`` (video)."""
    from mattingkit.data.synthetic import load_sample

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


def _file_from(text: str, upload: Any, field: str, cache: Path | None) -> Path:
    """An upload wins over the text field (the user chose it last); else the text."""
    if _upload_items(upload):
        return save_upload(upload, (cache if cache is not None else cache_dir()) / "uploads")
    return resolve_media(text, field=field, cache=cache)


def load_media(
    settings: StudioSettings, uploads: dict[str, Any] | None = None, cache: PathLike | None = None
) -> StudioMedia:
    """The frame and plate the settings describe (downloaded, saved or decoded as needed).

    ``uploads`` maps ``"source"``/``"plate"`` to a ``FileUpload`` value. Raises
    :class:`MediaError` naming the field to fix.
    """
    if settings.media != "own":
        return sample_media(settings.media)
    uploads = uploads or {}
    folder = Path(cache) if cache is not None else None
    source = _file_from(settings.source, uploads.get("source"), FIELD_LABELS["source"], folder)
    plate = _file_from(settings.plate, uploads.get("plate"), FIELD_LABELS["plate"], folder)
    if media_kind(plate) == "video":
        raise MediaError(f"the clean plate {plate.name} is a video; give an image")
    try:
        bgr = read_image(plate)
    except ValueError as error:
        raise MediaError(f"“clean plate”: {error}") from None
    if media_kind(source) == "video":
        return StudioMedia(
            read_first_frame(source), bgr, source.name, video=source, plate_path=plate
        )
    try:
        return StudioMedia(read_image(source), bgr, source.name, plate_path=plate)
    except ValueError as error:
        raise MediaError(f"“frame or video”: {error}") from None


def working_pair(
    media: StudioMedia, max_side: int | None
) -> tuple[torch.Tensor, torch.Tensor, str | None]:
    """Frame and plate at the working size, and a note when they were shrunk.

    Raises :class:`MediaError` when frame and plate differ in size.
    """
    src, bgr = fit_size(media.src, max_side), fit_size(media.bgr, max_side)
    if src.shape != bgr.shape:
        raise MediaError(
            f"the frame is {tuple(src.shape[-2:])} but the plate is {tuple(bgr.shape[-2:])} "
            "(H, W): they must come from the same camera position and size"
        )
    note = None
    if src.shape != media.src.shape:
        note = (
            f"Working at {src.shape[-1]}×{src.shape[-2]} (from {media.src.shape[-1]}×"
            f"{media.src.shape[-2]}): choose 'full size' for the original resolution."
        )
    return src, bgr, note


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------
def weights_argument(settings: StudioSettings, cache: PathLike | None = None) -> str:
    """What ``Matter`` is given: a backbone name, ``"mattingkit"`` or a local weights file."""
    if settings.weights == "official":
        return settings.backbone
    if settings.weights == "shipped":
        return "mattingkit"
    return str(
        resolve_media(settings.weights_file, field=FIELD_LABELS["weights_file"], cache=cache)
    )


class ModelCache:
    """The loaded network, kept across runs: new settings reuse it, new weights reload it.

    :meth:`get` returns a ``Matter`` with the settings' preset and refine options around the
    loaded module, and what loading said (the fallback warning becomes a message instead of
    a line on stderr, which in a notebook would land in the log console).
    """

    def __init__(self) -> None:
        self.loaded: Any = None
        self.key: tuple[str, str] | None = None

    def get(
        self, settings: StudioSettings, cache: PathLike | None = None
    ) -> tuple[Any, list[Message]]:
        from mattingkit.apps.inference import Matter

        weights, device = weights_argument(settings, cache), settings.device
        messages: list[Message] = []
        if (weights, device) != self.key:
            self.loaded, self.key = None, None  # free the old model before loading another
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                loaded = Matter(weights, device=device)
            if loaded.used_fallback:
                messages.append(
                    Message(
                        "warn",
                        f"The official {settings.backbone} weights could not be downloaded "
                        "(offline, or Drive refused): using mattingkit's shipped MobileNetV2 "
                        "instead, trained on synthetic data, far below the official quality.",
                    )
                )
            else:
                messages.append(
                    Message("info", f"Loaded {loaded.weights_name} on {loaded.device}.")
                )
                messages += [
                    Message("warn", " ".join(str(w.message).split()))
                    for w in caught
                    if not issubclass(w.category, (DeprecationWarning, FutureWarning))
                ]
            self.loaded, self.key = loaded, (weights, device)
        loaded = self.loaded
        matter = Matter(
            loaded.model, preset=settings.preset, device=device, **model_options(settings)
        )
        matter.weights_name, matter.used_fallback = loaded.weights_name, loaded.used_fallback
        return matter, messages


# --------------------------------------------------------------------------------------
# Measuring a run
# --------------------------------------------------------------------------------------
def refined_patch_count(ref: torch.Tensor) -> int:
    """Patches refined, from a full-resolution ``ref`` map: one top-left pixel per 4×4 patch.

    (Summing the map and dividing by 16 is wrong at the border of a frame whose size is not
    a multiple of 4: the edge patches are cropped.)
    """
    return int(ref[..., ::4, ::4].sum())


@dataclass(frozen=True)
class RunStats:
    """What one studio run measured, and the paper's figures to compare with. Chapter 07.

    ``seconds`` is the median model time of one frame over the timed repeats (after one
    untimed warm-up pass); ``gmacs`` counts convolutions and matrix products of that frame
    (at ``width``×``height``) like :func:`mattingkit.speed.profile.gmacs`. The paper's numbers are
    for 1920×1080 (HD) or 3840×2160 (4K) on an RTX 2080 Ti: a different size and machine.
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
    repeats: int = 1
    gmacs: float | None = None
    refined_patches: int = 0
    paper_resolution: str = "HD"
    paper_fps: float | None = None
    paper_gmacs: float | None = None

    @property
    def fps(self) -> float:
        return 1.0 / self.seconds if self.seconds > 0 else math.inf

    @property
    def paper_size(self) -> str:
        return "1920×1080" if self.paper_resolution == "HD" else "3840×2160"

    def _gmac_text(self) -> str:
        return f"{self.gmacs:.2f} GMac" if self.gmacs is not None else "GMac n/a"

    def summary(self) -> str:
        """One line: measured fps and GMac, then the paper's at its own size."""
        line = (
            f"{self.weights_name}: {self.fps:.1f} fps, {self._gmac_text()} at "
            f"{self.width}×{self.height} on {self.device}, {self.refined_patches:,} patches refined"
        )
        if self.paper_fps is not None:
            line += (
                f" | paper at {self.paper_size} ({self.paper_resolution}, RTX 2080 Ti): "
                f"{self.paper_fps:.1f} fps, {self.paper_gmacs:.1f} GMac"
            )
        return line

    def lines(self) -> list[str]:
        """A few lines for a print: measured, then the paper's."""
        settings = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        lines = [
            f"model: {self.weights_name} ({self.backbone})"
            + (" — FALLBACK, official weights unavailable" if self.used_fallback else ""),
            f"settings: {settings}",
            f"measured at {self.width}×{self.height} on {self.device} ({self.precision}): "
            f"{self.fps:.1f} fps ({1000 * self.seconds:.0f} ms, median of {self.repeats}), "
            f"{self._gmac_text()}, {self.refined_patches:,} patches refined",
        ]
        if self.paper_fps is not None:
            lines.append(
                f"paper at {self.paper_size} ({self.paper_resolution}, RTX 2080 Ti): "
                f"{self.paper_fps:.1f} fps, {self.paper_gmacs:.1f} GMac"
            )
        return lines


def measure(
    matter: Any,
    src: torch.Tensor,
    bgr: torch.Tensor,
    repeats: int = 3,
    progress: Callable[[str], None] | None = None,
) -> tuple[Any, RunStats]:
    """Run ``matter(src, bgr)`` once untimed (warm-up), then ``repeats`` timed times.

    GMac are counted on this very frame with :func:`mattingkit.speed.profile.gmacs` (in
    thresholding mode the number of refined patches depends on the content). ``progress``
    is told each step. Returns the first result and a :class:`RunStats`.
    """
    from mattingkit.core.paper import TABLE3
    from mattingkit.speed.profile import gmacs

    step = progress or (lambda text: None)
    repeats = max(1, int(repeats))
    step("warm-up pass")
    result = matter(src, bgr)
    times = []
    for i in range(repeats):
        step(f"timed pass {i + 1} of {repeats}")
        times.append(matter(src, bgr).seconds)
    step("counting GMac")
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
        repeats=repeats,
        gmacs=cost,
        refined_patches=refined_patch_count(result.ref[0]),
        paper_resolution=resolution.upper(),
        paper_fps=paper.fps if paper else None,
        paper_gmacs=paper.gmacs if paper else None,
    )
    return result, stats


def stats_html(stats: RunStats) -> str:
    """The run's numbers beside the paper's, as an HTML table at a readable size.

    Text inside a matplotlib figure shrinks with the figure when the notebook scales it to
    the page; an HTML table stays at the page's font size.
    """
    fallback = (
        ' <b style="color:#b26a00">FALLBACK: the official weights were unavailable</b>'
        if stats.used_fallback
        else ""
    )
    paper = (
        (f"{stats.paper_fps:.1f}", f"{stats.paper_gmacs:.1f}")
        if stats.paper_fps is not None
        else ("n/a", "n/a")
    )
    gmac = f"{stats.gmacs:.2f}" if stats.gmacs is not None else "n/a"
    cell = 'style="padding:2px 12px 2px 0; text-align:left"'
    rows = [
        (
            "",
            f"measured here ({stats.device}, {stats.precision})",
            f"paper ({stats.paper_resolution}, RTX 2080 Ti)",
        ),
        ("frame size", f"{stats.width}×{stats.height}", stats.paper_size),
        (
            "frames per second",
            f"{stats.fps:.1f} ({1000 * stats.seconds:.0f} ms, median of {stats.repeats})",
            paper[0],
        ),
        ("GMac per frame", gmac, paper[1]),
        ("patches refined", f"{stats.refined_patches:,}", ""),
    ]
    body = "".join(
        "<tr>" + "".join(f"<td {cell}>{escape(str(value))}</td>" for value in row) + "</tr>"
        for row in rows
    )
    settings = ", ".join(f"{k}={v}" for k, v in stats.settings.items())
    return (
        '<div class="mk-studio-numbers" style="font-size:14px; line-height:1.4; margin:6px 0">'
        f"<div>model: <b>{escape(stats.weights_name)}</b> ({escape(stats.backbone)}){fallback}</div>"
        f'<table style="border-collapse:collapse; font-size:14px">{body}</table>'
        f"<div>settings: {escape(settings)}</div>"
        "<div><i>Different sizes and machines: compare GMac with the paper only at the "
        "same frame size, fps only on the same machine.</i></div></div>"
    )


def figure_html(fig: Figure, alt: str) -> str:
    """``fig`` as an ``<img>`` (an inline PNG) for an HTML widget.

    The panel shows figures in HTML widgets, not ``Output`` widgets: the ``Output`` model of
    widgetsnbextension 3.6 (ipywidgets 7, Colab's pin) cannot be created in Notebook 6.5
    (``_deserialize_state is not a function``), and one child that fails takes the whole panel
    with it. An HTML widget draws the same in ipywidgets 7 and 8.
    """
    import base64
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=fig.dpi)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}" '
        'style="max-width:100%; height:auto">'
    )


def progress_html(done: int, total: int | None, text: str) -> str:
    """A progress bar and tqdm's line (``text``) as HTML, for the export's HTML widget."""
    bar = (
        f'<progress value="{done}" max="{total}" style="width:20em"></progress>'
        if total
        else '<progress style="width:20em"></progress>'
    )
    return f"<div>{bar} <code>{escape(text)}</code></div>"


# --------------------------------------------------------------------------------------
# Running, compositing, exporting: outcomes with messages
# --------------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    """What :func:`run_model` produced: the result and its stats, or only messages."""

    messages: list[Message]
    media: StudioMedia | None = None
    result: Any = None
    stats: RunStats | None = None

    @property
    def ok(self) -> bool:
        return self.stats is not None


def run_model(
    settings: StudioSettings,
    models: ModelCache,
    *,
    uploads: dict[str, Any] | None = None,
    cache: PathLike | None = None,
    repeats: int = 3,
    progress: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Load media and model, matte, measure: everything the Run button does but drawing.

    Never raises for a user's mistake: the error is the outcome's last message.
    """
    step = progress or (lambda text: None)
    messages: list[Message] = []
    try:
        step("reading the media")
        media = load_media(settings, uploads, cache)
        src, bgr, note = working_pair(media, settings.max_side)
        if note:
            messages.append(Message("info", note))
        step("loading the model")
        matter, notes = models.get(settings, cache)
        messages += notes
        result, stats = measure(
            matter,
            src[None],
            bgr[None],
            repeats,
            progress=lambda text: step(f"{text} at {src.shape[-1]}×{src.shape[-2]}"),
        )
    except Exception as error:  # noqa: BLE001 -- one sentence in the panel, never a traceback
        messages.append(Message("error", error_message(error)))
        return RunOutcome(messages)
    messages.append(Message("ok", stats.summary()))
    return RunOutcome(messages, media, result, stats)


def background_argument(settings: StudioSettings, cache: PathLike | None = None) -> Any:
    """What ``MatteResult.composite`` takes for the chosen background (an image is loaded)."""
    if settings.background_kind == "blur":
        return "blur"
    if settings.background_kind == "colour":
        return settings.background_color
    return load_image(
        settings.background_image, field=FIELD_LABELS["background_image"], cache=cache
    )


def background_label(settings: StudioSettings) -> str:
    if settings.background_kind == "colour":
        return settings.background_color
    if settings.background_kind == "image":
        return Path(settings.background_image.strip()).name or "image"
    return "the blurred plate"


def composite_on(
    result: Any, settings: StudioSettings, cache: PathLike | None = None
) -> tuple[torch.Tensor | None, list[Message]]:
    """The last result on the chosen background (no new model pass), or why not."""
    if result is None:
        return None, [Message("error", "Run the model first (button 'Run').")]
    try:
        composite = result.composite(background_argument(settings, cache))
    except Exception as error:  # noqa: BLE001
        return None, [Message("error", error_message(error))]
    return composite, [Message("ok", f"Composite on {background_label(settings)}.")]


def check_export(settings: StudioSettings, media: StudioMedia | None) -> Path:
    """Everything that can be wrong with an export, before any work; returns the output path.

    Raises:
        MediaError: the media is an image, or no output name was given.
        FileExistsError: the output exists and "overwrite" is off: a file the user made is
            never replaced silently.
        ValueError: an output name the writer cannot write.
    """
    from mattingkit.apps.video import output_paths

    if media is None or media.video is None:
        raise MediaError(
            "the media is an image: choose 'sample video' or a video of your own to export"
        )
    if not settings.output.strip():
        raise MediaError(
            "no file given in “video output”: type where the video goes, e.g. "
            "outputs/studio/composite.mp4"
        )
    targets = output_paths(Path(settings.output.strip()).expanduser(), ("composite",))
    existing = [path for path in targets.values() if path.exists()]
    if existing and not settings.overwrite:
        raise FileExistsError(
            f"{existing[0]} already exists: tick “overwrite an existing file” or give "
            "another name in “video output”"
        )
    return targets["composite"]


@dataclass
class ExportOutcome:
    """What :func:`export_video` produced: a :class:`mattingkit.apps.video.VideoReport`, or messages."""

    messages: list[Message]
    report: Any = None


def export_video(
    settings: StudioSettings,
    models: ModelCache,
    *,
    uploads: dict[str, Any] | None = None,
    cache: PathLike | None = None,
    progress: bool = True,
) -> ExportOutcome:
    """Matte the chosen video with the current model and background, keeping its audio.

    The media is read from the current settings (not from an older run), and
    :func:`check_export` runs before the model loads. Never raises for a user's mistake.
    """
    from mattingkit.apps.video import matte_video

    try:
        media = load_media(settings, uploads, cache)
        output = check_export(settings, media)
        background = background_argument(settings, cache)
        matter, messages = models.get(settings, cache)
        report = matte_video(
            media.video,
            media.plate_path,
            output,
            matter=matter,
            output_types=("composite",),
            background=background,
            overwrite=settings.overwrite,
            progress=progress,
            max_frames=settings.max_frames or None,
        )
    except Exception as error:  # noqa: BLE001 -- one sentence in the panel, never a traceback
        return ExportOutcome([Message("error", error_message(error))])
    messages.append(
        Message(
            "ok",
            f"{report.frames} frames in {report.seconds:.1f} s ({report.fps:.1f} fps) → "
            + ", ".join(str(p) for p in report.outputs.values())
            + f" (audio: {report.audio})",
        )
    )
    return ExportOutcome(messages, report)


# --------------------------------------------------------------------------------------
# The results figure
# --------------------------------------------------------------------------------------
PANELS = ("source", "plate", "alpha", "foreground", "error map", "refined patches", "composite")


def results_figure(
    result: Any,
    *,
    background: Any = DEFAULT_GREEN,
    true_pha: torch.Tensor | None = None,
    title: str | None = None,
    index: int = 0,
    size: float = 3.2,
) -> Figure:
    """The seven panels side by side, plus the alpha error when the truth is known. Chapter 07.

    source, plate, alpha, foreground (over a checkerboard), error map (stretched to its
    maximum, which the title gives: the predicted errors are small), refined patches (the
    4×4 patches the refiner re-predicted, tinted red on the frame) and the composite on
    ``background``. An eighth panel shows ``|α − α*|`` when ``true_pha`` (1, H, W) is
    given. The numbers go beside the figure (:func:`stats_html`, ``RunStats.lines``), not
    into it, where they would shrink with it.
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
    return fig


def settings_fields() -> tuple[str, ...]:
    """The names of :class:`StudioSettings`' fields, in order."""
    return tuple(f.name for f in fields(StudioSettings))
