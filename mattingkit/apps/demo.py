"""The offline demo: matte one frame with its clean plate and write the results.

``python -m mattingkit.apps.demo`` mattes the bundled sample (a synthetic portrait with exact
ground truth) and prints how close the prediction is; ``--src``/``--bgr`` matte your own
photo pair instead. It writes five files (:data:`OUTPUTS`): the alpha matte, the foreground,
composites on green and on the blurred plate, and an RGBA cut-out. Weights: the official
release when it can be downloaded, otherwise mattingkit's own shipped MobileNetV2 (the demo
says which one it used, and warns about its quality).

Running it again works: the demo records what it wrote in ``demo.json`` (a SHA-256 per
file) and replaces only its own earlier outputs that are unchanged. If a file there was
changed or made by someone else, it is kept: the default folder then moves on to the next
free ``outputs/demo-2``, ``-3``, ...; a folder named with ``--out`` is refused unless
``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from mattingkit.outputs import check_writable, command_line_message
from mattingkit.weights.download import DownloadError
from mattingkit.weights.names import (
    SHIPPED_LABEL,
    check_name_or_file,
    is_shipped,
    shipped_quality_warning,
)

OUTPUTS = ("pha.png", "fgr.png", "composite_green.png", "composite_blurred_plate.png", "rgba.png")
#: What the demo wrote, so that a second run can tell its own files from yours.
MANIFEST = "demo.json"
DEFAULT_OUT = Path("outputs/demo")
#: Without ``--weights``: the official MobileNetV2, or the shipped model when offline.
DEFAULT_WEIGHTS = "mobilenetv2"
GREEN = (120 / 255, 255 / 255, 155 / 255)  # the official demos' green screen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mattingkit.apps.demo", description=__doc__)
    parser.add_argument(
        "--src", type=Path, help="a frame with the subject (default: bundled sample)"
    )
    parser.add_argument("--bgr", type=Path, help="the clean plate: same view, no subject")
    parser.add_argument(
        "--out", type=Path, help=f"output folder (default: {DEFAULT_OUT}, or the next free one)"
    )
    parser.add_argument(
        "--weights",
        help="registry name (resnet50, resnet101, mobilenetv2, mattingkit) or a local file. "
        "Default: the official MobileNetV2, or mattingkit's shipped model when it cannot be "
        "downloaded; weights you name that cannot be downloaded are an error unless "
        "--allow-fallback is given (as with the mattingkit command)",
    )
    parser.add_argument(
        "--allow-fallback",
        action="store_true",
        help="when the named official weights cannot be downloaded, use the shipped model",
    )
    parser.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs, even changed ones"
    )
    args = parser.parse_args(argv)
    if (args.src is None) != (args.bgr is None):
        parser.error("give both --src and --bgr (the frame and its clean plate), or neither")
    return args


# --------------------------------------------------------------------------------------
# Which folder: the demo's own earlier outputs are replaced, nothing else is
# --------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _recorded(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` of what the demo wrote into ``folder`` (empty if unknown)."""
    try:
        record = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in record.get("files", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def not_ours(folder: Path) -> list[str]:
    """The demo's output names in ``folder`` that hold something the demo did not write."""
    recorded = _recorded(folder)
    foreign = []
    for name in OUTPUTS:
        path = folder / name
        if path.exists() and (not path.is_file() or recorded.get(name) != _sha256(path)):
            foreign.append(name)
    if (folder / MANIFEST).exists() and not recorded:
        foreign.append(MANIFEST)  # a file of that name that is not the demo's record
    return foreign


def choose_folder(out: Path | None, overwrite: bool) -> tuple[Path, str | None]:
    """The folder to write to, and a line explaining a move to another folder (or None).

    Raises ``FileExistsError`` for a folder named with ``--out`` that holds files the demo
    did not write (without ``--overwrite``).
    """
    if out is not None:
        foreign = [] if overwrite else not_ours(out)
        if foreign:
            raise FileExistsError(
                f"{out}/ holds files this demo did not write or that changed since "
                f"({', '.join(foreign)}); pass --overwrite to replace them or --out to choose "
                "another folder"
            )
        return out, None
    if overwrite or not not_ours(DEFAULT_OUT):
        return DEFAULT_OUT, None
    foreign = not_ours(DEFAULT_OUT)
    number = 2
    while not_ours(candidate := DEFAULT_OUT.with_name(f"{DEFAULT_OUT.name}-{number}")):
        number += 1
    return candidate, (
        f"{DEFAULT_OUT}/ holds files this demo did not write or that changed since "
        f"({', '.join(foreign)}); they are kept, and this run writes to {candidate}/"
    )


def _write_record(folder: Path, files: dict[str, str], details: dict[str, Any]) -> None:
    from mattingkit.io import atomic_write

    record = {"written_by": "python -m mattingkit.apps.demo", **details, "files": files}
    with atomic_write(folder / MANIFEST, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")


# --------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        for path in (args.src, args.bgr):  # checked before the slow imports
            if path is not None and not path.is_file():
                raise FileNotFoundError(f"image not found: {path}")
        if args.weights is not None:
            check_name_or_file(args.weights)
        out, moved = choose_folder(args.out, args.overwrite)
        check_writable([out / OUTPUTS[0]])  # before the model, not after it
        return _run(args, out, moved)
    except (OSError, ValueError, KeyError, DownloadError) as error:
        if isinstance(error, DownloadError) and error.filename:
            text = f"{error.one_line()}, or pass --allow-fallback to use the shipped model"
        else:
            text = command_line_message(error)
        print(f"python -m mattingkit.apps.demo: error: {text}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, out: Path, moved: str | None) -> int:
    import warnings

    import torch

    from mattingkit.apps.compositing import fit_plate
    from mattingkit.core import matting
    from mattingkit.core.paper import official_settings
    from mattingkit.data.synthetic import load_sample
    from mattingkit.io import read_image, write_image
    from mattingkit.runtime import pick_device
    from mattingkit.training import metrics
    from mattingkit.weights.pretrained import OfflineFallbackWarning, load_pretrained

    if moved:
        print(f"⚠ {moved}")
    device = torch.device(args.device) if args.device else pick_device()
    truth = None
    if args.src is None:
        truth = load_sample("portrait")
        src, bgr = truth.src, truth.bgr
        print("Input: the bundled sample 'portrait' (synthetic, with exact ground truth)")
    else:
        src = read_image(args.src)
        height, width = src.shape[-2:]
        with warnings.catch_warnings(record=True) as caught:  # a plate of another size
            warnings.simplefilter("always")
            bgr = fit_plate(read_image(args.bgr), height, width, target=f"the frame {args.src}")
        for warning in caught:
            print(f"⚠ {warning.message}")
        print(f"Input: {args.src} with plate {args.bgr}")
    height, width = src.shape[-2:]

    with warnings.catch_warnings(record=True) as caught:  # the fallback notice, as one line
        warnings.simplefilter("always")
        model = load_pretrained(
            args.weights or DEFAULT_WEIGHTS,
            device=device,
            allow_fallback=args.weights is None or args.allow_fallback,
            **official_settings(height, width),
        )
    fallback = any(issubclass(w.category, OfflineFallbackWarning) for w in caught)
    for warning in caught:
        print(f"⚠ {warning.message}")  # the fallback notice says the quality is lower
    shipped = fallback or is_shipped(args.weights)
    src_b, bgr_b = src.unsqueeze(0).to(device), bgr.unsqueeze(0).to(device)
    with torch.inference_mode():
        model(src_b, bgr_b)  # warm-up, so the timing below is the model, not the first call
        start = time.perf_counter()
        result = model(src_b, bgr_b)
        seconds = time.perf_counter() - start
    pha, fgr = result[0][0].cpu(), result[1][0].cpu()
    label = SHIPPED_LABEL if shipped else args.weights or DEFAULT_WEIGHTS
    print(f"Matted {height}×{width} (H×W) with {label} on {device} in {seconds * 1000:.0f} ms")
    if shipped and not fallback:
        print(f"⚠ {shipped_quality_warning()}")

    images = (
        pha,
        fgr,
        matting.composite_on_color(fgr, pha, GREEN),
        matting.composite_on_blurred_plate(fgr, pha, bgr),
        torch.cat([fgr * (pha > 0), pha]),  # RGBA cut-out, as the official com.png
    )
    details = {"input": f"{args.src} + {args.bgr}" if truth is None else "the sample portrait"}
    files = {} if args.overwrite else _recorded(out)
    for name, image in zip(OUTPUTS, images):
        write_image(out / name, image, overwrite=True)  # choose_folder made sure it may
        files[name] = _sha256(out / name)
        _write_record(out, files, details)  # after each file: an interrupted run stays ours
    print(f"Wrote {', '.join(OUTPUTS)} to {out}/")

    if truth is not None:
        scores = metrics.to_paper_units(
            metrics.evaluate(pha, truth.pha, pred_fgr=fgr, true_fgr=truth.fgr)
        )
        print(
            "Against the ground truth (paper units, trimap region): "
            f"SAD {scores['sad']:.2f}, MSE(x1e3) {scores['mse']:.2f}, Grad {scores['grad']:.0f}, "
            f"Conn {scores['conn']:.0f}, FG MSE(x1e3) {scores['fg_mse']:.2f}"
        )
    print("Next: jupyter lab notebooks/01_matting_equation.ipynb")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
