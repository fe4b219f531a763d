"""Chapter 08's kernel side: mailbox, frame handler, widget messages, cv2 fallback, y4m.

Everything runs with the real shipped model (``Matter()``) on small generated frames;
the browser half is exercised by ``tests/test_webcam_browser.py``.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
import torch
import traitlets

from mattingkit.apps.inference import Matter
from mattingkit.data.synthetic import make_clip
from mattingkit.notebook.webcam import (
    MATTING_MESSAGE,
    NO_PLATE_MESSAGE,
    PICTURE_HINT,
    PLATE_MESSAGE,
    STAGES,
    ClipCamera,
    Frame,
    FrameHandler,
    LatestFrameMailbox,
    WebcamMatting,
    sample_picture,
    write_y4m,
)
from mattingkit.weights import download

SIZE = (240, 320)  # the shipped model needs about this much to find a person
#: A guard against a hung test, never a speed limit: a loaded machine may be very slow.
WAIT_S = 300.0


@pytest.fixture(scope="module")
def matter():
    torch.set_num_threads(1)
    return Matter(device="cpu")


@pytest.fixture(scope="module")
def clip():
    return make_clip(8, SIZE, 6, subject="person")


def _uint8(image: torch.Tensor) -> np.ndarray:
    return (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    return cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def _decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_UNCHANGED)


class Recorder:
    """Stands in for the browser: keeps what the widget sends."""

    def __init__(self, widget: WebcamMatting) -> None:
        self.messages: list[tuple[dict, list]] = []
        self.lock = threading.Lock()
        widget.send = self.send  # type: ignore[method-assign]

    def send(self, content, buffers=None):
        with self.lock:
            self.messages.append((content, buffers or []))

    def of_type(self, kind: str) -> list[dict]:
        with self.lock:
            return [m for m, _ in self.messages if m.get("type") == kind]

    def wait_for(self, predicate, timeout: float = WAIT_S) -> None:
        wait_until(predicate, timeout, lambda: f"got {self.messages}")


def wait_until(predicate, timeout: float = WAIT_S, what=lambda: "") -> None:
    """Poll ``predicate`` until it holds (the state decides, not the clock)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s; {what()}"
        time.sleep(0.01)


class GatedMatter:
    """The model, held at a gate: the test decides when a frame is done, not the machine's speed.

    ``calls`` counts the frames the model started; each waits for ``go`` (set: no waiting).
    """

    def __init__(self, matter) -> None:
        self.matter, self.go, self.calls = matter, threading.Event(), 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        assert self.go.wait(WAIT_S), "the test never opened the gate"
        return self.matter(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.matter, name)


def _worker_idle(widget: WebcamMatting) -> bool:
    return widget.mailbox._slot is None and not widget._handling


# --- the one-slot mailbox ---------------------------------------------------------------------


def test_mailbox_keeps_only_the_latest_frame():
    box = LatestFrameMailbox()
    first, second, third = (Frame(b"", i) for i in range(3))
    assert box.put(first) is None
    assert box.put(second) is first
    assert box.put(third) is second
    assert box.dropped == 2
    assert box.get(timeout=0) is third
    assert box.get(timeout=0.01) is None  # empty: never an old frame again


def test_mailbox_close_wakes_a_waiting_reader():
    box = LatestFrameMailbox()
    got = []
    reader = threading.Thread(target=lambda: got.append(box.get()))
    reader.start()
    wait_until(lambda: len(box._ready._waiters) == 1)  # the reader waits inside get()
    box.close()
    reader.join(timeout=WAIT_S)
    assert not reader.is_alive() and got == [None]


# --- the frame handler ------------------------------------------------------------------------


