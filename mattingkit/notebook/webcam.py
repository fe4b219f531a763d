"""Live webcam matting in a notebook: a camera widget, its kernel-side handler, a cv2 fallback.

Chapter 08. The official ``inference_webcam.py`` opens an OpenCV window on a CUDA machine,
so it cannot run in a notebook, on Colab or on a remote kernel. Here the *browser* owns the
camera and the *kernel* owns the model:

1. the browser grabs a frame with ``getUserMedia``, downscales it and sends it as a JPEG
   (binary comm buffer, no base64) to the kernel;
2. the kernel's :class:`FrameHandler` decodes it, mattes it against the captured plate with
   :class:`mattingkit.Matter` and sends back a JPEG composite (or the alpha);
3. the browser draws it and reports how long drawing took, so :meth:`WebcamMatting.latency_budget`
   can split one frame's life into capture, transfer, queue, decode, inference, encode, draw.

**Latest frame wins.** A camera makes 30 frames a second; a CPU mattes far fewer. Frames
must be dropped, never queued: the browser keeps at most ``max_in_flight`` frames
unanswered, and the kernel keeps only the newest frame in a one-slot
:class:`LatestFrameMailbox` (an older waiting frame is replaced and reported as dropped).
Inference runs in a worker thread, so the kernel's main thread only files frames away and
stays free for the controls.

**Frames the model had no time for are dropped**, wherever that happens: camera frames the
browser did not send (a frame was still in flight), frames the mailbox replaced, frames the
browser gave up waiting for. ``frames_dropped`` counts all of them, so that
``frames_seen = answered + frames_dropped + in flight`` at any moment.

**The kernel's main thread is left alone.** Frontends that support kernel subshells
(JupyterLab 4.6, Notebook 7.6) deliver widget messages on a subshell thread while a cell
runs; a comm message normally fires IPython's ``pre_execute``/``post_execute`` events,
and matplotlib's inline backend flushes open figures on ``post_execute``. A frame arriving
while another cell draws a figure would then show (or close) that cell's figure under
the widget's message, i.e. in the log console. This widget's messages run no user code, so
they are handled without those events.

On a desktop kernel with a camera of its own, ``WebcamMatting(camera=0)`` reads frames with
``cv2.VideoCapture`` instead (the same handler, mailbox and drawing); any object with a
``read() -> (ok, bgr_uint8)`` method works, e.g. :class:`ClipCamera`, which plays a
generated clip like a camera (fast mode, tests).
"""

from __future__ import annotations

import hashlib
import statistics
import threading
import time
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import anywidget
import cv2
import numpy as np
import torch
import traitlets

__all__ = [
    "BACKGROUNDS",
    "ClipCamera",
    "ENGINES",
    "Frame",
    "FrameHandler",
    "LatestFrameMailbox",
    "MODES",
    "Reply",
    "STAGES",
    "WebcamMatting",
    "write_y4m",
]

#: Background choices offered by the widget (a hex colour like ``#ff8800`` works too).
BACKGROUNDS = ("green", "blue", "white", "black", "blur", "image")
#: What the widget shows: the composite, or the alpha matte as a grey picture.
MODES = ("composite", "alpha")
#: Weights offered by the widget's model menu (official names fall back to the shipped model offline).
WEIGHTS_CHOICES = ("mattingkit", "mobilenetv2", "resnet50", "resnet101")
PRESETS = ("auto", "hd", "4k")
#: Where the model runs: in the kernel (frames go there and back), or in the browser
#: (onnxruntime-web in the page; the kernel sends the model once and sees no frames).
ENGINES = ("kernel", "browser")
#: The stages of one frame's life, in order (see :meth:`WebcamMatting.latency_budget`).
STAGES = ("capture", "transfer", "queue", "decode", "inference", "encode", "draw")

_NAMED_COLORS = {
    "green": (120 / 255, 1.0, 155 / 255),  # the official demo's green
    "blue": (0.1, 0.3, 0.9),
    "white": (1.0, 1.0, 1.0),
    "black": (0.0, 0.0, 0.0),
}
PICTURE_HINT = (
    "Background “image”: choose a picture with the “picture…” button next to the menu "
    "(until then a sample photo is used)."
)
NO_PLATE_MESSAGE = (
    "No plate yet: step out of the frame, then click “Capture plate” "
    "(the model needs a picture of the background without you)."
)
PLATE_MESSAGE = "Plate captured. Step back into the frame."
MATTING_MESSAGE = "Matting. Change the background or the view below."


def _now_ms() -> float:
    return time.perf_counter() * 1000.0


# --------------------------------------------------------------------------------------
# Frames, replies and the one-slot mailbox
# --------------------------------------------------------------------------------------


@dataclass
class Frame:
    """One camera frame on its way to the model.

    ``image`` is JPEG bytes (from the browser) or an RGB uint8 (H, W, 3) array (from a
    kernel-side camera). ``capture_ms`` is how long grabbing (and JPEG-encoding) it took
    where it was captured; ``received_ms`` is when the kernel got it (``perf_counter``).
    """

    image: bytes | np.ndarray
    index: int
    capture_ms: float = 0.0
    received_ms: float = field(default_factory=_now_ms)


