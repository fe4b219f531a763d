#!/usr/bin/env python
"""Write the small sample media that the notebooks use offline into ``assets/samples/``.

Usage (from the repository root)::

    python scripts/make_assets.py              # write missing files, check existing ones
    python scripts/make_assets.py --overwrite  # regenerate everything

Everything comes from :mod:`mattingkit.data.synthetic` with fixed seeds, so the files can always
be rebuilt bit for bit on a machine with the same photo sources (``manifest.json`` records
them). A file that exists with different content is never replaced without
``--overwrite``; identical files are left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from mattingkit.data.synthetic import (
    CLIP_SPEC,
    SAMPLE_SPECS,
    TRIANGULATION_SPEC,
    generate_named_sample,
    load_clip,
    make_triangulation_sample,
    photo_sources,
)
from mattingkit.io import atomic_write, write_image

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "assets" / "samples"
CLIP_FPS = 24


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, C) uint8, rounded like ``write_image``."""
    array = image.detach().cpu().permute(1, 2, 0).numpy()
    return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)


class AssetWriter:
    """Writes files atomically, skipping identical ones and refusing silent overwrites."""

    def __init__(self, folder: Path, overwrite: bool) -> None:
        self.folder, self.overwrite = folder, overwrite
        self.written: list[str] = []
        self.unchanged: list[str] = []
        self.conflicts: list[str] = []

    def _decide(self, path: Path, same: bool) -> bool:
        """True when ``path`` should be (re)written."""
        if not path.exists():
            return True
        if same:
            self.unchanged.append(path.name)
            return False
        if self.overwrite:
            return True
        self.conflicts.append(path.name)
        return False

    def image(self, name: str, tensor: torch.Tensor) -> None:
        path = self.folder / name
        pixels = _to_uint8(tensor)
        same = False
        if path.exists():
            old = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            new = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels[:, :, ::-1]
            same = old is not None and old.shape == new.shape and np.array_equal(old, new)
        if self._decide(path, same):
            write_image(path, pixels, overwrite=True)
            self.written.append(name)

    def blob(self, name: str, payload: bytes) -> None:
        path = self.folder / name
        same = path.exists() and path.read_bytes() == payload
        if path.exists() and not same and path.suffix == ".mp4":
            # x264 is not always bit-exact from run to run: compare what the videos show.
            same = _same_video(path.read_bytes(), payload)
        if self._decide(path, same):
            with atomic_write(path, "wb") as f:
                f.write(payload)
            self.written.append(name)


def _decode_mp4(payload: bytes) -> np.ndarray:
    with av.open(io.BytesIO(payload)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _same_video(old: bytes, new: bytes, tolerance: float = 1.0) -> bool:
    """True when two encodings show the same frames (mean difference < ``tolerance`` / 255)."""
    try:
        a, b = _decode_mp4(old), _decode_mp4(new)
    except (av.FFmpegError, ValueError):
        return False
    return a.shape == b.shape and float(np.abs(a.astype(np.int16) - b).mean()) < tolerance


def encode_mp4(frames: np.ndarray, fps: int = CLIP_FPS) -> bytes:
    """(T, H, W, 3) uint8 RGB frames -> H.264 mp4 bytes (yuv420p, CRF 18, one thread)."""
    buffer = io.BytesIO()
    _, h, w, _ = frames.shape
    with av.open(buffer, mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18", "preset": "medium", "threads": "1"}
        stream.codec_context.thread_count = 1
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def write_samples(writer: AssetWriter) -> dict:
    specs: dict = {}
    for name, (seed, size, subject) in SAMPLE_SPECS.items():
        sample = generate_named_sample(name)
        for part in ("src", "bgr", "fgr", "pha"):
            writer.image(f"{name}_{part}.png", getattr(sample, part))
        specs[name] = {"seed": seed, "size_hw": list(size), "subject": subject}

    seed, size = TRIANGULATION_SPEC
    tri = make_triangulation_sample(seed, size)
    for part in ("src1", "src2", "bgr1", "bgr2", "fgr", "pha"):
        writer.image(f"tri_{part}.png", getattr(tri, part))
    specs["tri"] = {"seed": seed, "size_hw": list(size), "subject": "person"}

    seed, size, frames = CLIP_SPEC
    clip = load_clip()
    writer.image("clip_bgr.png", clip.bgr)
    src = np.stack([_to_uint8(f) for f in clip.src])
    pha = np.stack([np.repeat(_to_uint8(p), 3, axis=2) for p in clip.pha])
    writer.blob("clip_src.mp4", encode_mp4(src))
    writer.blob("clip_pha.mp4", encode_mp4(pha))
    specs["clip"] = {"seed": seed, "size_hw": list(size), "frames": frames, "fps": CLIP_FPS}
    return specs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace files whose content differs"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    args.out.mkdir(parents=True, exist_ok=True)
    writer = AssetWriter(args.out, args.overwrite)
    specs = write_samples(writer)
    if writer.conflicts:
        print(
            "These files exist with different content and were kept: "
            + ", ".join(writer.conflicts)
            + "\nRun with --overwrite to regenerate them (check `git diff` afterwards).",
            file=sys.stderr,
        )
        return 1

    files = sorted(p for p in args.out.iterdir() if p.suffix in (".png", ".mp4"))
    manifest = {
        "generator": "python scripts/make_assets.py",
        "photo_sources": list(photo_sources()),
        "samples": specs,
        "files": {
            p.name: {
                "bytes": p.stat().st_size,
                "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            }
            for p in files
        },
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    writer.blob("manifest.json", text.encode())
    total = sum(p.stat().st_size for p in files)
    print(
        f"{len(writer.written)} written, {len(writer.unchanged)} unchanged in {args.out} "
        f"({total / 1e6:.2f} MB of media)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
