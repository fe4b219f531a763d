"""Matte a whole video: decode, infer and encode at the same time, lose nothing on the way.

The official ``inference_video.py`` reads a frame, runs the model, writes the frame, one
after the other; it trusts the container's frame count (and fails with ``IndexError`` on
long clips where the metadata is wrong), drops the audio, and leaves a half-written file
when it crashes. :func:`matte_video` fixes each of these:

* **A pipeline.** A decoder thread (PyAV) fills a small queue with frames; the calling
  thread runs the model; one writer thread per output encodes (H.264 through PyAV) or
  writes PNGs. Decoding and encoding overlap inference, and the bounded queues keep memory
  flat. An error in any thread stops all of them and is raised in the caller.
* **Nothing lost.** Frames are counted as they are decoded (the container's count is only a
  hint for the progress bar) and the report checks frames in == frames out. Each frame keeps
  its own timestamp and the stream its time base and frame rate (variable frame rate
  survives; a PNG sequence gets a ``timestamps.csv`` beside its frames), the display matrix
  (phone videos stay upright) is copied, and the source's audio packets are copied into every
  video output unchanged (re-encoded to AAC only when the output container cannot hold the
  codec; the report says which).
* **Atomic outputs.** Everything is written to hidden ``.NAME.partial-XXXX`` files or folders
  next to the targets and renamed only when every output is complete: a crash or Ctrl-C
  never leaves a half-written file under the final name. Existing outputs are refused up
  front (all of them, before any work) unless ``overwrite=True``, and so is a folder that
  cannot be written (read-only disk, no permission).

The plate is a still image (a photo, an array, or a video whose first frame is used); one of
another size is scaled to the video's, with a warning (see :func:`fit_plate`). The
target background of the composite is a colour, an image, ``"blur"`` (the blurred plate),
or another video (looped when shorter than the source). Frames are matted one at a time,
as stored (a rotated phone video is matted sideways and played upright). Only the first
video and the first audio stream are used; subtitles and other streams are not copied.

Speed (``benchmarks/video_pipeline.py``, 1280x720, shipped model, this project's 2-core
CPU): the pipeline runs at 0.72-0.84x the frame rate of the model alone on frames already in
memory. The model keeps both cores busy, so the CPU that decoding and H.264 encoding need
(about 13 ms a frame) is taken from it; overlapping hides the waiting, not that work. With
a GPU running the model, the CPU threads have the cores to themselves.
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Union

import av
import cv2
import numpy as np
import torch

from mattingkit.apps.cleanup import clean_result
from mattingkit.apps.compositing import (
    Background,
    cover,
    fit_plate,
    output_array,
    resolve_background,
)
from mattingkit.apps.inference import to_tensor
from mattingkit.io import atomic_write
from mattingkit.outputs import (
    OUTPUT_TYPES,
    TIMESTAMPS_FILE,
    VIDEO_FORMATS,
    check_video_targets,
    check_writable,
    is_png_sequence,
    output_paths,
)

__all__ = [
    "OUTPUT_TYPES",
    "VIDEO_FORMATS",
    "VideoInfo",
    "VideoReport",
    "matte_video",
    "output_paths",
    "probe_video",
    "read_video",
    "write_video",
]

PathLike = Union[str, os.PathLike]

# OUTPUT_TYPES (what matte_video can write) and VIDEO_FORMATS (suffix -> FFmpeg muxer) live in
# mattingkit.outputs, which the command line reads before its slow imports.
#: Suffixes read as videos when given as a plate or a target background.
_VIDEO_INPUT_SUFFIXES = {*VIDEO_FORMATS, ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".gif", ".flv"}
_QUEUE_FRAMES = 4  # frames buffered between stages: enough to absorb jitter, little memory
_POLL_S = 0.1  # how often a blocked queue operation looks for a stop request
_END = object()  # "no more items" marker in the queues


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learned about a video, before any matting.

    ``frames_hint`` is the container's frame count: often missing or wrong, so it only sizes
    the progress bar. ``rotation`` is the display rotation in degrees counter-clockwise
    (phone videos are stored sideways and rotated on display); ``display_matrix`` is the
    full transform (rotation and flips) that is copied to the outputs.
    """

    path: Path
    width: int
    height: int
    frames_hint: int | None
    rate: Fraction | None
    time_base: Fraction
    codec: str
    rotation: int = 0
    display_matrix: tuple[int, ...] | None = None
    audio_codec: str | None = None