@dataclass
class Reply:
    """What the kernel sends back for one frame.

    ``kind``: ``"matte"`` (a composite or alpha), ``"plate"`` (this frame became the
    plate) or ``"preview"`` (no plate yet: the frame itself comes back). ``jpeg`` is the
    picture to draw, ``message`` a line for the status bar, ``timings`` the kernel-side
    stage durations in ms. ``src`` and ``pha`` (float32, [0, 1]) are kept for analysis.
    """

    kind: str
    index: int
    jpeg: bytes
    message: str
    timings: dict[str, float]
    src: np.ndarray | None = None
    pha: np.ndarray | None = None


class LatestFrameMailbox:
    """A one-slot, thread-safe mailbox: putting a frame replaces the one waiting (latest wins).

    A queue would grow without bound whenever the model is slower than the camera and the
    picture would lag further and further behind; one slot keeps the lag at one frame.
    """

    def __init__(self) -> None:
        self._slot: Frame | None = None
        self._closed = False
        self._ready = threading.Condition()
        self.dropped = 0

    def put(self, frame: Frame) -> Frame | None:
        """File ``frame``; return the older frame it replaced (now dropped), if any."""
        with self._ready:
            replaced, self._slot = self._slot, frame
            if replaced is not None:
                self.dropped += 1
            self._ready.notify()
            return replaced

    def get(self, timeout: float | None = None) -> Frame | None:
        """The waiting frame (emptying the slot), or None after ``timeout`` s or once closed."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._slot is not None or self._closed, timeout):
                return None
            frame, self._slot = self._slot, None
            return frame

    def close(self) -> None:
        """Wake every waiting ``get`` (it returns None); later puts are still accepted."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def reopen(self) -> None:
        with self._ready:
            self._closed = False


# --------------------------------------------------------------------------------------
# Image helpers
# --------------------------------------------------------------------------------------


def _decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG/PNG bytes -> RGB uint8 (H, W, 3); ValueError when they are not a picture."""
    array = np.frombuffer(bytes(data), dtype=np.uint8)
    image = cv2.imdecode(array, cv2.IMREAD_COLOR) if array.size else None
    if image is None:
        raise ValueError(f"could not decode a {len(array)}-byte frame as JPEG or PNG")
    return np.ascontiguousarray(image[:, :, ::-1])


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """RGB (H, W, 3) or grey (H, W) uint8 -> JPEG bytes."""
    pixels = image[:, :, ::-1] if image.ndim == 3 else image
    ok, buffer = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"OpenCV could not JPEG-encode an image of shape {image.shape}")
    return buffer.tobytes()


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"a frame must be JPEG bytes or a numpy array, got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"a frame must be (H, W, 3) RGB, got shape {image.shape}")
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating):
            image = np.round(np.clip(image, 0.0, 1.0) * 255)
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image[:, :, :3])


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1)[None].float().div_(255.0)


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) in [0, 1] -> uint8 (H, W, 3) or (H, W)."""
    array = image[0].detach().float().clamp(0, 1).mul(255).round().byte().cpu()
    return array[0].numpy() if array.shape[0] == 1 else array.permute(1, 2, 0).numpy()


def _rgb_frames(frames: torch.Tensor | Sequence[np.ndarray]) -> list[np.ndarray]:
    """A (T, 3, H, W) float tensor in [0, 1] or a sequence of images -> RGB uint8 arrays."""
    if isinstance(frames, torch.Tensor):
        frames = [_to_uint8(f[None]) for f in frames]
    return [_as_rgb_uint8(np.asarray(f)) for f in frames]


def _rate(times_ms: Sequence[float]) -> float | None:
    """Events per second over a window of ``perf_counter`` times in ms (None: too few)."""
    if len(times_ms) >= 2 and times_ms[-1] > times_ms[0]:
        return round(1000.0 * (len(times_ms) - 1) / (times_ms[-1] - times_ms[0]), 1)
    return None


def _parse_background(value: str) -> str:
    """Check a background choice: a name in BACKGROUNDS or a ``#rrggbb`` colour."""
    if value in BACKGROUNDS:
        return value
    text = value.lstrip("#")
    if value.startswith("#") and len(text) == 6:
        try:
            int(text, 16)
            return value
        except ValueError:
            pass
    raise ValueError(
        f"background must be one of {BACKGROUNDS} or a colour like '#ff8800', got {value!r}"
    )


_SAMPLE_PICTURE: list[np.ndarray | None] = []


def sample_picture() -> np.ndarray | None:
    """The bundled sample photo (RGB uint8) used for "image" until a picture is chosen."""
    if not _SAMPLE_PICTURE:
        from mattingkit.runtime import asset_path

        bgr = cv2.imread(str(asset_path("samples", "square_bgr.png")), cv2.IMREAD_COLOR)
        _SAMPLE_PICTURE.append(None if bgr is None else np.ascontiguousarray(bgr[:, :, ::-1]))
    return _SAMPLE_PICTURE[0]