def test_handler_says_it_needs_a_plate_then_captures_it_then_mattes(matter, clip):
    handler = FrameHandler(matter, jpeg_quality=90)
    plate, frame = _uint8(clip.bgr), _uint8(clip.src[3])

    preview = handler.handle(Frame(_jpeg(frame), 1))
    assert (preview.kind, preview.message) == ("preview", NO_PLATE_MESSAGE)
    assert _decode(preview.jpeg).shape == (*SIZE, 3)

    handler.request_plate()
    captured = handler.handle(Frame(plate, 2))  # a kernel camera hands over arrays
    assert (captured.kind, captured.message) == ("plate", PLATE_MESSAGE)
    assert np.array_equal(handler.plate, plate)

    reply = handler.handle(Frame(_jpeg(frame), 3))
    assert reply.kind == "matte" and reply.index == 3 and reply.message == ""
    assert reply.pha.shape == SIZE and reply.pha.dtype == np.float32
    error = np.abs(reply.pha - clip.pha[3, 0].numpy()).mean()
    empty = float(clip.pha[3].mean())  # the error of a matte that finds nobody
    assert error < 0.5 * empty, f"alpha error {error:.3f}; an empty matte: {empty:.3f}"
    assert {"queue", "decode", "inference", "encode"} <= set(reply.timings)
    composite = _decode(reply.jpeg)[:, :, ::-1].astype(int)
    background = clip.pha[3, 0].numpy() < 0.01
    green = np.abs(composite - [120, 255, 155]).max(axis=2) < 40
    assert green[background].mean() > 0.9, "the background is not replaced by the green"
    assert list(handler.recent) == [reply]


def test_handler_alpha_view_and_other_backgrounds(matter, clip):
    handler = FrameHandler(matter, mode="alpha")
    handler.set_plate(_uint8(clip.bgr))
    reply = handler.handle(Frame(_uint8(clip.src[0]), 0))
    grey = _decode(reply.jpeg)
    assert grey.ndim == 2 and np.abs(grey / 255 - reply.pha).mean() < 0.02
    handler.mode = "composite"
    for background in ("blur", "#ff0000", "white"):
        handler.background = background
        assert _decode(handler.handle(Frame(_uint8(clip.src[0]), 0)).jpeg).shape == (*SIZE, 3)
    # "image" before a picture was chosen: matting goes on, on the sample photo
    handler.background = "image"
    background = clip.pha[0, 0].numpy() < 0.01
    reply = handler.handle(Frame(_uint8(clip.src[0]), 0))
    photo = cv2.resize(sample_picture(), (SIZE[1], SIZE[1]), interpolation=cv2.INTER_AREA)
    top = (SIZE[1] - SIZE[0]) // 2
    photo = photo[top : top + SIZE[0]]  # the 512×512 photo covers 320×240, centre-cropped
    drawn = _decode(reply.jpeg)[:, :, ::-1].astype(int)
    assert np.abs(drawn - photo)[background].mean() < 20, "the sample photo is the background"
    handler.background_image = np.full((*SIZE, 3), (0, 0, 255), np.uint8)  # then a blue picture
    drawn = _decode(handler.handle(Frame(_uint8(clip.src[0]), 0)).jpeg)[:, :, ::-1].astype(int)
    assert (np.abs(drawn - [0, 0, 255]).max(axis=2) < 40)[background].mean() > 0.9


def test_handler_asks_for_a_new_plate_when_the_camera_size_changes(matter, clip):
    handler = FrameHandler(matter)
    handler.set_plate(_uint8(clip.bgr))
    reply = handler.handle(Frame(np.zeros((48, 64, 3), np.uint8), 0))
    assert reply.kind == "preview" and "capture the plate again" in reply.message
    assert handler.plate is None


def test_handler_rejects_bad_input(matter):
    with pytest.raises(ValueError, match="mode must be"):
        FrameHandler(matter, mode="sepia")
    with pytest.raises(ValueError, match="background must be"):
        FrameHandler(matter, background="purple-ish")
    with pytest.raises(ValueError, match="jpeg_quality"):
        FrameHandler(matter, jpeg_quality=0)
    handler = FrameHandler(matter)
    with pytest.raises(ValueError, match="could not decode"):
        handler.handle(Frame(b"not a jpeg", 0))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        handler.handle(Frame(np.zeros((4, 4, 5), np.uint8), 0))


