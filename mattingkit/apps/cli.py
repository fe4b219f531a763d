"""The ``mattingkit`` command: matte an image or a video, fetch weights, time the model.

Examples::

    mattingkit image photo.jpg --bgr plate.jpg -o cutout.png
    mattingkit video clip.mp4 --bgr plate.jpg -o out.mp4 --output-types composite pha
    mattingkit video clip.mp4 --bgr plate.jpg -o frames --background transparent
    mattingkit download resnet50
    mattingkit benchmark --backbone mobilenetv2
    mattingkit export --web live-matting

Errors print one line, ``mattingkit: error: ...``, and exit with status 2 (bad usage) or 1
(the work failed: unreadable input, existing output, ...); ``--debug`` shows the traceback.
Arguments, input files and outputs are checked before torch is imported (seconds on a fast
machine, minutes on a loaded one), so a typo fails at once; that includes an output folder
that cannot be written (read-only disk, no permission). Nothing is left behind by a failed
run, and nothing existing is replaced without ``--overwrite``. Weights named with
``--weights``/``--backbone`` that cannot be downloaded are an error unless
``--allow-fallback`` asks for the shipped model instead. The report names the weights that
made the results, with a warning about quality when they are the shipped model.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from mattingkit.outputs import (
    ALPHA_SUFFIXES,
    OUTPUT_TYPES,
    check_video_targets,
    check_writable,
    command_line_message,
    exists_message,
    image_output_paths,
    looks_like_colour,
    output_paths,
)
from mattingkit.weights.download import DownloadError

# Only light modules here: everything that imports torch is imported inside the commands.
from mattingkit.weights.names import (
    SHIPPED_LABEL,
    check_name_or_file,
    fetch_registry_file,
    is_shipped,
    shipped_quality_warning,
)

__all__ = ["build_parser", "main"]

_X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
)  # fmt: skip
_BACKGROUND_WORDS = ("transparent", "none", "rgba", "blur", "green")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (status 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.replace("mattingkit", "").strip()
        hint = f"mattingkit {command} --help" if command else "mattingkit --help"
        self.exit(2, f"mattingkit: error: {message} (see '{hint}')\n")


def _download_failed(error: DownloadError) -> str:
    """One line for weights a matting command could not download: what, why, what to do."""
    return (
        f"{error.one_line()}, or pass --allow-fallback to matte with mattingkit's shipped "
        "model instead"
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _crf(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 51:
        raise argparse.ArgumentTypeError(f"H.264 quality runs from 0 to 51, got {value}")
    return value


# --------------------------------------------------------------------------------------
# Checks made before the slow imports
# --------------------------------------------------------------------------------------
def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder, not a file")


def _check_background(value: str | None) -> None:
    """A background that names a file must exist; colours and keywords are checked later."""
    if value is None or value.lower() in _BACKGROUND_WORDS or looks_like_colour(value):
        return
    _require_file(Path(value), "background")


def _check_weights(value: str | None) -> None:
    """``--weights`` must be a registry name or an existing file."""
    if value is not None:
        check_name_or_file(value)


# --------------------------------------------------------------------------------------
# Shared options
# --------------------------------------------------------------------------------------
def _add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--weights",
        help="registry name (resnet50, resnet101, mobilenetv2, mattingkit, ...) or a weights "
        "file (state_dict or TorchScript); default: the shipped model, or with --backbone that "
        "backbone's official weights. Named weights that cannot be downloaded are an error "
        "unless --allow-fallback is given",
    )
    group.add_argument("--backbone", choices=("resnet50", "resnet101", "mobilenetv2"))
    group.add_argument(
        "--allow-fallback",
        action="store_true",
        help="when the named official weights cannot be downloaded, matte with mattingkit's "
        "shipped MobileNetV2 instead (much lower quality; a warning says so)",
    )
    group.add_argument(
        "--preset",
        choices=("auto", "hd", "4k"),
        default="auto",
        help="hd: backbone_scale 1/4, 80k refined pixels; 4k: 1/8, 320k; auto: by frame size",
    )
    group.add_argument("--refine-mode", choices=("sampling", "thresholding", "full"))
    group.add_argument("--refine-sample-pixels", type=int, metavar="N")
    group.add_argument("--refine-threshold", type=float, metavar="T")
    group.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    group.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    group.add_argument(
        "--align", action="store_true", help="align the plate to each frame (handheld camera)"
    )
    group.add_argument(
        "--clean-matte",
        action="store_true",
        help="clean each matte: keep only the subject's connected region and fill the holes "
        "inside it (one subject in view; see mattingkit.apps.cleanup)",
    )


def _add_output_options(parser: argparse.ArgumentParser, kind: str) -> None:
    parser.add_argument("-o", "--output", type=Path, required=True, help=f"where to write ({kind})")
    parser.add_argument(
        "--output-types",
        nargs="+",
        choices=OUTPUT_TYPES,
        default=["composite"],
        metavar="TYPE",
        help="one or more of composite, pha, fgr, err, ref: the composite, the alpha matte, "
        "the foreground, the error map, the refined 4×4 patches. The first goes to -o, the "
        "others beside it as NAME_pha.EXT, ... (default: composite)",
    )
    parser.add_argument(
        "--background",
        help="the composite's new background: a colour (green = the official green screen, "
        "white, '#00ff00', '0,177,64'), an image file, 'blur' (the blurred plate), "
        "'transparent' (PNG only)"
        + (", or a video file (looped when shorter)" if kind.startswith("video") else "")
        + "; default: transparent for PNG, green otherwise",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _matter(args: argparse.Namespace) -> Any:
    from mattingkit.apps.inference import Matter

    options = {
        name: value
        for name, value in (
            ("refine_mode", args.refine_mode),
            ("refine_sample_pixels", args.refine_sample_pixels),
            ("refine_threshold", args.refine_threshold),
        )
        if value is not None
    }
    named = args.weights is not None or args.backbone is not None
    return Matter(
        args.weights,
        backbone=args.backbone,
        preset=args.preset,
        device=args.device,
        precision=args.precision,
        align=args.align,
        allow_fallback=args.allow_fallback or not named,  # the shipped model needs none
        **options,
    )


def _weights_label(args: argparse.Namespace, matter: Any) -> str:
    """How the report names the weights that made the results; warns once (stderr) about the
    shipped model's quality, unless the offline-fallback warning already said it."""
    named = args.weights if args.weights is not None else args.backbone
    if getattr(matter, "used_fallback", False):
        return f"{SHIPPED_LABEL} (offline fallback for {named})"
    if named is None or is_shipped(named):
        warnings.warn(shipped_quality_warning(), UserWarning, stacklevel=2)
        return SHIPPED_LABEL
    return str(matter.weights_name)


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------
def run_image(args: argparse.Namespace) -> int:
    targets = image_output_paths(args.output, args.output_types)
    _require_file(args.src, "image")
    _require_file(args.bgr, "plate")
    _check_background(args.background)
    _check_weights(args.weights)
    existing = [p for p in targets.values() if p.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(exists_message(existing))
    check_writable(targets.values())

    from mattingkit.apps.compositing import fit_plate, output_array, resolve_background
    from mattingkit.io import read_image, write_image

    src = read_image(args.src)  # fail on bad input before loading the model
    height, width = src.shape[-2:]
    bgr = fit_plate(read_image(args.bgr), height, width, target=f"the photo {args.src}")
    transparent_ok = targets.get("composite", args.output).suffix.lower() in ALPHA_SUFFIXES
    background = resolve_background(args.background, transparent_ok, height, width, video_ok=False)
    matter = _matter(args)
    result = matter(src, bgr)
    if args.clean_matte:
        from mattingkit.apps.cleanup import clean_result

        result = clean_result(result)
    extra = background.value if background.kind == "image" else None
    for kind, path in targets.items():
        image = output_array(kind, result, background, extra)
        write_image(path, image, overwrite=args.overwrite)
        print(f"Wrote {kind}: {path}")
    print(
        f"Matted {height}×{width} (H×W) with {_weights_label(args, matter)} on {matter.device} "
        f"in {result.seconds * 1000:.0f} ms"
    )
    return 0


def run_video(args: argparse.Namespace) -> int:
    targets = output_paths(args.output, args.output_types)
    _require_file(args.src, "video")
    _require_file(args.bgr, "plate")
    _check_background(args.background)
    _check_weights(args.weights)
    check_video_targets(targets, args.src, args.overwrite)
    check_writable(targets.values())

    from mattingkit.apps.video import matte_video

    matter = _LazyMatter(args)
    report = matte_video(
        args.src,
        args.bgr,
        args.output,
        matter=matter,
        output_types=args.output_types,
        background=args.background,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        max_frames=args.max_frames,
        encoder_preset=args.encoder_preset,
        crf=args.crf,
        clean_matte=args.clean_matte,
    )
    print(report)
    print(f"Model: {_weights_label(args, matter._get())} on {matter.device}")
    return 0


class _LazyMatter:
    """Builds the Matter on first use: matte_video checks every input and output first, so
    a bad argument fails at once, before a slow (or downloading) model load."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._matter: Any = None

    def _get(self) -> Any:
        if self._matter is None:
            self._matter = _matter(self.args)
        return self._matter

    @property
    def device(self) -> Any:
        return self._get().device

    def __call__(self, src: Any, bgr: Any) -> Any:
        return self._get()(src, bgr)


def run_download(args: argparse.Namespace) -> int:
    # Without torch: offline, the answer comes in about a second, not after the import.
    path = fetch_registry_file(args.name, cache_dir=args.cache_dir, progress=True)
    print(path)
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Write the static web page (chapter 08): checked before torch is imported."""
    from mattingkit.apps.web import _check_target, runtime_files

    folder = Path(args.web)
    _check_target(folder, args.overwrite)  # an existing page or notes: refused at once
    runtime_files()  # a missing runtime: the command to install it, at once
    _check_weights(args.weights)
    from mattingkit.apps.web import export_web
    from mattingkit.weights.pretrained import load_pretrained

    model = None if args.weights is None else load_pretrained(args.weights, allow_fallback=False)
    export_web(folder, model, precision=args.precision, overwrite=args.overwrite)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    print(
        f"{folder} ({size / 1e6:.1f} MB): serve it with `python -m http.server -d {folder}` "
        "and open http://localhost:8000 (a browser runs no WebAssembly or camera from file://)"
    )
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be H×W (height first), e.g. 270x480, got {text!r}"
        ) from None
    if height < 4 or width < 4:
        raise argparse.ArgumentTypeError(f"size must be at least 4×4, got {text!r}")
    return height, width