def _cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` scaled to cover height×width and centre-cropped (no warning per frame)."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    scale = max(height / h, width / w)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    resized = cv2.resize(
        image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[top : top + height, left : left + width])


def _background_argument(
    value: str, image: np.ndarray | None, size: tuple[int, int] | None = None
) -> Any:
    """What ``MatteResult.composite`` takes for a background choice.

    ``"image"`` without a picture yet uses :func:`sample_picture` (the official green if
    even that is missing): matting must not stop while the user looks for a file.
    """
    if value == "blur":
        return "blur"
    if value == "image":
        picture = image if image is not None else sample_picture()
        if picture is None:
            return _NAMED_COLORS["green"]
        return _to_tensor(_cover(picture, *size) if size else picture)
    if value in _NAMED_COLORS:
        return _NAMED_COLORS[value]
    text = value.lstrip("#")
    return tuple(int(text[i : i + 2], 16) / 255 for i in (0, 2, 4))


# --------------------------------------------------------------------------------------
# The kernel-side handler: one frame in, one picture out
# --------------------------------------------------------------------------------------


def _default_matter(weights: str | None, preset: str) -> Any:
    """A ``Matter`` for a weights name; loading warnings are kept off stderr (the widget's
    status says what happened: see :func:`model_status`)."""
    from mattingkit.apps.inference import Matter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Matter(None if weights in (None, "mattingkit") else weights, preset=preset)


def model_status(matter: Any, weights: str, preset: str) -> str:
    """What the status line says about a model: which weights really run, honestly."""
    if getattr(matter, "used_fallback", False):
        return (
            f"⚠ The official {weights} weights are not available (offline, or Google Drive "
            f"refused): using mattingkit's shipped MobileNetV2 instead ({preset}), far below "
            "the official quality."
        )
    return f"Using {getattr(matter, 'weights_name', weights)} ({preset})."


class FrameHandler:
    """Turns camera frames into composites: plate capture, matting, background, JPEG.

    It knows nothing about browsers or threads, so it can be tested (and used in fast
    mode) on its own. Not thread-safe by itself: :class:`WebcamMatting` calls it from one
    worker thread.

    Args:
        matter: a :class:`mattingkit.Matter` (or anything called as ``matter(src, bgr)``
            returning its result type); built from ``weights``/``preset`` when None.
        background: a name in :data:`BACKGROUNDS` or ``#rrggbb``.
        mode: ``"composite"`` or ``"alpha"``.
        jpeg_quality: 1-100 for the pictures sent back.
        keep: how many recent (src, alpha) pairs to keep for analysis.
    """

    def __init__(
        self,
        matter: Any = None,
        *,
        weights: str | None = None,
        preset: str = "auto",
        background: str = "green",
        mode: str = "composite",
        jpeg_quality: int = 80,
        keep: int = 16,
    ) -> None:
        self.matter = matter if matter is not None else _default_matter(weights, preset)
        self.background = _parse_background(background)
        self.background_image: np.ndarray | None = None
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
        self.jpeg_quality = int(jpeg_quality)
        self.plate: np.ndarray | None = None
        self._plate_tensor: torch.Tensor | None = None
        self._plate_requested = False
        self.recent: deque[Reply] = deque(maxlen=int(keep))

    def request_plate(self) -> None:
        """The next frame handled becomes the plate (the background without the subject)."""
        self._plate_requested = True

    def set_plate(self, image: np.ndarray | None) -> None:
        """Use ``image`` (RGB uint8 (H, W, 3)) as the plate; None forgets it."""
        self.plate = None if image is None else _as_rgb_uint8(image).copy()
        self._plate_tensor = None if self.plate is None else _to_tensor(self.plate)
        self._plate_requested = False

    def handle(self, frame: Frame) -> Reply:
        """Matte one frame (or capture it as the plate) and return the picture to draw."""
        start = _now_ms()
        timings = {"queue": max(0.0, start - frame.received_ms), "capture": frame.capture_ms}
        image = (
            _decode_jpeg(frame.image)
            if isinstance(frame.image, (bytes, bytearray, memoryview))
            else _as_rgb_uint8(frame.image)
        )
        timings["decode"] = _now_ms() - start
        if self._plate_requested:
            self.set_plate(image)
            return self._reply("plate", frame, image, PLATE_MESSAGE, timings)
        if self.plate is None:
            return self._reply("preview", frame, image, NO_PLATE_MESSAGE, timings)
        if self.plate.shape != image.shape:
            (ph, pw), (fh, fw) = self.plate.shape[:2], image.shape[:2]
            self.set_plate(None)
            message = (
                f"The camera size changed (plate {pw}×{ph}, frame {fw}×{fh}): "
                "capture the plate again."
            )
            return self._reply("preview", frame, image, message, timings)

        tick = _now_ms()
        with torch.inference_mode():
            result = self.matter(_to_tensor(image), self._plate_tensor)
            if self.mode == "alpha":
                picture = result.pha
            else:
                picture = result.composite(
                    _background_argument(self.background, self.background_image, image.shape[:2])
                )
            picture = _to_uint8(picture.cpu())
            pha = result.pha[0, 0].float().cpu().numpy()
        timings["inference"] = _now_ms() - tick
        return self._reply("matte", frame, picture, "", timings, src=image, pha=pha)

    def _reply(
        self,
        kind: str,
        frame: Frame,
        picture: np.ndarray,
        message: str,
        timings: dict[str, float],
        src: np.ndarray | None = None,
        pha: np.ndarray | None = None,
    ) -> Reply:
        tick = _now_ms()
        jpeg = _encode_jpeg(picture, self.jpeg_quality)
        timings["encode"] = _now_ms() - tick
        reply = Reply(kind, frame.index, jpeg, message, timings, src, pha)
        if kind == "matte":
            self.recent.append(reply)
        return reply


# --------------------------------------------------------------------------------------
# Kernel-side cameras (the cv2 fallback) and a clip that plays like a camera
# --------------------------------------------------------------------------------------


class Capture(Protocol):
    """What a kernel-side camera must offer: ``cv2.VideoCapture``'s ``read``."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...


class ClipCamera:
    """A ``cv2.VideoCapture`` look-alike that plays frames at a camera's pace.

    Fast mode and the tests use it to feed a generated clip through the very code path a
    real camera takes. ``frames``: a (T, 3, H, W) float tensor in [0, 1] or a sequence of
    RGB uint8 (H, W, 3) arrays. ``read()`` returns BGR uint8 like OpenCV, waiting until the
    next frame is due (``fps``; 0 means as fast as asked); ``loop`` restarts at the end.
    ``last_index`` is the clip index of the frame last read.
    """

    def __init__(
        self, frames: torch.Tensor | Sequence[np.ndarray], fps: float = 30.0, loop: bool = False
    ) -> None:
        if isinstance(frames, torch.Tensor):
            if frames.ndim != 4 or frames.shape[1] != 3:
                raise ValueError(f"frames must be (T, 3, H, W), got {tuple(frames.shape)}")
        self.frames = _rgb_frames(frames)
        if not self.frames:
            raise ValueError("ClipCamera needs at least one frame")
        if fps < 0:
            raise ValueError(f"fps must be >= 0, got {fps}")
        self.fps, self.loop = float(fps), loop
        self.last_index = -1
        self._next_due: float | None = None
        self._position = 0

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self._position < len(self.frames) or self.loop

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self._position >= len(self.frames):
            if not self.loop:
                return False, None
            self._position = 0
        if self.fps > 0:  # a camera delivers one frame per 1/fps, whether anyone reads or not
            now = time.perf_counter()
            if self._next_due is not None and self._next_due > now:
                time.sleep(self._next_due - now)
            self._next_due = max(now, self._next_due or now) + 1.0 / self.fps
        self.last_index = self._position
        self._position += 1
        return True, self.frames[self.last_index][:, :, ::-1].copy()

    def release(self) -> None:
        self._position = len(self.frames)
        self.loop = False


def _open_camera(camera: int | str | Capture) -> Capture:
    if isinstance(camera, (int, str)):
        capture = cv2.VideoCapture(camera)
        if not capture.isOpened():
            raise RuntimeError(
                f"cv2.VideoCapture({camera!r}) could not open a camera on this machine. "
                "In a browser, leave camera=None: the browser's camera is used instead."
            )
        return capture
    if not callable(getattr(camera, "read", None)):
        raise TypeError(
            f"camera must be None (browser), a cv2 device index or path, or an object with "
            f"read(); got {type(camera).__name__}"
        )
    return camera


def write_y4m(path: str | Path, frames: torch.Tensor | Sequence[np.ndarray], fps: int = 30) -> Path:
    """Write frames as an uncompressed YUV4MPEG2 (I420) file, Chromium's fake-camera format.

    ``chromium --use-fake-device-for-media-stream --use-file-for-fake-video-capture=clip.y4m``
    then shows the clip (looped) as the webcam; the browser test of chapter 08 does this.
    Width and height must be even (4:2:0 chroma). Written atomically.
    """
    from mattingkit.io import atomic_write

    frames = _rgb_frames(frames)
    if not frames:
        raise ValueError("write_y4m needs at least one frame")
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"y4m (4:2:0) needs an even width and height, got {w}×{h}")
    path = Path(path)
    with atomic_write(path) as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{int(fps)}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            if frame.shape[:2] != (h, w):
                raise ValueError(
                    f"all frames must be {w}×{h}, got {frame.shape[1]}×{frame.shape[0]}"
                )
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


# --------------------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------------------

_STATIC = Path(__file__).resolve().parent / "static"


class WebcamMatting(anywidget.AnyWidget):
    """A live matting demo in a notebook cell (JupyterLab, Notebook 7, VS Code, Colab). Chapter 08.

    ``WebcamMatting()`` uses the browser's camera; ``WebcamMatting(camera=0)`` the kernel
    machine's camera through OpenCV; ``WebcamMatting(camera=ClipCamera(...))`` a clip.
    Display it (last expression of a cell), click *Start camera*, step out of the frame
    and click *Capture plate*. Settings are traits, changeable from Python or the controls.

    Args:
        matter: a :class:`mattingkit.Matter`; built from ``weights`` and ``preset`` when None.
        camera: None (browser), a cv2 device index/path, or an object with ``read()``.
        **traits: initial values of the traits below (``width=320``, ``background="blur"``...).
    """

    # The browser engine's helpers (also the exported page's) ahead of the widget's code.
    _esm = (_STATIC / "web" / "mattingkit-web.js").read_text(encoding="utf-8") + (
        _STATIC / "webcam.js"
    ).read_text(encoding="utf-8")
    _css = _STATIC / "webcam.css"

    width = traitlets.Int(320).tag(sync=True)
    height = traitlets.Int(240).tag(sync=True)
    jpeg_quality = traitlets.Int(80).tag(sync=True)
    max_in_flight = traitlets.Int(1).tag(sync=True)
    mode = traitlets.Unicode("composite").tag(sync=True)
    background = traitlets.Unicode("green").tag(sync=True)
    weights = traitlets.Unicode("mattingkit").tag(sync=True)
    preset = traitlets.Unicode("auto").tag(sync=True)
    source = traitlets.Unicode("browser").tag(sync=True)
    autostart = traitlets.Bool(False).tag(sync=True)
    status = traitlets.Unicode(NO_PLATE_MESSAGE).tag(sync=True)
    camera_state = traitlets.Unicode("off").tag(sync=True)
    camera_fps = traitlets.Float(0.0).tag(sync=True)
    matting_fps = traitlets.Float(0.0).tag(sync=True)
    plate_captured = traitlets.Bool(False).tag(sync=True)
    frames_matted = traitlets.Int(0).tag(sync=True)
    #: Frames the camera delivered, and those the model had no time for (not sent by the
    #: browser, replaced in the mailbox, or given up on). The browser counts them for its
    #: camera, the kernel for a kernel-side camera.
    frames_seen = traitlets.Int(0).tag(sync=True)
    frames_dropped = traitlets.Int(0).tag(sync=True)
    #: The weights really running (says so when the offline fallback replaced them).
    model_info = traitlets.Unicode("").tag(sync=True)
    #: Where the model runs (:data:`ENGINES`). "browser": onnxruntime-web in the page, on
    #: WebGPU where offered, WebAssembly otherwise (``backend`` says which); the composite
    #: is drawn there and the kernel receives no frames.
    engine = traitlets.Unicode("kernel").tag(sync=True)
    backend = traitlets.Unicode("").tag(sync=True)
    #: Browser engine: where the runtime and the model came from ("cdn", "kernel", "cache").
    runtime_source = traitlets.Unicode("").tag(sync=True)
    model_source = traitlets.Unicode("").tag(sync=True)
    #: Kernel engine: milliseconds added to each round trip (half each way), to feel what a
    #: remote kernel (Colab) costs; the latency budget counts it as transfer.
    simulated_delay_ms = traitlets.Int(0).tag(sync=True)

    def __init__(
        self, matter: Any = None, *, camera: int | str | Capture | None = None, **traits: Any
    ) -> None:
        super().__init__(**traits)
        self.handler = FrameHandler(
            matter,
            weights=self.weights,
            preset=self.preset,
            background=self.background,
            mode=self.mode,
            jpeg_quality=self.jpeg_quality,
        )
        self.model_info = str(getattr(self.handler.matter, "weights_name", self.weights))
        self._status_kind = "info"  # "error": a frame failed; "model": what the model is
        self.mailbox = LatestFrameMailbox()
        self.records: deque[dict[str, float]] = deque(maxlen=300)
        self._by_index: dict[int, dict[str, float]] = {}
        self._rebuild = False
        self._worker: threading.Thread | None = None
        self._handling = False  # the worker is matting a frame right now
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._listeners: list[Callable[[Reply], None]] = []
        self._capture: Capture | None = None
        #: Frames that reached the kernel from the browser (none in the browser engine).
        self.frames_received = 0
        self._browser_budget: dict[str, float] = {}
        self._web_manifest: dict[str, Any] | None = None
        self._web_files: dict[str, Path] = {}
        self._web_lock = threading.Lock()
        if camera is not None:
            self._capture = _open_camera(camera)
            self.source = "kernel"
        self.on_msg(self._on_browser_message)
        self._skip_execute_events()
        self._start_worker()

    def _skip_execute_events(self) -> None:
        """Handle this widget's comm messages without IPython's pre/post_execute events.

        ``comm`` fires them around every message so that code run by a widget callback
        behaves like a cell; matplotlib's inline backend then flushes open figures. Frames
        arrive many times a second on a subshell thread, also while another cell is drawing
        a figure, which would then be shown under the widget's message (the log console)
        or closed before its cell shows it. This widget runs no user code per message.
        """
        comm = getattr(self, "comm", None)
        if comm is None or not hasattr(comm, "handle_msg"):
            return

        def handle_msg(msg: dict[str, Any]) -> None:
            callback = getattr(comm, "_msg_callback", None)
            if callback is not None:
                callback(msg)

        comm.handle_msg = handle_msg

    # --- validation: bad settings fail in the cell that sets them -------------------------
    @traitlets.validate("mode")
    def _check_mode(self, proposal: Any) -> str:
        if proposal["value"] not in MODES:
            raise traitlets.TraitError(f"mode must be one of {MODES}, got {proposal['value']!r}")
        return proposal["value"]

    @traitlets.validate("background")
    def _check_background(self, proposal: Any) -> str:
        try:
            return _parse_background(proposal["value"])
        except ValueError as error:
            raise traitlets.TraitError(str(error)) from None

    @traitlets.validate("width", "height")
    def _check_size(self, proposal: Any) -> int:
        if not 16 <= proposal["value"] <= 4096:
            raise traitlets.TraitError(
                f"{proposal['trait'].name} must be 16..4096 pixels, got {proposal['value']}"
            )
        return proposal["value"]

    @traitlets.validate("jpeg_quality")
    def _check_quality(self, proposal: Any) -> int:
        if not 1 <= proposal["value"] <= 100:
            raise traitlets.TraitError(f"jpeg_quality must be 1..100, got {proposal['value']}")
        return proposal["value"]

    @traitlets.validate("max_in_flight")
    def _check_in_flight(self, proposal: Any) -> int:
        if not 1 <= proposal["value"] <= 4:
            raise traitlets.TraitError(f"max_in_flight must be 1..4, got {proposal['value']}")
        return proposal["value"]

    @traitlets.validate("engine")
    def _check_engine(self, proposal: Any) -> str:
        if proposal["value"] not in ENGINES:
            raise traitlets.TraitError(
                f"engine must be one of {ENGINES}, got {proposal['value']!r}"
            )
        if proposal["value"] == "browser" and getattr(self, "_capture", None) is not None:
            raise traitlets.TraitError("a kernel-side camera's frames are matted in the kernel")
        return proposal["value"]

    @traitlets.validate("simulated_delay_ms")
    def _check_delay(self, proposal: Any) -> int:
        if not 0 <= proposal["value"] <= 5000:
            raise traitlets.TraitError(
                f"simulated_delay_ms must be 0..5000, got {proposal['value']}"
            )
        return proposal["value"]

    @traitlets.validate("weights", "preset")
    def _check_model(self, proposal: Any) -> str:
        name, value = proposal["trait"].name, proposal["value"]
        allowed = WEIGHTS_CHOICES if name == "weights" else PRESETS
        if value not in allowed:
            raise traitlets.TraitError(f"{name} must be one of {allowed}, got {value!r}")
        return value

    @traitlets.observe("mode", "background", "jpeg_quality")
    def _forward_setting(self, change: Any) -> None:
        if hasattr(self, "handler"):
            setattr(self.handler, change["name"], change["new"])
            if change["name"] == "background" or self._status_kind == "error":
                self._set_status(self._normal_status())  # no stale hint or error

    @traitlets.observe("weights", "preset")
    def _model_changed(self, change: Any) -> None:
        self._rebuild = True  # the worker swaps the model between two frames
        self._set_status(f"Loading {self.weights} ({self.preset})…")

    # --- the status line -------------------------------------------------------------------
    def _set_status(self, text: str, kind: str = "info") -> None:
        self._status_kind = kind
        self.status = text

    def _normal_status(self) -> str:
        """What the status says when nothing went wrong: the next thing to do."""
        if self.handler.plate is None:
            return NO_PLATE_MESSAGE
        if self.background == "image" and self.handler.background_image is None:
            return PICTURE_HINT
        return MATTING_MESSAGE

    @property
    def background_image(self) -> np.ndarray | None:
        """The picture used when ``background == "image"`` (RGB uint8, any size).

        Set it from Python (an array, a tensor or a path) or with the widget's “picture…”
        button. Until then a sample photo is used (:func:`sample_picture`).
        """
        return self.handler.background_image

    @background_image.setter
    def background_image(self, image: Any) -> None:
        if isinstance(image, (str, Path)):
            from mattingkit.io import read_image

            image = read_image(image)
        if isinstance(image, torch.Tensor):
            image = _to_uint8(image if image.ndim == 4 else image[None])
        image = _as_rgb_uint8(np.asarray(image))
        self.handler.background_image = cv2.resize(
            image, (self.width, self.height), interpolation=cv2.INTER_AREA
        )
        if self.status == PICTURE_HINT:
            self._set_status(self._normal_status())

    # --- plate --------------------------------------------------------------------------
    def capture_plate(self) -> None:
        """The next frame becomes the plate: step out of the picture first."""
        self.handler.request_plate()
        self._set_status("Capturing the plate from the next frame…")

    def reset_plate(self) -> None:
        self.handler.set_plate(None)
        self.plate_captured = False
        self._set_status(NO_PLATE_MESSAGE)

    # --- messages from the browser (kernel main thread: keep it quick) -------------------
    def _on_browser_message(
        self, _widget: Any, content: dict[str, Any], buffers: list[Any]
    ) -> None:
        kind = content.get("type")
        if kind == "frame" and buffers:
            self.frames_received += 1
            frame = Frame(
                bytes(buffers[0]), int(content.get("id", 0)), float(content.get("capture_ms", 0.0))
            )
            replaced = self.mailbox.put(frame)
            if replaced is not None:  # tell the browser: it stops waiting and counts the drop
                self.send({"type": "dropped", "id": replaced.index})
        elif kind == "background_image" and buffers:
            name = str(content.get("name", "the picture"))
            try:
                self.background_image = _decode_jpeg(bytes(buffers[0]))
            except ValueError:
                self._set_status(
                    f"⚠ Could not read {name} as a picture: choose a JPEG or PNG file.", "error"
                )
            else:
                self._set_status(f"Background picture: {name}.")
        elif kind == "drawn":
            record = self._by_index.pop(int(content.get("id", -1)), None)
            if record is not None:
                record["draw"] = float(content.get("draw_ms", 0.0))
                round_trip = content.get("round_trip_ms")
                if round_trip is not None and self.source == "browser":
                    kernel = sum(
                        record.get(k, 0.0) for k in ("queue", "decode", "inference", "encode")
                    )
                    record["transfer"] = max(0.0, float(round_trip) - kernel)
        elif kind == "web_manifest":
            threading.Thread(target=self._send_web_manifest, daemon=True).start()
        elif kind == "web_file":
            name = str(content.get("name", ""))
            threading.Thread(target=self._send_web_file, args=(name,), daemon=True).start()
        elif kind == "browser_stats":
            self._browser_budget = {
                k: float(v) for k, v in (content.get("budget") or {}).items() if k in STAGES
            }
        elif kind == "capture_plate":
            self.capture_plate()
        elif kind == "reset_plate":
            self.reset_plate()
        elif kind == "start" and self._capture is not None:
            self.start()
        elif kind == "stop" and self._capture is not None:
            self.stop()

    # --- the browser engine: the model and the runtime, sent once ------------------------
    def _send_web_manifest(self) -> None:
        """Tell the page what to load: the model (exported once per weights and cached) and
        the pinned runtime (CDN address and hashes; a local copy if ``npm ci`` ran)."""
        from mattingkit.apps import web

        try:
            with self._web_lock:
                if self._web_manifest is None:
                    self._set_status("Preparing the model for the browser (once per weights)…")
                    model_path = web.cached_web_model(self.handler.matter)
                    try:
                        local = web.runtime_files()
                    except web.RuntimeMissing as error:
                        local, missing = {}, str(error)
                    else:
                        missing = ""
                    runtime = web.runtime_integrity()
                    data = model_path.read_bytes()
                    self._web_files = {"model": model_path, **local}
                    self._web_manifest = {
                        "type": "web_manifest",
                        "model": {
                            "name": model_path.name,
                            "sha256": hashlib.sha256(data).hexdigest(),
                            "bytes": len(data),
                        },
                        "runtime": {**runtime, "local": sorted(local), "missing": missing},
                    }
            self.send(self._web_manifest)
        except Exception as error:  # noqa: BLE001 - said in the widget, not lost in a thread
            self._set_status(f"⚠ The browser engine cannot start: {error}", "error")

    def _send_web_file(self, name: str) -> None:
        """One file in pieces under ~1 MB (:data:`mattingkit.apps.web.CHUNK_BYTES`)."""
        from mattingkit.apps.web import chunks

        path = self._web_files.get(name)
        if path is None:
            self.send({"type": "web_file_missing", "name": name})
            return
        pieces = chunks(path.read_bytes())
        for index, piece in enumerate(pieces):
            self.send(
                {"type": "web_chunk", "name": name, "index": index, "count": len(pieces)},
                buffers=[piece],
            )

    # --- the worker thread: mailbox -> handler -> browser --------------------------------
    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self.mailbox.reopen()
            self._worker = threading.Thread(
                target=self._work, name="mattingkit-webcam", daemon=True
            )
            self._worker.start()

    def _work(self) -> None:
        while True:
            frame = self.mailbox.get()
            if frame is None:  # closed
                return
            self._handling = True
            try:
                if self._rebuild:
                    self._rebuild = False
                    weights, preset = self.weights, self.preset
                    matter = _default_matter(weights, preset)
                    self.handler.matter = matter
                    self.model_info = str(getattr(matter, "weights_name", weights))
                    fallback = bool(getattr(matter, "used_fallback", False))
                    self._set_status(
                        model_status(matter, weights, preset), "model" if fallback else "info"
                    )
                self._publish(self.handler.handle(frame))
            except Exception as error:  # show it in the widget instead of killing the thread
                self._set_status(f"⚠ {type(error).__name__}: {error}", "error")
                self.send({"type": "dropped", "id": frame.index})
            finally:
                self._handling = False

    def _publish(self, reply: Reply) -> None:
        record = dict(reply.timings, index=float(reply.index), sent_ms=_now_ms())
        if reply.kind == "matte":
            self.records.append(record)
            self._by_index[reply.index] = record
            if len(self._by_index) > 64:  # the browser never reported some: forget them
                self._by_index.pop(next(iter(self._by_index)))
            self.frames_matted += 1
            self._update_fps()
        elif reply.kind == "plate":
            self.plate_captured = True
        if reply.message and reply.message != self.status:
            self._set_status(reply.message)
        elif reply.kind == "matte" and (
            self._status_kind == "error" or self.status in (PLATE_MESSAGE, NO_PLATE_MESSAGE)
        ):
            self._set_status(self._normal_status())
        self.send({"type": "result", "id": reply.index, "kind": reply.kind}, buffers=[reply.jpeg])
        for listener in list(self._listeners):
            listener(reply)

    def _update_fps(self) -> None:
        fps = _rate([r["sent_ms"] for r in list(self.records)[-10:]])
        if fps is not None:
            self.matting_fps = fps
        if self.source == "kernel":
            self.frames_dropped = self.mailbox.dropped

    # --- the kernel-side camera (cv2 fallback, clips) -------------------------------------
    def start(self) -> None:
        """Start reading the kernel-side camera (browser cameras start from the widget)."""
        if self._capture is None:
            raise RuntimeError("this widget uses the browser's camera: click “Start camera” in it")
        self._start_worker()
        if self._reader is None or not self._reader.is_alive():
            self._stop.clear()
            self._reader = threading.Thread(
                target=self._read_camera, name="mattingkit-camera", daemon=True
            )
            self._reader.start()
            self.camera_state = "on"

    def _read_camera(self) -> None:
        index, times = 0, deque(maxlen=10)
        while not self._stop.is_set():
            tick = _now_ms()
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                self.camera_state = "ended"
                return
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            if rgb.shape[:2] != (self.height, self.width):
                rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
            self.mailbox.put(
                Frame(rgb, getattr(self._capture, "last_index", index), _now_ms() - tick)
            )
            index += 1
            self.frames_seen += 1
            times.append(tick)
            fps = _rate(times)
            if fps is not None:
                self.camera_fps = fps

    def stop(self) -> None:
        """Stop the kernel-side camera reader (the worker keeps waiting for frames)."""
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.camera_state = "off"

    def run(self, frames: int, *, timeout: float = 120.0) -> list[Reply]:
        """Play the kernel-side camera until ``frames`` matted replies came back; return them.

        Headless use (fast mode, tests): nothing needs to be displayed. Frames that arrive
        while the model is busy are dropped exactly as in the live demo.
        """
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        replies: list[Reply] = []
        done = threading.Event()

        def collect(reply: Reply) -> None:
            if reply.kind == "matte":
                replies.append(reply)
                if len(replies) >= frames:
                    done.set()

        self._listeners.append(collect)
        try:
            self.start()
            deadline = time.monotonic() + timeout
            while not done.wait(0.05):
                if (
                    self._reader is not None
                    and not self._reader.is_alive()
                    and self.mailbox._slot is None
                ):
                    # The camera ended: let the worker pick up the last frame and finish it.
                    time.sleep(0.2)
                    while self._handling and time.monotonic() < deadline and not done.wait(0.05):
                        pass
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"only {len(replies)} of {frames} frames were matted in {timeout} s"
                    )
        finally:
            self.stop()
            self._listeners.remove(collect)
        return replies

    def close(self) -> None:
        """Stop the camera reader and the worker thread, then close the widget."""
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.mailbox.close()
        if self._worker is not None:
            self._worker.join(timeout=30)  # let the frame being matted finish
        if self._capture is not None and hasattr(self._capture, "release"):
            self._capture.release()
        super().close()

    # --- what happened -------------------------------------------------------------------
    def latency_budget(self) -> dict[str, float]:
        """Median milliseconds per stage over the recent matted frames (:data:`STAGES`).

        *capture*: grabbing and JPEG-encoding in the browser (or ``read()`` in the kernel);
        *transfer*: browser → kernel → browser over the comm, minus the kernel's own time;
        *queue*: waiting in the mailbox for the model; *decode*; *inference* (matting and
        compositing); *encode* (JPEG of the result); *draw*: decoding and drawing it in the
        browser. Stages nobody measured (e.g. no browser) are left out.
        """
        if self.engine == "browser":
            return dict(self._browser_budget)  # capture, inference, draw: all in the page
        budget = {}
        for stage in STAGES:
            values = [r[stage] for r in self.records if stage in r]
            if values:
                budget[stage] = statistics.median(values)
        return budget