# --- the widget, driven like the browser drives it ---------------------------------------------


def test_widget_answers_every_frame_once_and_drops_all_but_the_latest(matter, clip):
    gated = GatedMatter(matter)
    widget = WebcamMatting(gated, width=SIZE[1], height=SIZE[0])
    browser = Recorder(widget)
    jpegs = {i: _jpeg(_uint8(clip.src[i % 6])) for i in range(1, 7)}

    def frame(i: int) -> None:
        widget._on_browser_message(
            widget, {"type": "frame", "id": i, "capture_ms": 4.0}, [memoryview(jpegs[i])]
        )

    try:
        widget.handler.set_plate(_uint8(clip.bgr))
        frame(1)
        wait_until(lambda: gated.calls == 1, what=lambda: "the model never started frame 1")
        for i in range(2, 7):  # a burst while the model works on frame 1: no queue
            frame(i)
        gated.go.set()
        browser.wait_for(
            lambda: len(browser.of_type("result")) + len(browser.of_type("dropped")) == 6
        )
        wait_until(lambda: _worker_idle(widget))
        answered = sorted(m["id"] for m in browser.of_type("result") + browser.of_type("dropped"))
        assert answered == list(range(1, 7)), "every frame is answered exactly once"
        results = [m["id"] for m in browser.of_type("result")]
        assert results == [1, 6], "the frame being matted, then only the newest one"
        # the kernel tells the browser which frames it dropped; the browser counts them
        assert sorted(m["id"] for m in browser.of_type("dropped")) == [2, 3, 4, 5]
        assert widget.mailbox.dropped == 4 and widget.frames_matted == 2
        _, buffers = next(m for m in browser.messages if m[0].get("type") == "result")
        assert _decode(bytes(buffers[0])).shape == (*SIZE, 3)

        # The browser reports drawing and the round trip: the budget gets every stage.
        widget._on_browser_message(
            widget, {"type": "drawn", "id": results[-1], "draw_ms": 2.0, "round_trip_ms": 500.0}, []
        )
        budget = widget.latency_budget()
        assert tuple(budget) == STAGES
        assert budget["capture"] == 4.0 and budget["draw"] == 2.0
        # transfer = round trip minus the kernel's own time for that frame (never negative),
        # whatever the speed of this machine
        record = next(r for r in widget.records if r["index"] == results[-1])
        kernel = sum(record[k] for k in ("queue", "decode", "inference", "encode"))
        assert budget["transfer"] == pytest.approx(max(0.0, 500.0 - kernel))
        widget._on_browser_message(  # a round trip shorter than the kernel's time: clamped
            widget, {"type": "drawn", "id": results[0], "draw_ms": 2.0, "round_trip_ms": 0.0}, []
        )
        first = next(r for r in widget.records if r["index"] == results[0])
        assert first["transfer"] == 0.0
    finally:
        widget.close()


def test_widget_plate_buttons_and_status_messages(matter, clip):
    widget = WebcamMatting(matter)
    browser = Recorder(widget)
    try:
        assert widget.status == NO_PLATE_MESSAGE and not widget.plate_captured
        frame = _jpeg(_uint8(clip.bgr))
        widget._on_browser_message(widget, {"type": "capture_plate"}, [])
        widget._on_browser_message(widget, {"type": "frame", "id": 1}, [frame])
        browser.wait_for(lambda: widget.plate_captured)
        assert widget.status == PLATE_MESSAGE
        assert browser.of_type("result")[0]["kind"] == "plate"
        widget._on_browser_message(widget, {"type": "reset_plate"}, [])
        assert widget.handler.plate is None and widget.status == NO_PLATE_MESSAGE

        # A broken frame is reported in the widget and does not stop the worker.
        widget._on_browser_message(widget, {"type": "frame", "id": 2}, [b"garbage"])
        browser.wait_for(lambda: widget.status.startswith("⚠ ValueError"))
        assert browser.of_type("dropped")[-1]["id"] == 2
        widget._on_browser_message(widget, {"type": "frame", "id": 3}, [frame])
        browser.wait_for(lambda: any(m["id"] == 3 for m in browser.of_type("result")))
        with pytest.raises(RuntimeError, match="browser's camera"):
            widget.start()
    finally:
        widget.close()