def run_benchmark(args: argparse.Namespace) -> int:
    import torch

    from mattingkit.runtime import pick_device
    from mattingkit.speed.profile import fps, gmacs, speed_test_model
    from mattingkit.weights.pretrained import get_weights

    device = pick_device(verbose=False) if args.device == "auto" else torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.size or ((1080, 1920) if device.type == "cuda" else (270, 480))
    paper = get_weights(args.backbone).paper
    print(
        f"{args.backbone}, random weights, sampling mode as in the paper's speed test; "
        f"device {device}, {torch.get_num_threads()} CPU threads"
    )
    print(f"{'':>4} {'GMac (ours)':>12} {'GMac (paper)':>13}")
    for resolution in ("HD", "4K"):
        model = speed_test_model(args.backbone, resolution)
        full = (1080, 1920) if resolution == "HD" else (2160, 3840)
        ours = gmacs(model, full)
        print(
            f"{resolution:>4} {ours:12.2f} {paper.get('gmacs_' + resolution.lower(), float('nan')):13.1f}"
        )
    model = speed_test_model(args.backbone, "HD")
    result = fps(model, size, device=device, warmup=args.warmup, repeats=args.repeats)
    print(f"Speed at {size[0]}×{size[1]} (H×W, HD settings): {result}")
    print(f"Paper (RTX 2080 Ti, 1080×1920 H×W): {paper.get('fps_hd', float('nan'))} fps")
    return 0


