"""How long do the evaluation metrics take on one HD (1920x1080) frame?

Run: ``python benchmarks/metrics_speed.py [--repeats 3] [--height 1080 --width 1920]``

The alpha is a synthetic soft-edged ellipse (a head-and-shoulders stand-in) and the prediction a
blurred, noisy copy of it, so the trimap's unknown band and the connected components look like a
real matte's. Prints the best time of each metric over ``--repeats`` runs, on one CPU thread.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from mattingkit.training import metrics


def synthetic_pair(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """A soft-edged ellipse alpha, a degraded prediction, and two RGB foregrounds in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    r = np.hypot((yy - height * 0.7) / (height * 0.45), (xx - width * 0.5) / (width * 0.18))
    true = np.clip((1.05 - r) / 0.1, 0, 1).astype(np.float32)
    pred = cv2.GaussianBlur(true, (0, 0), 3) + rng.normal(0, 0.02, true.shape).astype(np.float32)
    pred = np.clip(pred, 0, 1)
    true_fgr = rng.random((3, height, width), dtype=np.float32)
    pred_fgr = np.clip(true_fgr + rng.normal(0, 0.03, true_fgr.shape), 0, 1)
    return pred, true, pred_fgr, true_fgr


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)

    pred, true, pred_fgr, true_fgr = synthetic_pair(args.height, args.width)
    trimap = metrics.trimap_from_alpha(true)
    cases = {
        "trimap_from_alpha": lambda: metrics.trimap_from_alpha(true),
        "sad": lambda: metrics.sad(pred, true, trimap),
        "mse": lambda: metrics.mse(pred, true, trimap),
        "grad": lambda: metrics.grad(pred, true, trimap),
        "conn": lambda: metrics.conn(pred, true, trimap),
        "foreground_mse": lambda: metrics.foreground_mse(pred_fgr, true_fgr, true, trimap),
        "evaluate (all, auto trimap)": lambda: metrics.evaluate(pred, true, pred_fgr, true_fgr),
    }
    print(f"{args.width}x{args.height}, unknown pixels: {(trimap == 128).sum()}, 1 thread")
    for name, fn in cases.items():
        print(f"{name:30s} {best_time(fn, args.repeats) * 1000:8.1f} ms")
    print("results (paper units):")
    for key, value in metrics.to_paper_units(
        metrics.evaluate(pred, true, pred_fgr, true_fgr)
    ).items():
        print(f"  {key:16s} {value:.4g}")


if __name__ == "__main__":
    main()
