"""Where does a training step of the shipped model's recipe spend its time?

Run: ``python benchmarks/training_step.py [--steps 6] [--threads 2]``

For each stage of ``scripts/train_shipped_model.py`` (base; refine; multiscale at its smallest and
largest base input; wide at its largest; the refiner alone with the base frozen) one real step is
split into:

* ``draw``: drawing the batch's synthetic samples (``SyntheticMattingDataset``): in the recipe
  a second process does this while the model trains (``num_workers=1``), so it costs the step
  nothing as long as it is shorter than the rest;
* ``augment``: the official batch augmentations and camera effects (``_make_batch``), in the
  training process;
* ``forward`` (with the loss), ``backward`` and ``optimizer`` (clipping included).

Prints the median of ``--steps`` steps after one warm-up step, in milliseconds and as shares of
the step, with the CPU's flags (bfloat16 autocast is timed only on a CPU with native bf16:
AVX-512 BF16 or AMX). Timings depend on the machine and its load: compare rows of one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mattingkit.apps.inference import cpu_has_native_bf16  # noqa: E402
from mattingkit.training import loop  # noqa: E402

PARTS = ("draw", "augment", "forward", "backward", "optimizer")


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])  # fmt: skip
    wanted = [f for f in flags if f.startswith(("avx", "amx"))]
    return " ".join(sorted(wanted)) or "no AVX"


def stage_configs(small: bool = False) -> dict[str, loop.TrainConfig]:
    """The recipe's stages as TrainConfigs (the script's own ``stage_config``); ``small``: at
    a quarter of the crop size and batch 2, to check the script itself quickly."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "train_shipped_model", ROOT / "scripts" / "train_shipped_model.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = Path("/nonexistent")  # never written: only the settings are used
    configs = {
        name: script.stage_config(name, script.FULL[name], out, 0, None)
        for name in ("base", "refine", "multiscale", "wide")
    }
    if small:
        configs = {
            name: dataclasses.replace(c, size=c.size // 4, batch_size=2)
            for name, c in configs.items()
        }
    multi = configs.pop("multiscale")
    sides = loop.base_sides(multi)
    for side in (sides[0], sides[-1]):
        configs[f"multiscale, base {side} px"] = dataclasses.replace(
            multi, backbone_scale=side / multi.size, backbone_scale_max=0.0
        )
    wide = configs.pop("wide")
    side = loop.base_sides(wide)[-1]
    configs[f"wide, base {side} px"] = dataclasses.replace(
        wide, backbone_scale=side / wide.size, backbone_scale_max=0.0
    )
    configs["refiner alone (base frozen)"] = dataclasses.replace(
        configs["refine"], freeze_base=True
    )
    return configs


def time_steps(config: loop.TrainConfig, steps: int, bf16: bool) -> dict[str, float]:
    """Median milliseconds of each part of a step."""
    torch.manual_seed(0)
    model = loop.build_model(config)
    loop.set_train_mode(model, loop.frozen_parts(config))
    optimizer = loop._build_optimizer(model, config)
    dataset = loop._training_dataset(dataclasses.replace(config, steps=steps + 1))
    generator = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {part: [] for part in PARTS}
    for step in range(steps + 1):
        t0 = time.perf_counter()
        items = [dataset[step * config.batch_size + i] for i in range(config.batch_size)]
        batch = {k: torch.stack([item[k] for item in items]) for k in items[0]}
        t1 = time.perf_counter()
        src, bgr, true_fgr, true_pha = loop._make_batch(batch, config, generator)
        t2 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output = model(src, bgr)
        loss, _ = loop._loss(config.stage, output, true_pha, true_fgr)
        t3 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        t5 = time.perf_counter()
        if step:  # the first step warms up allocators and kernels
            for part, (a, b) in zip(PARTS, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
                times[part].append(1000 * (b - a))
    return {part: statistics.median(values) for part, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per stage")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--small", action="store_true", help="1/4 crops, batch 2 (a quick check)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    bf16 = cpu_has_native_bf16()
    print(f"CPU flags: {cpu_flags()}; torch {torch.__version__}, {args.threads} thread(s)")
    print(f"native bf16: {'yes: also timed under bf16 autocast' if bf16 else 'no (fp32 only)'}")
    header = (
        "| stage | batch | " + " | ".join(f"{p} ms" for p in PARTS) + " | step ms | model share |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, config in stage_configs(args.small).items():
        for use_bf16 in (False, True) if bf16 else (False,):
            t = time_steps(config, args.steps, use_bf16)
            model_ms = t["forward"] + t["backward"] + t["optimizer"]
            # In the recipe the draw runs in a worker process: the step is the rest of it.
            step_ms = t["augment"] + model_ms
            label = f"{name}{', bf16' if use_bf16 else ''}"
            cells = " | ".join(f"{t[p]:.0f}" for p in PARTS)
            print(
                f"| {label} | {config.batch_size}x{config.size}px | {cells} | {step_ms:.0f} | "
                f"{model_ms / step_ms:.0%} |",
                flush=True,
            )
    print("step ms = augment + forward + backward + optimizer (the draw runs in a worker).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