# --------------------------------------------------------------------------------------
# Parser and entry point
# --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mattingkit",
        description="Background Matting V2: matte images and videos against a clean plate.",
        epilog=__doc__.split("Examples::")[1].split("Errors")[0].rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of errors")
    from mattingkit import __version__

    parser.add_argument("--version", action="version", version=f"mattingkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    image = commands.add_parser(
        "image",
        help="matte one image",
        description="Matte one image against its clean plate.",
        epilog="example: mattingkit image photo.jpg --bgr plate.jpg -o cutout.png "
        "--output-types composite pha",
    )
    image.add_argument("src", type=Path, help="the photo with the subject")
    image.add_argument(
        "--bgr", type=Path, required=True, help="the clean plate (same view, no subject)"
    )
    _add_output_options(image, "image: .png, .jpg, ...")
    _add_model_options(image)
    image.set_defaults(func=run_image)

    video = commands.add_parser(
        "video",
        help="matte a video",
        description="Matte every frame of a video against a clean plate. Decoding, the model "
        "and encoding run at the same time; frame count, timestamps, rotation and the audio "
        "track are kept. Outputs are written to temporary files and renamed when complete.",
        epilog="examples:\n"
        "  mattingkit video clip.mp4 --bgr plate.jpg -o out.mp4\n"
        "  mattingkit video clip.mp4 --bgr plate.jpg -o out.mp4 --output-types composite pha "
        "--background beach.mp4\n"
        "  mattingkit video clip.mp4 --bgr plate.jpg -o frames   # PNG sequence, RGBA\n"
        "-o NAME.mp4/.mov/.mkv writes H.264 (audio copied); -o NAME without a suffix writes a "
        "folder of 000000.png, ... (no audio). Other output types go beside it: NAME_pha.mp4 "
        "or NAME_pha/.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    video.add_argument("src", type=Path, help="the video with the subject")
    video.add_argument(
        "--bgr",
        type=Path,
        required=True,
        help="the clean plate: an image, or a video whose first frame is used",
    )
    _add_output_options(video, "video: .mp4, .mov, .mkv, or a folder for PNGs")
    video.add_argument("--max-frames", type=_positive_int, metavar="N", help="stop after N frames")
    video.add_argument(
        "--encoder-preset",
        default="veryfast",
        choices=_X264_PRESETS,
        metavar="PRESET",
        help="libx264 preset: ultrafast ... veryslow (default veryfast)",
    )
    video.add_argument(
        "--crf", type=_crf, default=18, help="H.264 quality 0-51, lower is better (18)"
    )
    video.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_options(video)
    video.set_defaults(func=run_video)

    download = commands.add_parser(
        "download",
        help="download official weights into the cache and print the path",
        description="Download official weights (verified, atomic) into ~/.cache/mattingkit "
        "or $MATTINGKIT_HOME and print the local path.",
        epilog="example: mattingkit download resnet50",
    )
    download.add_argument(
        "name", help="registry name or alias: resnet50, resnet101, mobilenetv2, ..."
    )
    download.add_argument("--cache-dir", type=Path, help="folder to download into")
    download.set_defaults(func=run_download)

    benchmark = commands.add_parser(
        "benchmark",
        help="GMac and frames per second, beside the paper's Table 3",
        description="Count GMac at HD and 4K and time the model like the paper's speed test "
        "(random weights, inputs on the device, median of repeats).",
    )
    benchmark.add_argument(
        "--backbone", default="mobilenetv2", choices=("resnet50", "resnet101", "mobilenetv2")
    )
    benchmark.add_argument(
        "--size",
        type=_parse_size,
        help="H×W to time, height first (default 1080x1920 on CUDA, 270x480 on CPU)",
    )
    benchmark.add_argument("--device", default="auto")
    benchmark.add_argument("--threads", type=int, help="CPU threads for torch")
    benchmark.add_argument("--warmup", type=int, default=2)
    benchmark.add_argument("--repeats", type=int, default=10)
    benchmark.set_defaults(func=run_benchmark)

    export = commands.add_parser(
        "export",
        help="write a web page that mattes a webcam in the browser, without Python",
        description="Write a self-contained static folder (page, onnxruntime-web, the model "
        "with fp16 weights) that mattes a webcam live in any modern browser (WebGPU, or "
        "WebAssembly where there is none). Serve it over http(s); nothing runs on the server.",
        epilog="example: mattingkit export --web live-matting && "
        "python -m http.server -d live-matting",
    )
    export.add_argument(
        "--web", required=True, metavar="DIR", help="folder to write (new, or empty)"
    )
    export.add_argument(
        "--weights",
        help="registry name or weights file (default: the shipped model); named weights must "
        "be downloaded or downloadable",
    )
    export.add_argument(
        "--precision",
        choices=("fp16", "fp32"),
        default="fp16",
        help="how the weights are stored: fp16 (default, half the download; computed in fp32) "
        "or fp32",
    )
    export.add_argument(
        "--overwrite", action="store_true", help="replace DIR if it exists and is not empty"
    )
    export.set_defaults(func=run_export)
    return parser


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    print(f"mattingkit: warning: {command_line_message(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 failed, 2 bad usage, 130 Ctrl-C)."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            status = args.func(args)
        except KeyboardInterrupt:
            print("mattingkit: interrupted; no output was written", file=sys.stderr)
            return 130
        except Exception as error:  # noqa: BLE001 -- one line for the user, traceback with --debug
            if args.debug:
                raise
            if isinstance(error, DownloadError) and args.command == "download":
                # What the command is for: one line per source tried, then what to do.
                print(f"mattingkit: error: {error}", file=sys.stderr)
            elif isinstance(error, DownloadError) and error.attempts:
                print(f"mattingkit: error: {_download_failed(error)}", file=sys.stderr)
            else:
                print(f"mattingkit: error: {command_line_message(error)}", file=sys.stderr)
            return 1
    if args.debug:
        print(f"({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
