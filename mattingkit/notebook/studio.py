"""The inference studio of chapter 07: your media in, a matte out, beside the paper's numbers.

Chapter 07 lets you try the pretrained model on the sample media or on your own before
adopting it. The notebook teaches; the panel lives here. It is a thin widget view: what a
button does is a plain function of :mod:`mattingkit.notebook.studio_logic` (media resolution,
settings, the fields each choice needs, run, export, messages), tested without widgets;
this module only turns widget values into :class:`~mattingkit.notebook.studio_logic.StudioSettings`
and outcomes into what the panel shows.

* **media**: the bundled samples, a path (a mounted Google Drive too), an http(s) URL, a
  Google Drive share link, or an upload. On Colab, where the upload widget silently drops
  files above ~1 MB, the upload buttons open Colab's own file picker instead
  (``google.colab.files.upload``, no widget messages, no limit) and a button mounts Google
  Drive; a path under ``/content/drive`` mounts it by itself. Elsewhere the ``FileUpload``
  widget stays;
* **model**: backbone, official weights (downloaded on demand; offline the shipped model is
  used and the panel says so) or a weights file; HD/4K preset, refine mode, sample pixels;
* **results**: source, plate, alpha, foreground, error map, refined patches and composite in
  one figure, the measured fps and GMac beside the paper's Table 3 in a table under it;
* **a new background** (colour, image, the blurred plate) without running the model again;
* **video export** with a progress bar, through :func:`mattingkit.apps.video.matte_video`.

Each section has its own status line under its button, so the answer to a click appears
where the user is looking; an error is one sentence there, never a traceback. Only core
ipywidgets are used (JupyterLab, Notebook 7, VS Code and Colab need no setup), and only
those that draw the same on ipywidgets 7 (Colab's 7.7.1) and 8: figures and the export's
progress bar are HTML widgets updated from Python, not ``Output`` widgets, whose model
widgetsnbextension 3.6 cannot create in Notebook 6.5 (one failing child blanks the panel).
``Studio.show()`` displays the live panel; in fast mode (tests, CI) it runs the very same
code once with the current values and shows static figures instead.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
from collections.abc import Callable, Iterator
from html import escape
from pathlib import Path
from typing import Any, Union

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from mattingkit.notebook import studio_logic as logic
from mattingkit.notebook.plotting import image_grid
from mattingkit.notebook.studio_logic import (  # noqa: F401 -- the studio's public names, re-exported
    BACKBONES,
    COLAB_UPLOAD_LIMIT,
    DEFAULT_GREEN,
    FIELD_LABELS,
    PANELS,
    SAMPLE_PIXELS,
    UPLOAD_TIP,
    WEIGHT_SOURCES,
    WORKING_SIZES,
    MediaError,
    Message,
    ModelCache,
    RunStats,
    StudioMedia,
    StudioSettings,
    fit_size,
    google_drive_id,
    load_image,
    measure,
    media_kind,
    read_first_frame,
    refined_patch_count,
    resolve_media,
    results_figure,
    sample_media,
    save_upload,
    stats_html,
    visible_fields,
)
from mattingkit.runtime import fast_mode, in_colab

__all__ = [
    "COLAB_UPLOAD_LIMIT",
    "MediaError",
    "RunStats",
    "Studio",
    "StudioMedia",
    "StudioSettings",
    "fit_size",
    "google_drive_id",
    "load_image",
    "measure",
    "media_kind",
    "read_first_frame",
    "refined_patch_count",
    "resolve_media",
    "results_figure",
    "sample_media",
    "save_upload",
    "stats_html",
    "visible_fields",
]

PathLike = Union[str, os.PathLike]


def _ipython_display(obj: Any) -> None:
    """``IPython.display.display`` inside a kernel; nothing outside one (scripts, tests)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        display(obj)


