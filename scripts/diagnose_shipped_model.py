"""Diagnose the shipped model: how its holes grow with resolution, and why refinement hurts.

Two measurements for the issue about ``assets/weights/mattingkit_mobilenetv2_fp16.pth``:

1. ``sweep`` (the scale sweep). The same held-out synthetic subjects (seeds of
   :func:`mattingkit.training.loop.validation_samples`), rendered once at the largest size and
   area-downsampled to every smaller one, so that only the resolution changes; and the real pair
   of ``../shared/data/real_pair`` at 1/2, 1 and 2 x HD. Each size runs with several
   ``backbone_scale`` choices: ``paper`` (the paper's rule: 1/4 up to 2048 px, 1/8 above),
   ``baseN`` (the scale that gives the base network an input whose short side is N px; the
   shipped base only ever saw 128 x 128) and ``preset`` (``paper.fixed_base_settings``, 192 px),
   and each refine mode (none, sampling, full).
   Metrics: SAD (/1000) and MSE x 10^3 in the paper's trimap band, and *holes* (the share of
   the truly opaque subject predicted below 0.5), with difference keying as the baseline.
   The real pair has no ground truth: it gets the foreground area (alpha >= 0.5) and *inner
   holes* (the share of the filled silhouette predicted below 0.5).

2. ``refiner`` (the refiner diagnostic). On a small fixed synthetic set, the refiner alone is
   fitted (the base frozen, its outputs computed once), then scored in eval mode against the
   coarse output ("none"). Also: what the BatchNorm statistics do on their own, measured the
   way ``scripts/train_shipped_model.py`` measures them before export (the inference
   selection: only the worst 3.9 % of patches) and the way the training saw them
   (:func:`mattingkit.training.loop.training_selection`: 7.7 %, half at random).

    python scripts/diagnose_shipped_model.py sweep --count 6
    python scripts/diagnose_shipped_model.py refiner
    python scripts/diagnose_shipped_model.py all
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mattingkit.core.losses import alpha_gradient_l1, alpha_l1, foreground_l1  # noqa: E402
from mattingkit.core.matting import difference_key  # noqa: E402
from mattingkit.core.model import split_outputs  # noqa: E402
from mattingkit.core.paper import (  # noqa: E402
    REFINE_SHARE,
    capped_settings,
    fixed_base_settings,
    official_settings,
    refine_pixels_for,
)
from mattingkit.data.synthetic import make_sample  # noqa: E402
from mattingkit.training import metrics  # noqa: E402
from mattingkit.training.loop import (  # noqa: E402
    VALIDATION_SEED,
    TrainConfig,
    calibration_batches,
    recalibrate_batchnorm,
    training_selection,
)
from mattingkit.weights.pretrained import load_pretrained  # noqa: E402

WEIGHTS = ROOT / "assets" / "weights" / "mattingkit_mobilenetv2_fp16.pth"
REAL_PAIR = ROOT.parent / "shared" / "data" / "real_pair"
MODES = ("none", "sampling", "full")
HD = (1080, 1920)


# ------------------------------------------------------------------------------------------------
# Settings
# ------------------------------------------------------------------------------------------------


def backbone_scale(choice: str, height: int, width: int) -> float:
    """``paper``: the paper's rule for this frame; ``auto``: what ``Matter(preset="auto")`` uses
    for the shipped model (:func:`capped_settings`); ``preset``: :func:`fixed_base_settings` (base
    input short side :data:`mattingkit.core.paper.SHIPPED_BASE_SIDE` px); ``baseN``: short side N px; or a number."""
    if choice == "paper":
        return float(official_settings(height, width)["backbone_scale"])
    if choice == "preset":
        return float(fixed_base_settings(height, width)["backbone_scale"])
    if choice == "auto":
        return float(capped_settings(height, width)["backbone_scale"])
    if choice.startswith("base"):
        return float(fixed_base_settings(height, width, int(choice[4:]))["backbone_scale"])
    return float(choice)


def set_mode(model: torch.nn.Module, mode: str, height: int, width: int) -> None:
    """A refine mode; "none" is the coarse output upsampled; sampling refines the HD share."""
    model.refine_mode = "sampling" if mode == "none" else mode
    model.refine_sample_pixels = 0 if mode == "none" else refine_pixels_for(height, width)


@torch.no_grad()
def predict(model, src, bgr, scale: str, mode: str) -> torch.Tensor:
    """Alpha ``(1, H, W)`` of ``model`` on one ``(3, H, W)`` pair."""
    height, width = src.shape[-2:]
    model.backbone_scale = backbone_scale(scale, height, width)
    set_mode(model, mode, height, width)
    return model(src[None], bgr[None])[0][0]


# ------------------------------------------------------------------------------------------------
# 1. Scale sweep
# ------------------------------------------------------------------------------------------------


Size = tuple[int, int]  # (height, width)


def parse_size(text: str | int) -> Size:
    """``"512"`` (square) or ``"1920x1080"`` (width x height, as video sizes are written)."""
    if isinstance(text, int) or "x" not in str(text):
        return int(text), int(text)
    width, height = (int(v) for v in str(text).lower().split("x"))
    return height, width


def size_label(size: Size) -> str:
    return f"{size[0]}px" if size[0] == size[1] else f"{size[1]}x{size[0]}"


def heldout_subjects(count: int, sizes: list[Size]) -> dict[Size, list[dict[str, torch.Tensor]]]:
    """The held-out subjects at every size. Square sizes: rendered once at the largest square
    size and area-downsampled, so only the resolution changes; other shapes: rendered at that
    size from the same seeds."""
    squares = [s for s in sizes if s[0] == s[1]]
    largest = max(squares) if squares else None
    out: dict[Size, list[dict[str, torch.Tensor]]] = {s: [] for s in sizes}
    for i in range(count):
        if largest is not None:
            s = make_sample(VALIDATION_SEED + i, size=largest)
            for size in squares:
                sample = {"src": s.src, "bgr": s.bgr, "pha": s.pha}
                if size != largest:
                    sample = {
                        k: F.interpolate(v[None], size=size, mode="area")[0]
                        for k, v in sample.items()
                    }
                out[size].append(sample)
        for size in sizes:
            if size[0] != size[1]:
                s = make_sample(VALIDATION_SEED + i, size=size)
                out[size].append({"src": s.src, "bgr": s.bgr, "pha": s.pha})
    return out


def synthetic_sweep(model, count: int, sizes: list[Size], scales: list[str]) -> list[dict]:
    rows = []
    subjects = heldout_subjects(count, sizes)
    for size in sizes:
        samples = subjects[size]
        methods = [("keying", "-", "-")]
        methods += [("model", scale, mode) for scale in scales for mode in MODES]
        for kind, scale, mode in methods:
            totals = {"sad": 0.0, "mse": 0.0, "holes": 0.0}
            for s in samples:
                if kind == "keying":
                    pha = difference_key(s["src"], s["bgr"], threshold=0.1, softness=0.1)
                else:
                    pha = predict(model, s["src"], s["bgr"], scale, mode)
                band = metrics.trimap_from_alpha(s["pha"])
                totals["sad"] += metrics.sad(pha, s["pha"], band)
                totals["mse"] += metrics.mse(pha, s["pha"], band)
                totals["holes"] += metrics.holes(pha, s["pha"])
            base = "-" if kind == "keying" else backbone_scale(scale, *size) * min(size)
            rows.append(
                {
                    "set": f"synthetic {size_label(size)}",
                    "method": "difference keying" if kind == "keying" else f"{scale} / {mode}",
                    "base_px": base,
                    **{k: v / len(samples) for k, v in totals.items()},
                }
            )
            print(sweep_row(rows[-1]), flush=True)
    return rows


def inner_holes(pha: torch.Tensor) -> tuple[float, float]:
    """Foreground area (alpha >= 0.5) and the share of its filled silhouette below 0.5.

    Measured at HD whatever the input size, so that the closing radius means the same thing.
    """
    pha = F.interpolate(pha[None], size=HD, mode="bilinear", align_corners=False)[0, 0]
    mask = pha.numpy() >= 0.5
    closed = ndimage.binary_closing(mask, structure=np.ones((3, 3)), iterations=7)
    silhouette = ndimage.binary_fill_holes(closed)
    area = float(mask.mean())
    holes = float((~mask[silhouette]).mean()) if silhouette.any() else 0.0
    return area, holes


def real_sweep(model, pair: Path, factors: list[float], scales: list[str]) -> list[dict]:
    from mattingkit.io import read_image

    src_hd, bgr_hd = read_image(pair / "test_fg.jpg"), read_image(pair / "test_bg.jpg")
    rows = []
    for factor in factors:
        size = (int(HD[0] * factor) // 4 * 4, int(HD[1] * factor) // 4 * 4)
        mode_ = "area" if factor < 1 else "bilinear"
        src, bgr = (
            x if factor == 1 else F.interpolate(x[None], size=size, mode=mode_)[0].clamp(0, 1)
            for x in (src_hd, bgr_hd)
        )
        methods = [("keying", "-", "-")]
        methods += [("model", scale, mode) for scale in scales for mode in MODES]
        for kind, scale, mode in methods:
            if kind == "keying":
                pha = difference_key(src, bgr, threshold=0.1, softness=0.1)
            else:
                pha = predict(model, src, bgr, scale, mode)
            area, holes = inner_holes(pha)
            base = "-" if kind == "keying" else backbone_scale(scale, *size) * size[0]
            rows.append(
                {
                    "set": f"real pair {factor:g}x HD ({size[1]}x{size[0]})",
                    "method": "difference keying" if kind == "keying" else f"{scale} / {mode}",
                    "base_px": base,
                    "area": area,
                    "inner_holes": holes,
                }
            )
            print(sweep_row(rows[-1]), flush=True)
    return rows


def sweep_row(r: dict) -> str:
    base = r["base_px"] if isinstance(r["base_px"], str) else f"{r['base_px']:.0f}"
    cells = [r["set"], r["method"], base]
    if "sad" in r:
        cells += [f"{r['sad']:.3f}", f"{r['mse'] * 1e3:.2f}", f"{r['holes']:.2%}"]
    else:
        cells += [f"{r['area']:.2%}", f"{r['inner_holes']:.2%}"]
    return "| " + " | ".join(cells) + " |"


# ------------------------------------------------------------------------------------------------
# 2. Refiner diagnostic
# ------------------------------------------------------------------------------------------------


def fixed_set(count: int, size: int, seed: int = 7) -> dict[str, torch.Tensor]:
    samples = [make_sample((seed, i), size=(size, size)) for i in range(count)]
    return {k: torch.stack([getattr(s, k) for s in samples]) for k in ("src", "bgr", "fgr", "pha")}


@torch.no_grad()
def coarse_outputs(model, batch) -> tuple[torch.Tensor, ...]:
    """The frozen base network's outputs (eval mode): what the refiner sees, computed once."""
    model.eval()
    src_sm, bgr_sm = model.downsample(batch["src"]), model.downsample(batch["bgr"])
    x = model.run_network(torch.cat([src_sm, bgr_sm], dim=1))
    pha_sm, _, err_sm, hid_sm = split_outputs(x, src_sm)
    return pha_sm, x[:, 1:4], err_sm, hid_sm