def test_widget_settings_are_validated(matter):
    widget = WebcamMatting(matter)
    try:
        for name, value in [
            ("mode", "sepia"),
            ("background", "purple-ish"),
            ("jpeg_quality", 0),
            ("width", 8),
            ("max_in_flight", 0),
            ("weights", "vgg"),
            ("preset", "8k"),
        ]:
            with pytest.raises(traitlets.TraitError, match=name):
                setattr(widget, name, value)
        widget.background, widget.mode = "#00ff00", "alpha"
        assert (widget.handler.background, widget.handler.mode) == ("#00ff00", "alpha")
        widget.background_image = np.zeros((10, 20, 3), np.uint8)
        assert widget.background_image.shape == (widget.height, widget.width, 3)
    finally:
        widget.close()


# --- the kernel-side camera (cv2 fallback) ----------------------------------------------------


class OpenCVLikeCamera:
    """A fake ``cv2.VideoCapture``: BGR frames of a clip, then ``(False, None)``.

    In lockstep with the model: a frame is handed out once the one before was answered
    (``answered``), so nothing is dropped, however slow the machine.
    """

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames, self.released = frames, False
        self.answered = threading.Semaphore(1)

    def follow(self, widget: WebcamMatting) -> None:
        widget._listeners.append(lambda reply: self.answered.release())

    def read(self):
        if not self.frames:
            return False, None
        assert self.answered.acquire(timeout=WAIT_S), "the model never answered"
        return True, self.frames.pop(0)[:, :, ::-1].copy()

    def release(self):
        self.released = True


def test_cv2_fallback_mattes_through_the_same_handler(matter, clip):
    frames = [_uint8(clip.bgr)] + [_uint8(f) for f in clip.src]
    capture = OpenCVLikeCamera(frames)
    widget = WebcamMatting(matter, camera=capture, width=SIZE[1], height=SIZE[0])
    capture.follow(widget)
    try:
        assert widget.source == "kernel"
        widget.capture_plate()
        replies = widget.run(frames=3, timeout=WAIT_S)
        assert len(replies) >= 3 and all(r.kind == "matte" for r in replies)
        assert widget.frames_dropped == 0, "in lockstep, every frame is matted"
        for reply in replies:  # index = frames read so far; frame 0 was the plate
            truth = clip.pha[reply.index - 1, 0].numpy()
            assert np.abs(reply.pha - truth).mean() < 0.5 * truth.mean(), "finds the person"
        assert widget.plate_captured and widget.camera_state in ("off", "ended")
        assert set(widget.latency_budget()) == {"capture", "queue", "decode", "inference", "encode"}
    finally:
        widget.close()
    assert capture.released


class FakeClock:
    """``time.perf_counter`` and ``time.sleep`` that only move when slept: pacing without a clock."""

    def __init__(self) -> None:
        self.now, self.slept = 100.0, []

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class SlowerThanTheCamera:
    """A model that lasts until the camera delivered two more frames (on any machine)."""

    def __init__(self, matter) -> None:
        self.matter, self.widget = matter, None

    def __call__(self, *args, **kwargs):
        seen = self.widget.frames_seen
        reader = self.widget._reader
        wait_until(lambda: self.widget.frames_seen >= seen + 2 or not reader.is_alive())
        return self.matter(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.matter, name)