@contextlib.contextmanager
def _tqdm_into(view: Any) -> Iterator[None]:
    """Draw the tqdm bars started inside the block in the HTML widget ``view``.

    :func:`~mattingkit.apps.video.matte_video` takes ``tqdm.auto.tqdm`` when it runs; in a
    kernel that is the notebook bar, which shows under the button only inside an ``Output``
    widget (see the module's note on ipywidgets 7). This bar writes its line into ``view``.
    """
    import tqdm.auto
    from tqdm.std import tqdm as text_bar

    class WidgetBar(text_bar):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["file"] = io.StringIO()  # nothing reaches stderr (a red box in a notebook)
            kwargs.setdefault("mininterval", 0.5)
            super().__init__(*args, **kwargs)

        def display(self, msg: str | None = None, pos: int | None = None) -> bool:
            view.value = logic.progress_html(self.n, self.total, str(self))
            return True

    previous = tqdm.auto.tqdm
    tqdm.auto.tqdm = WidgetBar
    try:
        yield
    finally:
        tqdm.auto.tqdm = previous


class _nothing:
    """A context manager that does nothing (``contextlib.nullcontext`` for Python 3.9)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class Studio:
    """The chapter 07 inference panel: media, model and settings, run, look, export.

    Build it, set values, ``show()`` it. Everything the buttons do is a method too
    (:meth:`run`, :meth:`apply_background`, :meth:`export_video`), so a test or a script can
    drive it: set ``studio.<control>.value`` and call ``studio.run_button.click()``. The
    last results stay on the object: ``result`` (the ``Matter`` result), ``stats``
    (:class:`RunStats`), ``figure``, ``composite``, ``video_report`` and ``messages``
    (every :class:`Message` shown, oldest first). ``settings()`` returns the controls'
    values as a :class:`StudioSettings`; ``controls`` maps each field name to its widget
    (each with its own ``Layout`` and a CSS class ``mk-studio-<name>``).

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
        kind = (
            "blur"
            if background == "blur"
            else ("colour" if background.startswith("#") else "image")
        )
        initial = StudioSettings(  # checks every choice before a widget exists
            media=media,
            source=source,
            plate=plate,
            backbone=backbone,
            weights=weights,
            weights_file=weights_file,
            preset=preset,
            refine_mode=refine_mode,
            sample_pixels=sample_pixels,
            threshold=threshold,
            device=device,
            max_side=max_side,
            background_kind=kind,
            background_color=background if kind == "colour" else DEFAULT_GREEN,
            background_image=background if kind == "image" else "",
            output=output,
            max_frames=max_frames,
        )
        self.repeats = repeats if repeats is not None else (1 if fast_mode() else 3)
        self.cache = Path(cache) if cache is not None else None
        self.models = ModelCache()
        self.result: Any = None
        self.stats: RunStats | None = None
        self.media: StudioMedia | None = None
        self.figure: Figure | None = None
        self.composite: torch.Tensor | None = None
        self.composite_figure: Figure | None = None
        self.video_report: Any = None
        self.messages: list[Message] = []
        self._live = False
        self._idle_labels: dict[int, str] = {}

        style = {"description_width": "9em"}

        def wide() -> Any:  # one Layout per widget: hiding one field must hide only that one
            return w.Layout(width="46em")

        def text(value: str, description: str, **options: Any) -> Any:
            return w.Text(
                value=value, description=description, style=style, layout=wide(), **options
            )

        self.media_choice = w.ToggleButtons(
            options=list(logic.MEDIA_CHOICES), value=media, description="media", style=style
        )
        self.source = text(
            source, "frame or video", placeholder="path, http(s) URL or Google Drive link"
        )
        self.plate = text(
            plate, "clean plate", placeholder="path, http(s) URL or Google Drive link (an image)"
        )
        #: On Colab: Colab's file picker and Drive instead of the FileUpload widget (whose
        #: uploads of about 1 MB or more vanish there, ipywidgets issue 3452).
        self.colab = in_colab()
        self.colab_uploads: dict[str, tuple[dict[str, Any], ...]] = {}
        #: Colab's picker and Drive's consent are drawn into an Output widget. Only on Colab,
        #: whose own front end draws Output widgets; Notebook 6.5's ipywidgets 7 cannot.
        self.upload_out = w.Output() if self.colab else None
        if self.colab:
            self.source_upload = w.Button(description="upload frame", icon="upload")
            self.plate_upload = w.Button(description="upload plate", icon="upload")
            self.drive_button = w.Button(description="mount Google Drive", icon="hdd-o")
            note = logic.COLAB_UPLOAD_NOTE
        else:
            self.source_upload = w.FileUpload(accept="image/*,video/*", description="upload frame")
            self.plate_upload = w.FileUpload(accept="image/*", description="upload plate")
            self.drive_button = None
            note = UPLOAD_TIP
        self.upload_note = w.HTML(f"<small>{escape(note)}</small>", layout=wide())

        self.backbone = w.Dropdown(
            options=list(BACKBONES), value=backbone, description="backbone", style=style
        )
        self.weights = w.Dropdown(
            options=list(WEIGHT_SOURCES), value=weights, description="weights", style=style
        )
        self.weights_file = text(
            weights_file, "weights file", placeholder="state_dict or TorchScript .pth (path or URL)"
        )
        self.preset = w.ToggleButtons(
            options=list(logic.PRESET_CHOICES), value=preset, description="preset", style=style
        )
        self.refine_mode = w.ToggleButtons(
            options=list(logic.REFINE_MODES),
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
        self.run_progress = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="20em"))
        self.status = w.HTML()

        self.background_kind = w.ToggleButtons(
            options=list(logic.BACKGROUND_KINDS), value=kind, description="background", style=style
        )
        self.background_color = w.ColorPicker(
            value=initial.background_color, description="colour", style=style
        )
        self.background_image = text(
            initial.background_image, "image", placeholder="path, http(s) URL or Google Drive link"
        )
        self.background_button = w.Button(description="Apply background", icon="image")
        self.background_status = w.HTML()

        self.output_path = text(output, "video output")
        self.max_frames = w.BoundedIntText(
            value=max_frames, min=0, max=1_000_000, description="max frames (0 = all)", style=style
        )
        self.overwrite = w.Checkbox(value=False, description="overwrite an existing file")
        self.export_button = w.Button(description="Export video", icon="film")
        self.export_note = w.HTML(
            "<small>Export needs a video: choose <i>sample video</i> or <i>your own</i> video "
            "above.</small>"
        )
        self.export_status = w.HTML()

        # HTML widgets, not Output widgets: they draw on ipywidgets 7 and 8 alike.
        self.results_view = w.HTML()
        self.stats_view = w.HTML()
        self.background_view = w.HTML()
        self.video_view = w.HTML()

        #: field name (see ``FIELD_LABELS``) -> widget; visibility follows ``visible_fields``.
        self.controls: dict[str, Any] = {
            "media": self.media_choice,
            "source": self.source,
            "source_upload": self.source_upload,
            "plate": self.plate,
            "plate_upload": self.plate_upload,
            "upload_note": self.upload_note,
            "backbone": self.backbone,
            "weights": self.weights,
            "weights_file": self.weights_file,
            "preset": self.preset,
            "refine_mode": self.refine_mode,
            "sample_pixels": self.sample_pixels,
            "threshold": self.threshold,
            "device": self.device,
            "max_side": self.max_side,
            "run": self.run_button,
            "background_kind": self.background_kind,
            "background_color": self.background_color,
            "background_image": self.background_image,
            "background_button": self.background_button,
            "output": self.output_path,
            "max_frames": self.max_frames,
            "overwrite": self.overwrite,
            "export_button": self.export_button,
            "export_note": self.export_note,
        }
        for name, widget in self.controls.items():
            widget.add_class(f"mk-studio-{name.replace('_', '-')}")
        for name, widget in (
            ("status", self.status),
            ("background-status", self.background_status),
            ("export-status", self.export_status),
            ("run-progress", self.run_progress),
            ("results", self.results_view),
            ("stats", self.stats_view),
            ("composite", self.background_view),
            ("video", self.video_view),
        ):
            widget.add_class(f"mk-studio-{name}")
        if self.upload_out is not None:
            self.upload_out.add_class("mk-studio-upload-out")
        if self.drive_button is not None:
            self.drive_button.add_class("mk-studio-drive-mount")
            self.source_upload.on_click(
                self._guarded(lambda: self.colab_upload("source"), "upload_status")
            )
            self.plate_upload.on_click(
                self._guarded(lambda: self.colab_upload("plate"), "upload_status")
            )
            self.drive_button.on_click(self._guarded(self.mount_drive, "upload_status"))
        self.upload_status = w.HTML()
        self.upload_status.add_class("mk-studio-upload-status")
        self.run_progress.layout.display = "none"

        self.run_button.on_click(self._guarded(self.run, "status"))
        self.background_button.on_click(self._guarded(self.apply_background, "background_status"))
        self.export_button.on_click(self._guarded(self.export_video, "export_status"))
        for control in (self.media_choice, self.weights, self.refine_mode, self.background_kind):
            control.observe(lambda _: self._update_visibility(), names="value")

        section = lambda title: w.HTML(f"<b>{title}</b>")  # noqa: E731
        self.widget = w.VBox(
            [
                section("1 · Media"),
                self.media_choice,
                self.source,
                w.HBox(
                    [self.source_upload, self.plate_upload]
                    + ([self.drive_button] if self.drive_button is not None else [])
                ),
                self.plate,
                self.upload_note,
                self.upload_status,
                *([self.upload_out] if self.upload_out is not None else []),
                section("2 · Model and settings"),
                w.HBox([self.weights, self.backbone]),
                self.weights_file,
                self.preset,
                self.refine_mode,
                w.HBox([self.sample_pixels, self.threshold]),
                w.HBox([self.device, self.max_side]),
                w.HBox([self.run_button, self.run_progress]),
                self.status,
                self.results_view,
                self.stats_view,
                section("3 · New background"),
                self.background_kind,
                self.background_color,
                self.background_image,
                self.background_button,
                self.background_status,
                self.background_view,
                section("4 · Export a video"),
                self.export_note,
                self.output_path,
                w.HBox([self.max_frames, self.overwrite]),
                self.export_button,
                self.export_status,
                self.video_view,
            ]
        )
        self.widget.add_class("mk-studio")
        self._update_visibility()

    # ---------------------------------------------------------------- view helpers
    def settings(self) -> StudioSettings:
        """The controls' current values as plain settings (what the logic functions take)."""
        return StudioSettings(
            media=self.media_choice.value,
            source=self.source.value,
            plate=self.plate.value,
            backbone=self.backbone.value,
            weights=self.weights.value,
            weights_file=self.weights_file.value,
            preset=self.preset.value,
            refine_mode=self.refine_mode.value,
            sample_pixels=int(self.sample_pixels.value),
            threshold=float(self.threshold.value),
            device=self.device.value,
            max_side=int(self.max_side.value or 0),
            background_kind=self.background_kind.value,
            background_color=self.background_color.value,
            background_image=self.background_image.value,
            output=self.output_path.value,
            max_frames=int(self.max_frames.value),
            overwrite=bool(self.overwrite.value),
        )

    def _uploads(self) -> dict[str, Any]:
        if self.colab:
            return {field: self.colab_uploads.get(field, ()) for field in ("source", "plate")}
        return {"source": self.source_upload.value, "plate": self.plate_upload.value}

    def _update_visibility(self) -> None:
        visible = visible_fields(self.settings())
        for name, widget in self.controls.items():
            widget.layout.display = None if name in visible else "none"
        if self.drive_button is not None:
            self.drive_button.layout.display = self.source_upload.layout.display

    # ---------------------------------------------------------------- Colab's own upload path
    def colab_upload(self, field: str) -> str | None:
        """Colab only: pick the ``field`` ("source" or "plate") file with Colab's own file
        picker (``google.colab.files.upload``: the bytes do not travel through widget
        messages, so the ~1 MB limit of the upload widget does not apply). Returns the name."""
        from google.colab import files  # type: ignore[import-not-found]

        if self._live and self.upload_out is not None:  # the picker: under the buttons
            self.upload_out.clear_output()
            with self.upload_out:
                picked = files.upload()
            self.upload_out.clear_output()
        else:
            picked = files.upload()
        value = logic.colab_upload_value(picked or {})
        if not value:
            self._say("upload_status", [Message("warn", "no file was chosen.")])
            return None
        self.colab_uploads[field] = value[-1:]
        item = value[-1]
        what = {"source": "frame or video", "plate": "clean plate"}
        self._say(
            "upload_status",
            [
                Message(
                    "ok", f"{chosen[0]['name']} ({chosen[0]['size']:,} bytes) is the {what[key]}."
                )
                for key, chosen in self.colab_uploads.items()
            ],
        )
        return str(item["name"])

    def mount_drive(self) -> str:
        """Colab only: mount Google Drive at ``/content/drive`` (Colab asks for permission)."""
        from google.colab import drive  # type: ignore[import-not-found]

        with self.upload_out if self._live and self.upload_out is not None else _nothing():
            drive.mount(logic.COLAB_DRIVE)
        self._say(
            "upload_status",
            [
                Message(
                    "ok",
                    f"Google Drive is mounted: give paths like {logic.COLAB_DRIVE}/MyDrive/clip.mp4.",
                )
            ],
        )
        return logic.COLAB_DRIVE

    def _mount_drive_if_needed(self, settings: StudioSettings) -> None:
        """On Colab, a path under /content/drive mounts Drive first (once)."""
        paths = (settings.source, settings.plate, settings.background_image, settings.weights_file)
        wanted = any(str(p).startswith(logic.COLAB_DRIVE + "/") for p in paths)
        if self.colab and wanted and not os.path.ismount(logic.COLAB_DRIVE):
            if not Path(logic.COLAB_DRIVE, "MyDrive").exists():
                self.mount_drive()

    def _say(self, where: str, messages: list[Message]) -> None:
        """Show ``messages`` in one section's status line (replacing what it said before)."""
        self.messages += messages
        getattr(self, where).value = logic.messages_html(messages)
        if not self._live:
            for message in messages:
                print(message)

    def _guarded(self, action: Callable[[], Any], where: str) -> Callable[[Any], None]:
        """A button callback that can never end in a traceback in the log console."""

        @functools.wraps(action)
        def click(_button: Any) -> None:
            try:
                action()
            except Exception as error:  # noqa: BLE001 -- the logic layer should have said it
                self._say(where, [Message("error", logic.error_message(error))])

        return click

    def _show(self, fig: Figure, view: Any, alt: str) -> None:
        """Put ``fig`` in the HTML widget ``view`` (live panel) or in the cell's output."""
        if self._live:
            view.value = logic.figure_html(fig, alt)
        else:
            _ipython_display(fig)
        plt.close(fig)

    def _busy(self, button: Any, label: str | None) -> None:
        """Grey the button and say it is working (``label``), or give it back (None)."""
        if label is None:
            button.disabled = False
            button.description = self._idle_labels.pop(id(button), button.description)
            return
        self._idle_labels.setdefault(id(button), button.description)
        button.disabled = True
        button.description = label

    def show(self, interactive: bool | None = None) -> None:
        """Display the live panel, or (fast mode / no widgets) run once with static figures."""
        from mattingkit.notebook.widgets import widgets_enabled

        self._live = widgets_enabled() if interactive is None else interactive
        if self._live:
            _ipython_display(self.widget)
        else:
            print("Static run of the studio (fast mode): the same code as the Run button.")
            self.run()

    # ---------------------------------------------------------------- actions
    def run(self) -> RunStats | None:
        """Load media and model, matte, measure, and show the results figure and numbers.

        Problems (a missing file, a failed download, a bad weights file) are reported in the
        status line under the Run button and in ``messages``, never raised.
        """
        settings = self.settings()
        self._mount_drive_if_needed(settings)
        # A new run replaces everything the last one showed: no stale figure or composite.
        self.result = self.stats = self.figure = self.composite = None
        self.results_view.value = ""
        self.background_view.value = ""
        self.stats_view.value = ""
        self.background_status.value = ""
        steps = 4 + self.repeats
        self.run_progress.max, self.run_progress.value = steps, 0
        self.run_progress.layout.display = None
        self._busy(self.run_button, "Running…")

        def progress(text: str) -> None:
            self.run_progress.value = min(steps, self.run_progress.value + 1)
            self.status.value = logic.messages_html(
                [Message("busy", f"Step {self.run_progress.value} of {steps}: {text}…")]
            )

        try:
            outcome = logic.run_model(
                settings,
                self.models,
                uploads=self._uploads(),
                cache=self.cache,
                repeats=self.repeats,
                progress=progress,
            )
            if outcome.ok:
                self.media, self.result, self.stats = outcome.media, outcome.result, outcome.stats
                progress("drawing the figure")
                self.figure = results_figure(
                    outcome.result,
                    background=logic.DEFAULT_GREEN
                    if settings.background_kind == "image"
                    else logic.background_argument(settings),
                    title=outcome.media.label,
                )
                self._show(self.figure, self.results_view, f"results: {outcome.media.label}")
                self.stats_view.value = stats_html(outcome.stats)
            self._say("status", outcome.messages)
            if outcome.ok and not self._live:
                print("\n".join(outcome.stats.lines()))
        finally:
            self.run_progress.layout.display = "none"
            self._busy(self.run_button, None)
        return self.stats

    def apply_background(self) -> torch.Tensor | None:
        """Composite the last result on the chosen background (no new model pass)."""
        settings = self.settings()
        composite, messages = logic.composite_on(self.result, settings, cache=self.cache)
        self.composite = composite
        if composite is None:
            self.background_view.value = ""
        else:
            title = f"composite on {logic.background_label(settings)}"
            self.composite_figure = image_grid([composite[0]], [title], size=6)
            self._show(self.composite_figure, self.background_view, title)
        self._say("background_status", messages)
        return composite

    def export_video(self) -> Any:
        """Matte the chosen video with the current model and background.

        :func:`mattingkit.apps.video.matte_video` shows a tqdm progress bar under the button and
        keeps the source's audio; the report is in ``video_report``. An existing output is
        never replaced unless "overwrite" is ticked; every problem is one sentence in the
        export status line.
        """
        settings = self.settings()
        self._busy(self.export_button, "Exporting…")
        self.export_status.value = logic.messages_html(
            [Message("busy", "Exporting: matting every frame (the bar below shows how far)…")]
        )
        self.video_report = None

        def export() -> logic.ExportOutcome:
            # Nothing may escape: every problem becomes the outcome (one sentence).
            try:
                return logic.export_video(
                    settings, self.models, uploads=self._uploads(), cache=self.cache
                )
            except Exception as error:  # noqa: BLE001 -- one sentence in the status line
                return logic.ExportOutcome([Message("error", logic.error_message(error))])

        try:
            if self._live:
                self.video_view.value = ""
                with _tqdm_into(self.video_view):  # the progress bar is drawn here
                    outcome = export()
            else:
                outcome = export()
            self.video_report = outcome.report
            self._say("export_status", outcome.messages)
        finally:
            self._busy(self.export_button, None)
        return self.video_report