def _av_reason(error: BaseException) -> str:
    """FFmpeg's own words, without the errno and the repeated file name."""
    return getattr(error, "strerror", None) or str(error)


def _open_input(path: PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a video file")
    try:
        return av.open(str(path))
    except av.FFmpegError as error:
        raise ValueError(f"cannot read {path} as a video: {_av_reason(error)}") from None


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The 3x3 display matrix side data of a decoded frame (9 int32), if it has one."""
    for side in frame.side_data:
        if side.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            return tuple(int(v) for v in np.frombuffer(bytes(side), dtype="<i4"))
    return None


def probe_video(path: PathLike) -> VideoInfo:
    """Open a video, decode its first frame and describe it; raise if it cannot be matted.

    A missing file raises ``FileNotFoundError``; a file that is not a video, has no video
    stream, or whose first frame cannot be decoded (truncated, corrupt) raises
    ``ValueError`` with one line saying so. Nothing else is read, so this is quick.
    """
    path = Path(path)
    with _open_input(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as error:
            raise ValueError(f"cannot decode {path}: {_av_reason(error)}") from None
        if first is None:
            raise ValueError(f"{path} contains no decodable video frame (empty or truncated)")
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(
            path=path,
            width=first.width,
            height=first.height,
            frames_hint=stream.frames or None,
            rate=stream.average_rate or stream.guessed_rate,
            time_base=stream.time_base or Fraction(1, 90_000),
            codec=stream.codec_context.name,
            rotation=int(first.rotation),
            display_matrix=_display_matrix(first),
            audio_codec=audio,
        )


def read_video(path: PathLike, max_frames: int | None = None) -> torch.Tensor:
    """Decode a video into a float32 tensor (T, 3, H, W) in [0, 1], as stored (not rotated).

    For short clips in notebooks and tests: the whole clip is held in memory.
    """
    frames = []
    with _open_input(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        for frame in container.decode(video=0):
            frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"{path} contains no decodable video frame")
    return torch.stack(frames).permute(0, 3, 1, 2).float().div_(255)


def write_video(
    path: PathLike,
    frames: torch.Tensor | np.ndarray,
    fps: float | Fraction = 24,
    *,
    audio_hz: float | None = None,
    audio_codec: str = "aac",
    sample_rate: int = 48_000,
    rotation: int = 0,
    crf: int = 18,
    overwrite: bool = False,
) -> Path:
    """Write frames as an H.264 video, optionally with a sine tone as audio; return the path.

    For making test clips and examples: ``frames`` is (T, 3, H, W) float in [0, 1] or
    (T, H, W, 3) uint8 (H and W even). ``audio_hz`` adds a mono tone lasting as long as the
    video, encoded with ``audio_codec`` (``"aac"``; ``"pcm_mulaw"`` and friends need a
    ``.mov``/``.mkv``). ``rotation`` (degrees counter-clockwise) is stored as display matrix.
    Written atomically; an existing file is kept unless ``overwrite=True``.
    """
    path = Path(path)
    fmt = VIDEO_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: write a video as one of {sorted(VIDEO_FORMATS)}")
    if isinstance(frames, torch.Tensor):
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be (T, 3, H, W), got {tuple(frames.shape)}")
        frames = frames.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    count, height, width = frames.shape[:3]
    rate = Fraction(fps).limit_denominator(100_000)
    with atomic_write(path, overwrite=overwrite) as f, av.open(f, "w", format=fmt) as out:
        video = out.add_stream("libx264", rate=rate, options={"crf": str(crf)})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        audio = None
        if audio_hz is not None:
            audio = out.add_stream(audio_codec, rate=sample_rate, layout="mono")
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            seconds = float(count / rate)
            t = np.arange(round(seconds * sample_rate)) / sample_rate
            tone = (0.3 * np.sin(2 * np.pi * audio_hz * t)).astype(np.float32)[None]
            samples = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            samples.sample_rate, samples.pts = sample_rate, 0
            out.mux(audio.encode(samples))
            out.mux(audio.encode(None))
    return path


# --------------------------------------------------------------------------------------
# Outputs: names, atomic targets
# --------------------------------------------------------------------------------------
def _partial_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial-{secrets.token_hex(4)}")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _commit(tmp: Path, final: Path) -> None:
    """Move a finished temporary file or folder onto its final name."""
    if tmp.is_dir() and final.exists():  # a folder cannot be replaced in one rename
        trash = _partial_path(final)
        os.replace(final, trash)
        os.replace(tmp, final)
        _remove(trash)
    else:
        os.replace(tmp, final)


# --------------------------------------------------------------------------------------
# Plate and target background
# --------------------------------------------------------------------------------------
def _first_frame(path: Path) -> np.ndarray:
    with _open_input(path) as container:
        try:
            frame = next(container.decode(video=0), None)
        except (av.FFmpegError, IndexError) as error:
            raise ValueError(f"cannot decode {path}: {_av_reason(error)}") from None
    if frame is None:
        raise ValueError(f"{path} contains no decodable video frame")
    return frame.to_ndarray(format="rgb24")


def _is_video_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and Path(value).suffix.lower() in (
        _VIDEO_INPUT_SUFFIXES
    )


def _load_plate(plate: Any, info: VideoInfo) -> torch.Tensor:
    """The plate as (1, 3, H, W) float32 in the source's stored orientation and size."""
    if _is_video_path(plate):
        plate = _first_frame(Path(plate))
    elif isinstance(plate, (str, os.PathLike)) and not Path(plate).is_file():
        raise FileNotFoundError(f"plate image not found: {plate}")
    return fit_plate(to_tensor(plate), info.height, info.width, rotation=info.rotation)


def _background_frames(path: Path, height: int, width: int, stop: threading.Event) -> Iterator:
    """Frames of a background video, resized to cover the frame size, looped forever."""
    while not stop.is_set():
        produced = False
        with _open_input(path) as container:
            for frame in container.decode(video=0):
                produced = True
                yield cover(frame.to_ndarray(format="rgb24"), height, width)
        if not produced:
            raise ValueError(f"background video {path} has no decodable frame")


# --------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------
class _Stopped(Exception):
    """Raised inside a worker when the pipeline is being torn down."""


class _Worker(threading.Thread):
    """A daemon thread that keeps the exception that ended it for the caller to raise."""

    def __init__(self, name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.stop = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work()
        except _Stopped:
            pass
        except BaseException as error:  # noqa: BLE001 -- handed to the caller
            self.error = error

    def work(self) -> None:
        raise NotImplementedError

    def put(self, q: queue.Queue, item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue


@dataclass
class _AudioPacket:
    """A copy of one demuxed audio packet (muxing consumes a packet, so each output needs its own)."""

    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    time_base: Fraction
    keyframe: bool

    def packet(self, stream: Any) -> av.Packet:
        packet = av.Packet(self.data)
        packet.pts, packet.dts, packet.duration = self.pts, self.dts, self.duration
        packet.time_base, packet.is_keyframe = self.time_base, self.keyframe
        packet.stream = stream
        return packet


@dataclass
class _AudioSamples:
    """Decoded audio for outputs that re-encode it: plain arrays, safe to share."""

    array: np.ndarray
    format: str
    layout: str
    sample_rate: int
    pts: int | None
    time_base: Fraction

    def frame(self) -> av.AudioFrame:
        frame = av.AudioFrame.from_ndarray(self.array, format=self.format, layout=self.layout)
        frame.sample_rate, frame.pts, frame.time_base = self.sample_rate, self.pts, self.time_base
        return frame


class _Decoder(_Worker):
    """Demux the source; decode video frames (and the target-background video) to RGB arrays.

    Puts ``("video", index, rgb, pts, background)`` and ``("audio", packet, samples)`` items.
    """

    def __init__(
        self,
        container: Any,
        out: queue.Queue,
        stop: threading.Event,
        *,
        max_frames: int | None,
        background: Iterator | None,
        decode_audio: bool,
    ) -> None:
        super().__init__("mattingkit-decode", stop)
        self.container, self.out = container, out
        self.max_frames, self.background, self.decode_audio = max_frames, background, decode_audio
        self.frames = 0

    def work(self) -> None:
        video = self.container.streams.video[0]
        audio = self.container.streams.audio[0] if self.container.streams.audio else None
        streams = [video] + ([audio] if audio is not None else [])
        try:
            for packet in self.container.demux(*streams):
                if packet.stream is audio:
                    self.forward_audio(packet)
                    continue
                for frame in packet.decode():
                    self.forward_video(frame)
                    if self.max_frames is not None and self.frames >= self.max_frames:
                        return
        except av.FFmpegError as error:
            path = self.container.name
            raise ValueError(
                f"cannot decode {path} after frame {self.frames}: {_av_reason(error)}"
            ) from None
        finally:
            if not self.stop.is_set():
                self.put(self.out, _END)

    def forward_video(self, frame: av.VideoFrame) -> None:
        rgb = frame.to_ndarray(format="rgb24")
        background = next(self.background) if self.background is not None else None
        self.put(self.out, ("video", self.frames, rgb, frame.pts, background))
        self.frames += 1

    def forward_audio(self, packet: av.Packet) -> None:
        samples = []
        if self.decode_audio:  # some output re-encodes the audio (also flushes at the end)
            for frame in packet.decode():
                samples.append(
                    _AudioSamples(
                        frame.to_ndarray(),
                        frame.format.name,
                        frame.layout.name,
                        frame.sample_rate,
                        frame.pts,
                        frame.time_base,
                    )
                )
        copy = None
        if packet.size:  # size 0: the end-of-stream marker demux yields, nothing to copy
            copy = _AudioPacket(
                bytes(packet),
                packet.pts,
                packet.dts,
                packet.duration,
                packet.time_base,
                packet.is_keyframe,
            )
        if copy is not None or samples:
            self.put(self.out, ("audio", copy, samples))


class _Writer(_Worker):
    """Write one output from its queue: ``("video", array, pts)`` and ``("audio", ...)`` items."""

    def __init__(self, kind: str, final: Path, stop: threading.Event) -> None:
        super().__init__(f"mattingkit-write-{kind}", stop)
        self.kind, self.final = kind, final
        self.tmp = _partial_path(final)
        self.queue: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)
        self.frames = 0
        self.finished = False

    def work(self) -> None:
        try:
            while True:
                item = self.get(self.queue)
                if item is _END:
                    break
                if item[0] == "video":
                    self.write_frame(item[1], item[2])
                    self.frames += 1
                else:
                    self.write_audio(item[1], item[2])
            self.close()
            self.finished = True
        finally:
            if not self.finished:
                self.abort()

    def write_frame(self, array: np.ndarray, pts: int) -> None:
        raise NotImplementedError

    def write_audio(self, packet: _AudioPacket | None, samples: list[_AudioSamples]) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class _PngWriter(_Writer):
    """A folder of ``000000.png``, ``000001.png``, ... (RGBA, RGB or grey) and their times.

    PNG files hold no time, so each frame's timestamp goes to ``timestamps.csv`` in the same
    folder (``frame,file,pts,time_base,seconds``): a variable frame rate can be rebuilt from
    it, e.g. with FFmpeg's concat demuxer or by hand.
    """

    def __init__(self, kind: str, final: Path, stop: threading.Event, *, info: VideoInfo) -> None:
        super().__init__(kind, final, stop)
        self.time_base = info.time_base
        self.period = 1 / (info.rate or 25) / info.time_base  # for frames without a timestamp
        self.times: list[str] = []
        self.tmp.mkdir(parents=True)

    def write_frame(self, array: np.ndarray, pts: int | None) -> None:
        if array.ndim == 3:
            code = cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR
            array = cv2.cvtColor(array, code)
        name = f"{self.frames:06d}.png"
        path = self.tmp / name
        if not cv2.imwrite(str(path), array):
            raise OSError(f"could not write {path}")
        if pts is None:  # raw streams without timestamps: one frame period each
            pts = round(self.frames * self.period)
        seconds = float(pts * self.time_base)
        self.times.append(f"{self.frames},{name},{pts},{self.time_base},{seconds:.6f}")

    def close(self) -> None:
        with open(self.tmp / TIMESTAMPS_FILE, "w", encoding="utf-8", newline="\n") as f:
            f.write("frame,file,pts,time_base,seconds\n")
            f.writelines(line + "\n" for line in self.times)


class _H264Writer(_Writer):
    """An H.264 video with the source's timestamps, display matrix and audio."""

    def __init__(
        self,
        kind: str,
        final: Path,
        stop: threading.Event,
        *,
        info: VideoInfo,
        audio_template: Any | None,
        preset: str,
        crf: int,
        threads: int,
    ) -> None:
        super().__init__(kind, final, stop)
        self.time_base = info.time_base
        self.container = av.open(str(self.tmp), "w", format=VIDEO_FORMATS[final.suffix.lower()])
        self.video = self.container.add_stream(
            "libx264", rate=info.rate, options={"preset": preset, "crf": str(crf)}
        )
        # yuv420p (what every player reads) needs even sizes: odd ones get one edge row/column.
        self.pad = (info.height % 2, info.width % 2)
        self.video.width, self.video.height = info.width + self.pad[1], info.height + self.pad[0]
        self.video.pix_fmt = "yuv420p"
        self.video.time_base = info.time_base
        self.video.codec_context.time_base = info.time_base
        self.video.thread_count = threads
        if info.display_matrix is not None:
            self.video.set_display_matrix(info.display_matrix)
        self.audio = None
        self.audio_mode = "none"
        if audio_template is not None:
            codec = audio_template.codec_context.name
            if codec in self.container.supported_codecs:
                self.audio = self.container.add_stream_from_template(audio_template)
                self.audio_mode = "copy"
            else:
                self.audio = self.container.add_stream(
                    "aac", rate=audio_template.codec_context.sample_rate
                )
                self.audio.layout = audio_template.codec_context.layout
                self.audio_mode = "aac"
        self.last_pts: int | None = None

    def write_frame(self, array: np.ndarray, pts: int | None) -> None:
        if self.pad != (0, 0):
            pad = ((0, self.pad[0]), (0, self.pad[1])) + (((0, 0),) if array.ndim == 3 else ())
            array = np.pad(array, pad, mode="edge")
        frame = av.VideoFrame.from_ndarray(array, format="rgb24" if array.ndim == 3 else "gray")
        if pts is None:  # raw streams without timestamps: one frame period each
            period = 1 / (self.video.codec_context.framerate or 25) / self.time_base
            pts = round(self.frames * period)
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1  # the encoder needs strictly increasing timestamps
        self.last_pts = pts
        frame.pts, frame.time_base = pts, self.time_base
        self.container.mux(self.video.encode(frame))

    def write_audio(self, packet: _AudioPacket | None, samples: list[_AudioSamples]) -> None:
        if self.audio_mode == "copy" and packet is not None:
            self.container.mux(packet.packet(self.audio))
        elif self.audio_mode == "aac":
            for chunk in samples:
                self.container.mux(self.audio.encode(chunk.frame()))

    def close(self) -> None:
        self.container.mux(self.video.encode(None))
        if self.audio_mode == "aac":
            self.container.mux(self.audio.encode(None))
        self.container.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()


# --------------------------------------------------------------------------------------
# Frames -> output arrays
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# matte_video
# --------------------------------------------------------------------------------------
@dataclass
class VideoReport:
    """What :func:`matte_video` did, measured.

    ``frames`` were decoded and written to every output (``frames_in == frames_out`` is
    checked before the outputs get their final names). ``seconds`` is the wall-clock time of
    the whole run after the model was ready, ``model_seconds`` the part spent in the model.
    """

    frames_in: int
    frames_out: int
    seconds: float
    model_seconds: float
    outputs: dict[str, Path]
    audio_copied: bool
    audio: str
    source: VideoInfo
    notes: list[str] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return self.frames_out

    @property
    def fps(self) -> float:
        """End-to-end frames per second (decode + model + encode, overlapped)."""
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_seconds if self.model_seconds > 0 else float("nan")

    def __str__(self) -> str:
        lines = [
            f"Matted {self.frames} frames of {self.source.height}×{self.source.width} (H×W) in "
            f"{self.seconds:.1f} s: {self.fps:.2f} fps end to end, model alone "
            f"{self.model_fps:.2f} fps",
            f"Audio: {self.audio}",
        ]
        lines += [f"Wrote {kind}: {path}" for kind, path in self.outputs.items()]
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)


def _model_input(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(rgb).to(device, non_blocking=True)
    return tensor.permute(2, 0, 1).unsqueeze(0).float().div_(255)


class _Pipeline:
    """The threads of one :func:`matte_video` run: decoder -> caller (model) -> writers.

    ``run`` feeds the model and hands its outputs on; ``finish`` flushes the writers, checks
    that every output got every frame and renames them into place; ``abort`` stops every
    thread and deletes the temporary files.
    """

    def __init__(
        self,
        info: VideoInfo,
        targets: dict[str, Path],
        background: Background,
        *,
        max_frames: int | None,
        encoder: dict[str, Any],
    ) -> None:
        self.stop = threading.Event()
        self.container = _open_input(info.path)
        self.writers: list[_Writer] = []
        self.decoder: _Decoder | None = None
        try:
            audio = self.container.streams.audio[0] if self.container.streams.audio else None
            for kind, path in targets.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                if is_png_sequence(path):
                    self.writers.append(_PngWriter(kind, path, self.stop, info=info))
                else:
                    self.writers.append(
                        _H264Writer(
                            kind, path, self.stop, info=info, audio_template=audio, **encoder
                        )
                    )
            backdrop = None
            if background.kind == "video" and "composite" in targets:
                backdrop = _background_frames(background.value, info.height, info.width, self.stop)
            self.frames: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)
            self.decoder = _Decoder(
                self.container,
                self.frames,
                self.stop,
                max_frames=max_frames,
                background=backdrop,
                decode_audio=any(getattr(w, "audio_mode", "") == "aac" for w in self.writers),
            )
        except BaseException:
            self.abort()
            self.close()
            raise

    def run(
        self,
        matter: Any,
        plate: torch.Tensor,
        background: Background,
        bar: Any,
        clean_matte: bool = False,
    ) -> tuple[int, float]:
        """Matte every decoded frame; return (frames, seconds spent in the model)."""
        assert self.decoder is not None
        for worker in [self.decoder, *self.writers]:
            worker.start()
        device = plate.device
        still = background.value.to(device) if background.kind == "image" else None
        frames, model_seconds = 0, 0.0
        while True:
            item = _main_get(self.frames, self.decoder)
            if item is _END:
                break
            if item[0] == "audio":
                for writer in self.writers:
                    _main_put(writer, item)
                continue
            _, _, rgb, pts, backdrop = item
            result = matter(_model_input(rgb, device), plate)
            model_seconds += result.seconds
            if clean_matte:
                result = clean_result(result)
            extra = still if backdrop is None else _model_input(backdrop, device)
            for writer in self.writers:
                array = output_array(writer.kind, result, background, extra)
                _main_put(writer, ("video", array, pts))
            frames += 1
            bar.update(1)
        self.decoder.join()
        if self.decoder.error is not None:
            raise self.decoder.error
        return frames, model_seconds

    def finish(self, frames: int) -> None:
        for writer in self.writers:
            _main_put(writer, _END)
        for writer in self.writers:
            writer.join()
            if writer.error is not None:
                raise writer.error
            if writer.frames != frames:
                raise RuntimeError(f"{writer.kind}: wrote {writer.frames} frames of {frames}")
        for writer in self.writers:
            _commit(writer.tmp, writer.final)

    def abort(self) -> None:
        self.stop.set()
        for worker in [self.decoder, *self.writers]:
            if worker is not None and worker.is_alive():
                worker.join(timeout=5)
            elif isinstance(worker, _Writer) and not worker.finished:
                worker.abort()  # never started: close its file
        for writer in self.writers:
            _remove(writer.tmp)

    def close(self) -> None:
        self.container.close()


def matte_video(
    source: PathLike,
    plate: Any,
    output: PathLike,
    *,
    matter: Any | None = None,
    output_types: Sequence[str] = ("composite",),
    background: Any = None,
    overwrite: bool = False,
    progress: bool = True,
    align: bool = False,
    max_frames: int | None = None,
    encoder_preset: str = "veryfast",
    crf: int = 18,
    encoder_threads: int = 0,
    clean_matte: bool = False,
) -> VideoReport:
    """Matte every frame of ``source`` against the clean ``plate`` and write the outputs.

    Args:
        source: a video file (anything FFmpeg reads).
        plate: the clean plate: an image file, array, tensor or PIL image, or a video file
            whose first frame is used. An upright photo of a video stored sideways is turned
            to match; a plate of another size is scaled to the video's (to cover, centre-
            cropped when the aspect ratio differs), with a warning.
        output: ``name.mp4`` / ``.mov`` / ``.mkv`` for H.264 video, or a folder name without
            a suffix for PNG sequences. The first output type goes there, the others beside
            it as ``name_pha.mp4``, ``name_fgr.mp4``, ... (see :func:`output_paths`).
        matter: a :class:`mattingkit.Matter` (default: ``Matter(align=align)``, the shipped or
            official weights with settings for the video's size).
        output_types: any of ``composite``, ``pha``, ``fgr``, ``err``, ``ref``.
        background: the composite's new background: a colour (``"green"`` (the official
            green), ``"white"``, ``"#00ff00"``, ``(r, g, b)``), an image, a video (looped when
            shorter), ``"blur"`` (the blurred plate) or ``"transparent"`` (PNG only: RGBA).
            Default: green for video files, transparent for PNG sequences.
        overwrite: replace existing outputs (checked for all of them before any work).
        progress: show a tqdm progress bar (works in notebooks too).
        align: align the plate to each frame, for a handheld camera (used to build the
            default ``Matter``; a Matter you pass brings its own ``align``).
        max_frames: stop after this many frames (a quick preview).
        encoder_preset, crf, encoder_threads: libx264 speed/quality preset, quality (lower
            is better; 18 is visually lossless) and threads (0: libx264 decides).
        clean_matte: clean each matte before it is written: keep the subject's region, fill
            the holes inside it (:func:`mattingkit.apps.cleanup.clean_result`; one subject only).

    Returns:
        :class:`VideoReport`: frames in and out, timings, output paths and what happened to
        the audio. PNG sequences carry no audio; each folder holds a ``timestamps.csv`` with
        every frame's time.

    Raises:
        FileNotFoundError, ValueError: unreadable or corrupt source, plate or background, a
            bad output name; raised before anything is written.
        FileExistsError: an output exists and ``overwrite`` is False.
        mattingkit.outputs.NotWritableError: an output folder cannot be written (before
            any work, naming the folder and why).
        Any error of the model or the encoder: the temporary files are removed first.
    """
    source = Path(source)
    if max_frames is not None and int(max_frames) < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    # Everything that can be wrong is checked before the model loads and anything is written.
    targets = output_paths(output, output_types)
    info = probe_video(source)
    check_video_targets(targets, source, overwrite)
    check_writable(targets.values())
    plate_tensor = _load_plate(plate, info)
    transparent_ok = is_png_sequence(targets.get("composite", Path("x.mp4")))
    bg = resolve_background(background, transparent_ok, info.height, info.width)
    if matter is None:
        from mattingkit.apps.inference import Matter

        matter = Matter(align=align)
    elif align and not getattr(matter, "align", False):
        raise ValueError("align=True is for the default Matter; pass Matter(..., align=True)")
    plate_tensor = plate_tensor.to(torch.device(getattr(matter, "device", "cpu")))
    encoder = {"preset": encoder_preset, "crf": crf, "threads": encoder_threads}

    from tqdm.auto import tqdm

    total = (
        info.frames_hint if max_frames is None else min(max_frames, info.frames_hint or max_frames)
    )
    pipeline = _Pipeline(info, targets, bg, max_frames=max_frames, encoder=encoder)
    bar = tqdm(total=total, unit="frame", desc=source.name, disable=not progress)
    try:
        start = time.perf_counter()
        frames, model_seconds = pipeline.run(matter, plate_tensor, bg, bar, clean_matte)
        pipeline.finish(frames)
        seconds = time.perf_counter() - start
    except BaseException:
        pipeline.abort()
        raise
    finally:
        bar.close()
        pipeline.close()
    return _report(info, pipeline.writers, frames, seconds, model_seconds)


def _report(
    info: VideoInfo, writers: list[_Writer], frames: int, seconds: float, model_seconds: float
) -> VideoReport:
    modes = {w.audio_mode for w in writers if isinstance(w, _H264Writer)}
    has_png = any(isinstance(w, _PngWriter) for w in writers)
    notes = []
    if info.width % 2 or info.height % 2:
        notes.append(
            f"H.264 needs even sizes: the {info.height}×{info.width} (H×W) video was padded by one "
            "edge row/column"
        )
    if info.rotation:
        notes.append(f"display rotation {info.rotation}° kept (frames matted as stored)")
    if has_png:
        notes.append(f"each PNG folder holds {TIMESTAMPS_FILE}: every frame's time")
    return VideoReport(
        frames_in=frames,
        frames_out=min(w.frames for w in writers),
        seconds=seconds,
        model_seconds=model_seconds,
        outputs={w.kind: w.final for w in writers},
        audio_copied="copy" in modes,
        audio=_describe_audio(info.audio_codec, modes, has_png),
        source=info,
        notes=notes,
    )


def _describe_audio(codec: str | None, modes: set[str], has_png: bool) -> str:
    if codec is None:
        return "the source has no audio"
    parts = [] if modes - {"none"} else [f"the source's {codec} audio was not written"]
    if "copy" in modes:
        parts.append(f"{codec} copied unchanged into the video outputs")
    if "aac" in modes:
        parts.append(f"{codec} cannot be stored in this container: re-encoded to AAC")
    if has_png:
        parts.append("PNG sequences carry no audio")
    return "; ".join(parts)


def _main_get(q: queue.Queue, decoder: _Decoder) -> Any:
    """Next decoded item; raise the decoder's error if it died without sending the end marker."""
    while True:
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            pass
        if not decoder.is_alive() and q.empty():
            if decoder.error is not None:
                raise decoder.error
            return _END


def _main_put(writer: _Writer, item: Any) -> None:
    """Hand an item to a writer; raise the writer's error instead of waiting on a dead thread."""
    while True:
        if writer.error is not None:
            raise writer.error
        if not writer.is_alive() and writer.ident is not None:
            raise RuntimeError(f"the {writer.kind} writer stopped unexpectedly")
        try:
            writer.queue.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            continue