def test_clip_camera_paces_like_a_camera_and_drops_what_the_model_misses(matter, clip, monkeypatch):
    import mattingkit.notebook.webcam

    clock = FakeClock()
    monkeypatch.setattr(mattingkit.notebook.webcam, "time", clock)
    camera = ClipCamera(clip.src, fps=50)
    for _ in range(5):
        ok, bgr = camera.read()
        assert ok and bgr.shape == (*SIZE, 3)
    assert clock.slept == pytest.approx([1 / 50] * 4), "one frame every 1/fps seconds"
    clock.now += 1.0  # nobody read for a second: a camera does not catch up with a burst
    camera.read()
    assert len(clock.slept) == 4
    assert camera.last_index == 5 and camera.read() == (False, None)
    monkeypatch.undo()

    frames = torch.cat([clip.bgr[None].expand(2, -1, -1, -1), clip.src.repeat(4, 1, 1, 1)])
    slow = SlowerThanTheCamera(matter)
    widget = WebcamMatting(slow, camera=ClipCamera(frames, fps=200))
    slow.widget = widget
    try:
        widget.capture_plate()
        # the camera may end before 4 frames are matted on a slow machine: run() returns then
        replies = widget.run(frames=4, timeout=WAIT_S)
        assert replies and widget.frames_dropped > 0, "a camera faster than the model drops"
        assert [r.index for r in replies] == sorted(
            {r.index for r in replies}
        )  # in order, no repeats
    finally:
        widget.close()


def test_open_camera_errors_are_clear(matter):
    with pytest.raises(TypeError, match="read"):
        WebcamMatting(matter, camera=3.5)
    with pytest.raises(ValueError, match="at least one frame"):
        ClipCamera([])
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\)"):
        ClipCamera(torch.zeros(2, 1, 8, 8))


# --- the fake-camera file ---------------------------------------------------------------------