def refiner_alpha(refiner, batch, coarse, mode: str, train: bool = False, pixels: int = 0):
    """The refiner's alpha and foreground (clamped) on the whole batch; "none" refines no
    patch; sampling refines ``pixels`` (default: the HD share)."""
    height, width = batch["src"].shape[-2:]
    refiner.train(train)
    refiner.mode = "sampling" if mode == "none" else mode
    pixels = pixels or refine_pixels_for(height, width)
    refiner.sample_pixels = 0 if mode == "none" else pixels
    pha, residual, _ = refiner(batch["src"], batch["bgr"], *coarse)
    return pha.clamp(0, 1), (residual + batch["src"]).clamp(0, 1)


def band_mse(pha: torch.Tensor, true: torch.Tensor) -> float:
    """Mean over images of the MSE x 10^3 in the trimap band."""
    values = [metrics.mse(p, t, metrics.trimap_from_alpha(t)) for p, t in zip(pha, true)]
    return 1e3 * float(np.mean(values))


def score_modes(refiner, batch, coarse) -> dict[str, float]:
    with torch.no_grad():
        return {
            m: band_mse(refiner_alpha(refiner, batch, coarse, m)[0], batch["pha"]) for m in MODES
        }


def fit_refiner(
    refiner, batch, coarse, steps: int, lr: float = 3e-4, share: float = 2 * REFINE_SHARE
) -> None:
    """Fit the refiner alone on ``batch``: the refine stage's full-resolution loss terms,
    ``share`` of the pixels refined, half of the patches at random (as the training)."""
    height, width = batch["src"].shape[-2:]
    optimizer = torch.optim.Adam(refiner.parameters(), lr=lr)
    refiner.train_random_share = 0.5
    for _ in range(steps):
        pixels = refine_pixels_for(height, width, share=share, minimum=256)
        pha, fgr = refiner_alpha(refiner, batch, coarse, "sampling", train=True, pixels=pixels)
        loss = (
            alpha_l1(pha, batch["pha"])
            + alpha_gradient_l1(pha, batch["pha"])
            + foreground_l1(fgr, batch["fgr"], batch["pha"])
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    refiner.train_random_share = 0.0
    refiner.eval()


def refiner_diagnostic(weights: Path, count: int, size: int, steps: int, bn_batches: int) -> None:
    model = load_pretrained(weights)
    batch = fixed_set(count, size)
    coarse = coarse_outputs(model, batch)
    refiner = model.refiner
    print(f"\nRefiner diagnostic: {count} fixed samples at {size}px, base frozen (eval mode)")
    print("MSE x 10^3 in the trimap band, on the set the refiner is fitted to\n")
    print("| refiner | none | sampling | full |\n|---|---|---|---|")

    def line(label: str) -> None:
        s = score_modes(refiner, batch, coarse)
        print(f"| {label} | {s['none']:.2f} | {s['sampling']:.2f} | {s['full']:.2f} |", flush=True)

    line("shipped")
    # BatchNorm statistics alone (no weight changes): the refiner's statistics measured on this
    # set with the training selection (7.7 % of the patches, half at random).
    shipped = {k: v.clone() for k, v in refiner.state_dict().items()}
    norms = [m for m in refiner.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    refiner.train_random_share = 0.5
    with torch.no_grad():
        for _ in range(8):
            pixels = refine_pixels_for(size, size, share=2 * REFINE_SHARE, minimum=256)
            refiner_alpha(refiner, batch, coarse, "sampling", train=True, pixels=pixels)
    for norm in norms:
        norm.momentum = 0.1
    refiner.train_random_share = 0.0
    line("shipped weights, BN statistics re-measured (training selection)")
    refiner.load_state_dict(shipped)
    started = time.perf_counter()
    fit_refiner(refiner, batch, coarse, steps)
    line(f"fitted {steps} steps (Adam 3e-4)")
    print(f"(fit: {time.perf_counter() - started:.0f} s)")

    if bn_batches:
        print(f"\nShipped weights, all BatchNorm statistics re-measured on {bn_batches} training")
        print("batches (512 px, as train_shipped_model.py), scored on the same fixed set:\n")
        config = TrainConfig(
            stage="refine",
            size=512,
            batch_size=4,
            refine_sample_fraction=2 * REFINE_SHARE,
            refine_random_share=0.5,
            camera_effects=True,
            exact_plate_share=0.25,
            bn_recalibration=bn_batches,
            seed=12345,
            threads=torch.get_num_threads(),
        )
        print("| BN statistics measured with | none | sampling | full |\n|---|---|---|---|")
        for label, selection in (
            ("inference selection (train_shipped_model.py)", False),
            ("training selection (training_selection)", True),
        ):
            model = load_pretrained(weights)
            model.refine_sample_pixels = refine_pixels_for(512, 512, minimum=16)  # as the script
            if selection:
                with training_selection(model, config):
                    recalibrate_batchnorm(model, calibration_batches(config))
            else:
                recalibrate_batchnorm(model, calibration_batches(config))
            s = score_modes(model.refiner, batch, coarse_outputs(model, batch))
            print(f"| {label} | {s['none']:.2f} | {s['sampling']:.2f} | {s['full']:.2f} |")


# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("sweep", "refiner", "all"))
    parser.add_argument("--weights", default=str(WEIGHTS), help="model to diagnose")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--count", type=int, default=6, help="held-out synthetic subjects")
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=["512", "1024", "1920x1080", "2048"],
        help="synthetic sizes: N (N x N px) or WxH",
    )
    parser.add_argument(
        "--scales",
        nargs="+",
        default=["paper", "base128", "preset", "base256"],
        help="backbone_scale choices: paper, preset, baseN (base short side N px) or a number",
    )
    parser.add_argument(
        "--factors", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="real pair: x HD"
    )
    parser.add_argument("--real-pair", default=str(REAL_PAIR), help="folder of the real pair")
    parser.add_argument("--no-real", action="store_true", help="skip the real pair")
    parser.add_argument("--fit-count", type=int, default=4, help="refiner diagnostic: samples")
    parser.add_argument("--fit-size", type=int, default=256, help="refiner diagnostic: size")
    parser.add_argument("--fit-steps", type=int, default=200, help="refiner diagnostic: steps")
    parser.add_argument(
        "--bn-batches", type=int, default=16, help="refiner diagnostic: recalibration batches"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.what in ("sweep", "all"):
        model = load_pretrained(args.weights)
        print("| set | backbone_scale / refine | base short side px | SAD | MSE x 10^3 | holes |")
        print("|---|---|---|---|---|---|")
        synthetic_sweep(model, args.count, [parse_size(v) for v in args.sizes], args.scales)
        pair = Path(args.real_pair)
        if not args.no_real and (pair / "test_fg.jpg").is_file():
            print("\n| set | backbone_scale / refine | base short side px | area | inner holes |")
            print("|---|---|---|---|---|")
            real_sweep(model, pair, args.factors, args.scales)
    if args.what in ("refiner", "all"):
        refiner_diagnostic(
            Path(args.weights), args.fit_count, args.fit_size, args.fit_steps, args.bn_batches
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