def test_write_y4m_round_trips_through_i420(tmp_path, clip):
    path = write_y4m(tmp_path / "clip.y4m", clip.src[:3], fps=15)
    data = path.read_bytes()
    header, _, rest = data.partition(b"\n")
    assert header == b"YUV4MPEG2 W320 H240 F15:1 Ip A1:1 C420jpeg"
    frame_bytes = 320 * 240 * 3 // 2
    assert len(rest) == 3 * (len(b"FRAME\n") + frame_bytes)
    second = np.frombuffer(rest[len(b"FRAME\n") + frame_bytes :][6 : 6 + frame_bytes], np.uint8)
    rgb = cv2.cvtColor(second.reshape(240 * 3 // 2, 320), cv2.COLOR_YUV2RGB_I420)
    assert np.abs(rgb.astype(int) - _uint8(clip.src[1])).mean() < 4
    with pytest.raises(ValueError, match="even"):
        write_y4m(tmp_path / "odd.y4m", [np.zeros((9, 8, 3), np.uint8)])
    assert not (tmp_path / "odd.y4m").exists()


def test_changing_the_model_swaps_it_between_frames(matter, clip):
    widget = WebcamMatting(matter)
    browser = Recorder(widget)
    try:
        widget.preset = "hd"
        assert widget.status.startswith("Loading mattingkit (hd)")
        widget.handler.set_plate(_uint8(clip.bgr))
        widget._on_browser_message(widget, {"type": "frame", "id": 1}, [_jpeg(_uint8(clip.src[0]))])
        browser.wait_for(lambda: browser.of_type("result"))
        assert widget.handler.matter is not matter and widget.handler.matter.preset == "hd"
        assert widget.status.startswith("Using mattingkit (hd)") or widget.frames_matted == 1
    finally:
        widget.close()


# --- what the status line and the widget say (issue 13) ----------------------------------------


def test_offline_official_weights_say_that_the_fallback_runs(matter, clip, tmp_path, monkeypatch):
    def no_network(source, dest, **kwargs):
        raise ConnectionError("Failed to resolve 'drive.google.com'")

    monkeypatch.setattr(download, "default_downloader", no_network)
    monkeypatch.setenv("MATTINGKIT_HOME", str(tmp_path / "home"))
    widget = WebcamMatting(matter)
    browser = Recorder(widget)
    try:
        widget.handler.set_plate(_uint8(clip.bgr))
        widget.weights, widget.preset = "resnet50", "4k"
        widget._on_browser_message(widget, {"type": "frame", "id": 1}, [_jpeg(_uint8(clip.src[0]))])
        browser.wait_for(lambda: browser.of_type("result"))
        assert widget.handler.matter.used_fallback
        assert "Using resnet50" not in widget.status
        assert "not available" in widget.status and "shipped MobileNetV2" in widget.status
        assert "fallback" in widget.model_info
        widget._on_browser_message(widget, {"type": "frame", "id": 2}, [_jpeg(_uint8(clip.src[1]))])
        browser.wait_for(lambda: len(browser.of_type("result")) == 2)
        assert "shipped MobileNetV2" in widget.status, "the warning stays while it is true"
    finally:
        widget.close()


def test_image_background_keeps_matting_takes_a_picture_and_leaves_no_stale_message(matter, clip):
    widget = WebcamMatting(matter, width=SIZE[1], height=SIZE[0])
    browser = Recorder(widget)
    try:
        widget.handler.set_plate(_uint8(clip.bgr))
        widget.background = "image"
        assert widget.status == PICTURE_HINT
        widget._on_browser_message(widget, {"type": "frame", "id": 1}, [_jpeg(_uint8(clip.src[0]))])
        browser.wait_for(lambda: browser.of_type("result"))
        assert browser.of_type("result")[0]["kind"] == "matte", "matting goes on without a picture"
        assert not widget.status.startswith("⚠")

        # the browser's "picture…" button sends a file; a broken one says so in one sentence
        widget._on_browser_message(widget, {"type": "background_image", "name": "x.txt"}, [b"hi"])
        assert widget.status.startswith("⚠ Could not read x.txt")
        red = _jpeg(np.full((60, 80, 3), (255, 0, 0), np.uint8))
        widget._on_browser_message(widget, {"type": "background_image", "name": "red.jpg"}, [red])
        assert widget.status == "Background picture: red.jpg."
        assert widget.background_image.shape == (*SIZE, 3)
        widget._on_browser_message(widget, {"type": "frame", "id": 2}, [_jpeg(_uint8(clip.src[0]))])
        browser.wait_for(lambda: len(browser.of_type("result")) == 2)
        _, buffers = [m for m in browser.messages if m[0].get("type") == "result"][-1]
        drawn = _decode(bytes(buffers[0]))[:, :, ::-1].astype(int)
        background = clip.pha[0, 0].numpy() < 0.01
        assert (np.abs(drawn - [255, 0, 0]).max(axis=2) < 60)[background].mean() > 0.9

        widget._on_browser_message(widget, {"type": "frame", "id": 3}, [b"garbage"])
        browser.wait_for(lambda: widget.status.startswith("⚠ ValueError"))
        widget.background = "green"  # switching back clears the old error
        assert widget.status == MATTING_MESSAGE
    finally:
        widget.close()


class FakeShell:
    """Stands in for IPython: records the execute events a comm message fires."""

    def __init__(self) -> None:
        self.events = self
        self.fired: list[str] = []

    def trigger(self, name: str, *args) -> None:
        self.fired.append(name)


def test_widget_messages_fire_no_execute_events(matter, clip, monkeypatch):
    """A frame must not run post_execute: matplotlib would flush another cell's figure."""
    import IPython

    shell = FakeShell()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    widget = WebcamMatting(matter)
    browser = Recorder(widget)
    try:
        message = {
            "content": {
                "comm_id": widget.comm.comm_id,
                "data": {"method": "custom", "content": {"type": "frame", "id": 7}},
            },
            "buffers": [_jpeg(_uint8(clip.bgr))],
        }
        widget.comm.handle_msg(message)
        browser.wait_for(lambda: browser.of_type("result"))
        assert browser.of_type("result")[0]["id"] == 7
        assert shell.fired == [], "a widget message fired " + ", ".join(shell.fired)
    finally:
        widget.close()
