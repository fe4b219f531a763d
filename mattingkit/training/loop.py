"""Chapter 06. Training Background Matting V2 on a subset: the two-stage schedule of the paper.

The official code trains in two stages, and so does this module:

1. ``stage="base"`` trains :class:`~mattingkit.MattingBase` alone at a low resolution
   (``train_base.py``);
2. ``stage="refine"`` starts a :class:`~mattingkit.MattingRefine` from the base weights
   (``backbone``, ``aspp`` and ``decoder`` are shared) and trains everything jointly, the refiner
   looking at full-resolution patches (``train_refine.py``).

One :class:`TrainConfig` describes a run, in a notebook (``train(TrainConfig(...))``) and on the
command line (``python -m mattingkit.train --stage base ...``: every field is a flag). A run
writes under ``config.out``:

* ``checkpoints/step-0000100.pth``: model, optimizer, LR schedule, grad scaler, step, RNG states,
  config and history, written atomically (:mod:`mattingkit.training.checkpoint`);
* ``model.pth``: the final fp32 ``state_dict`` (load it with ``torch.load(..., weights_only=True)``);
* ``history.json``: the logged losses and validation metrics.

:func:`train` reads like its loop: :func:`_start_or_resume` builds (or restores) the model,
optimizer and data, :func:`_run_steps` is the loop, :func:`_finish` writes the results.

Reproducibility: every random choice of a step (which samples, their augmentation, dropout) is
seeded from ``(seed, step, rank)``, so an interrupted run resumed with ``resume=True`` continues
exactly where an uninterrupted run would be (bit for bit on the same machine and thread count).

Several processes: launch with ``torchrun --nproc_per_node=N -m mattingkit.train ...``; each
process reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, joins a process group (NCCL on CUDA, Gloo on
CPU), sees its own shard of each batch (``batch_size`` is the global batch) and gradients are
averaged by ``DistributedDataParallel``. Only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from mattingkit.core.backbones import BACKBONES
from mattingkit.core.losses import base_loss_from_output, refine_loss
from mattingkit.core.model import MattingBase, MattingRefine
from mattingkit.core.paper import REFINE_SHARE, refine_pixels_for
from mattingkit.data import datasets as data
from mattingkit.data.augment import augment_batch, camera_effects
from mattingkit.data.synthetic import SyntheticMattingDataset, make_sample
from mattingkit.io import atomic_write
from mattingkit.runtime import pick_device
from mattingkit.training import metrics as metric_functions
from mattingkit.training.checkpoint import (
    checkpoint_dir,
    export_weights,
    latest_checkpoint,
    load_checkpoint,
    load_initial_weights,
    param_checksum,
    remove_stale_temp_files,
    restore_rng_states,
    rng_states,
    save_checkpoint,
)

__all__ = [
    "OFFICIAL_LEARNING_RATES",
    "TrainConfig",
    "TrainResult",
    "train",
    "training_step",
    "per_process_batch",
    "recalibrate_batchnorm",
    "calibration_batches",
    "training_selection",
    "evaluate",
    "load_checkpoint",
    "latest_checkpoint",
    "export_weights",
    "build_model",
    "main",
]
# The checkpoint functions (mattingkit.training.checkpoint) are re-exported: chapter 06 imports
# what it trains with from here. Progress reaches a notebook through ``callbacks``.


STAGES = ("base", "refine")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")

#: Learning rates of the official ``train_base.py`` / ``train_refine.py`` (Adam), per submodule.
OFFICIAL_LEARNING_RATES: dict[str, dict[str, float]] = {
    "base": {"backbone": 1e-4, "aspp": 5e-4, "decoder": 5e-4},
    "refine": {"backbone": 5e-5, "aspp": 5e-5, "decoder": 1e-4, "refiner": 3e-4},
}


#: Held-out validation samples use seeds far from any training seed.
VALIDATION_SEED = 900_000_000


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrainConfig:
    """Chapter 06. Everything that defines a training run (also the CLI flags, ``_`` -> ``-``).

    The defaults are a tiny CPU run. ``lr_scale`` multiplies every official learning rate: short
    runs from scratch on a CPU learn faster with a larger rate (e.g. 2-4) than the official one,
    which was tuned for days of GPU training from ImageNet/DeepLabV3 weights.
    """

    stage: str = field(
        default="base", metadata=_help("'base' (MattingBase) or 'refine' (MattingRefine)")
    )
    backbone: str = field(
        default="mobilenetv2", metadata=_help("resnet50, resnet101 or mobilenetv2")
    )
    data: str = field(
        default="synthetic",
        metadata=_help(
            "'synthetic' (offline generator) or a dataset spec 'KIND:PATH' with KIND "
            "videomatte240k or photomatte85 (real foregrounds; also give --backgrounds)"
        ),
    )
    backgrounds: str | None = field(
        default=None, metadata=_help("folder of background images (real data)")
    )
    steps: int = field(default=100, metadata=_help("total optimisation steps of this stage"))
    batch_size: int = field(default=4, metadata=_help("global batch size (split over processes)"))
    size: int = field(
        default=128,
        metadata=_help(
            "square training crop size in pixels: a multiple of 4, at least 32; the refine "
            "stage needs at least 32 / --backbone-scale (128 at the default 0.25)"
        ),
    )
    out: str = field(default="runs/train", metadata=_help("output folder"))
    resume: bool = field(
        default=False, metadata=_help("continue from the newest checkpoint in --out")
    )
    extend: bool = field(
        default=False,
        metadata=_help(
            "with --resume: accept a --steps other than the checkpoint's; the learning-rate "
            "schedule is recomputed for the new total from the checkpoint's step on"
        ),
    )
    init: str | None = field(
        default=None,
        metadata=_help("initial weights (a checkpoint or state_dict; refine: the base run)"),
    )
    val_every: int = field(
        default=50, metadata=_help("validate every N steps (0: only at the end)")
    )
    val_samples: int = field(default=8, metadata=_help("held-out synthetic validation samples"))
    checkpoint_every: int = field(
        default=50, metadata=_help("checkpoint every N steps (and at the end)")
    )
    keep_checkpoints: int = field(default=2, metadata=_help("how many recent checkpoints to keep"))
    seed: int = field(default=0, metadata=_help("seed of every random choice"))
    optimizer: str = field(default="adam", metadata=_help("'adam' (official) or 'adamw'"))
    lr_scale: float = field(
        default=1.0, metadata=_help("multiplier of the official learning rates")
    )
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay"))
    schedule: str = field(
        default="constant", metadata=_help("'constant' (official) or 'cosine' decay")
    )
    warmup_steps: int = field(default=0, metadata=_help("linear learning-rate warm-up steps"))
    clip_grad_norm: float = field(default=0.0, metadata=_help("clip the gradient norm (0: off)"))
    augment: bool = field(
        default=True, metadata=_help("official batch augmentations (mattingkit.data.datasets)")
    )
    camera_effects: bool = field(
        default=False,
        metadata=_help(
            "add what real cameras do on top of the official augmentations: floor shadows, "
            "exposure/white-balance shifts, shot noise, JPEG (mattingkit.data.augment.camera_effects)"
        ),
    )
    exact_plate_share: float = field(
        default=0.0,
        metadata=_help(
            "share of samples given an exact plate (no augmentation), so the model also learns "
            "to use a perfect plate, not only to distrust a drifting one"
        ),
    )
    train_samples: int = field(
        default=0, metadata=_help("synthetic training pool size (0: a fresh sample for every slot)")
    )
    backbone_scale: float = field(default=0.25, metadata=_help("refine stage: base network scale"))
    backbone_scale_max: float = field(
        default=0.0,
        metadata=_help(
            "refine stage: if above --backbone-scale, each step draws the base network's input "
            "size between the two (in multiples of 32 px), so the base network learns the "
            "subject sizes it meets at HD, 4K and webcam sizes, not one size only (0: fixed)"
        ),
    )
    refine_sample_fraction: float = field(
        default=REFINE_SHARE,
        metadata=_help("refine stage: share of crop pixels refined (default: the HD share, 3.9%%)"),
    )
    refine_random_share: float = field(
        default=0.5,
        metadata=_help(
            "refine stage: share of the refined patches drawn at random instead of by error, "
            "so the refiner also learns to leave easy patches alone (0: the official code)"
        ),
    )
    freeze_base: bool = field(
        default=False,
        metadata=_help(
            "refine stage: train the refiner alone; the backbone, ASPP and decoder keep their "
            "weights and BatchNorm statistics (eval mode), e.g. to fine-tune a refiner on a "
            "finished base"
        ),
    )
    device: str = field(
        default="auto", metadata=_help("'auto' (CUDA, MPS, CPU), 'cpu', 'cuda', ...")
    )
    amp: bool = field(default=True, metadata=_help("mixed precision (only on CUDA)"))
    threads: int = field(default=0, metadata=_help("torch CPU threads (0: leave torch's default)"))
    num_workers: int = field(default=0, metadata=_help("DataLoader worker processes"))
    log_every: int = field(default=10, metadata=_help("record the loss every N steps"))
    progress: bool = field(default=True, metadata=_help("show a tqdm progress bar"))
    bn_recalibration: int = field(
        default=8,
        metadata=_help(
            "batches that re-estimate the BatchNorm statistics of the final weights (0: off)"
        ),
    )
    param_checksum: bool = field(
        default=False, metadata=_help("each process writes a checksum of its weights (DDP check)")
    )

    def validate(self) -> None:
        """Raise ``ValueError`` naming the option and the value when a setting cannot work."""
        if self.stage not in STAGES:
            raise ValueError(f"--stage must be one of {', '.join(STAGES)}; got {self.stage!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"--backbone must be one of {', '.join(BACKBONES)}; got {self.backbone!r}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"--optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"--schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}"
            )
        for name in ("steps", "batch_size", "size", "val_samples", "log_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be at least 1; got {getattr(self, name)}"
                )
        for name in (
            "val_every", "checkpoint_every", "warmup_steps", "threads", "num_workers", "train_samples",
            "bn_recalibration",
        ):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be >= 0; got {getattr(self, name)}"
                )
        if self.size % 4 != 0 or self.size < 32:
            raise ValueError(
                f"--size must be a multiple of 4 and at least 32 (the refiner works on 4x4 patches "
                f"and the backbone downsamples 16x); got {self.size}"
            )
        if self.stage == "refine" and self.size * self.backbone_scale < 32:
            raise ValueError(
                f"--size {self.size} with --backbone-scale {self.backbone_scale} gives the base network "
                f"{self.size * self.backbone_scale:g} pixels; use --size >= {math.ceil(32 / self.backbone_scale)}"
            )
        if not 0 < self.backbone_scale <= 0.5:
            raise ValueError(f"--backbone-scale must be in (0, 0.5]; got {self.backbone_scale}")
        if self.backbone_scale_max and not (
            self.stage == "refine" and self.backbone_scale < self.backbone_scale_max <= 0.5
        ):
            raise ValueError(
                "--backbone-scale-max needs --stage refine and a value in "
                f"({self.backbone_scale}, 0.5]; got {self.backbone_scale_max}"
            )
        if not 0 < self.refine_sample_fraction <= 1:
            raise ValueError(
                f"--refine-sample-fraction must be in (0, 1]; got {self.refine_sample_fraction}"
            )
        if not 0 <= self.exact_plate_share <= 1:
            raise ValueError(f"--exact-plate-share must be in [0, 1]; got {self.exact_plate_share}")
        if not 0 <= self.refine_random_share <= 1:
            raise ValueError(
                f"--refine-random-share must be in [0, 1]; got {self.refine_random_share}"
            )
        if self.freeze_base and self.stage != "refine":
            raise ValueError("--freeze-base needs --stage refine (it trains the refiner alone)")
        if not self.lr_scale > 0:
            raise ValueError(f"--lr-scale must be positive; got {self.lr_scale}")
        if self.weight_decay < 0 or self.clip_grad_norm < 0:
            raise ValueError("--weight-decay and --clip-grad-norm must be >= 0")
        if self.data != "synthetic":
            kind, _, path = self.data.partition(":")
            if kind not in ("videomatte240k", "photomatte85") or not path:
                raise ValueError(
                    f"--data must be 'synthetic' or 'videomatte240k:PATH' / 'photomatte85:PATH'; got {self.data!r}"
                )
            if not self.backgrounds:
                raise ValueError(
                    f"--data {self.data} needs --backgrounds FOLDER (images to composite onto)"
                )
        if self.init is not None and not Path(self.init).is_file():
            raise ValueError(f"--init {self.init}: no such file")
        if self.extend and not self.resume:
            raise ValueError("--extend changes the total of a resumed run: add --resume")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model (eval mode, CPU or the training device)."""

    model: nn.Module
    config: TrainConfig
    steps: int
    seconds: float
    history: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    checkpoint: Path | None
    weights: Path | None
    start_step: int = 0  # where this call started: the checkpoint's step on --resume

    @property
    def steps_run(self) -> int:
        """Steps this call ran (0: a resumed run that was already complete)."""
        return self.steps - self.start_step


# ------------------------------------------------------------------------------------------------
# Small pieces: seeds, devices, distributed setup
# ------------------------------------------------------------------------------------------------


def _mix_seed(*numbers: int) -> int:
    """A 63-bit seed from several integers (numpy's SeedSequence mixes them well)."""
    entropy = [int(n) & 0xFFFFFFFF for n in numbers]
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint64)
    return int(state[0]) >> 1


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: numpy and ``random`` follow torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _training_device(name: str, dist_info: _Dist) -> torch.device:
    """``--device auto`` is :func:`mattingkit.runtime.pick_device` (which honours
    ``MATTINGKIT_DEVICE``); with several processes each one takes the GPU of its local rank."""
    device = pick_device(verbose=False) if name == "auto" else torch.device(name)
    if name == "auto" and device.type == "mps" and dist_info.enabled:
        return torch.device("cpu")  # no process-group backend for Apple GPUs
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", dist_info.local_rank % torch.cuda.device_count())
    return device


def _setup_distributed(device_name: str) -> _Dist:
    """Join the process group that ``torchrun`` describes in the environment (if any)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return _Dist()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if dist.is_initialized():  # the caller made the group
        return _Dist(rank, world_size, local_rank, owns_group=False)
    use_cuda = _training_device(device_name, _Dist(rank, world_size, local_rank)).type == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return _Dist(rank, world_size, local_rank, owns_group=True)


def per_process_batch(global_batch: int, world_size: int) -> int:
    """Chapter 06. Each process's share of the global batch under ``DistributedDataParallel``.

    Raises ``ValueError`` when the batch does not split evenly, or leaves a process fewer than 2
    images: in training mode BatchNorm in the ASPP pooling branch cannot normalise one value.
    """
    if global_batch % world_size:
        raise ValueError(
            f"--batch-size {global_batch} must be divisible by the number of processes "
            f"({world_size})"
        )
    local_batch = global_batch // world_size
    if local_batch < 2:
        raise ValueError(
            f"each process needs a batch of at least 2 (BatchNorm in the ASPP pooling branch cannot "
            f"normalise a single value); got --batch-size {global_batch} over "
            f"{world_size} process(es)"
        )
    return local_batch


# ------------------------------------------------------------------------------------------------
# Model, optimizer, schedule
# ------------------------------------------------------------------------------------------------


def build_model(config: TrainConfig) -> nn.Module:
    """Chapter 06. The network a stage trains: ``MattingBase`` or a sampling ``MattingRefine``.

    For the refine stage the number of refined pixels follows the crop: ``refine_sample_fraction``
    of ``size**2`` (by default the share HD inference refines), at least 16 patches, of which
    ``refine_random_share`` are drawn at random while training (not only the hardest ones).
    """
    if config.stage == "base":
        return MattingBase(config.backbone)
    model = MattingRefine(
        config.backbone,
        backbone_scale=config.backbone_scale,
        refine_mode="sampling",
        refine_sample_pixels=refine_sample_pixels(config),
    )
    model.refiner.train_random_share = config.refine_random_share  # used in train mode only
    for name in frozen_parts(config):
        getattr(model, name).requires_grad_(False)
    return model


def base_sides(config: TrainConfig) -> list[int]:
    """The base network's input sides a multi-scale refine run draws from (multiples of 32 px)."""
    low = config.size * config.backbone_scale
    if not config.backbone_scale_max:
        return [round(low)]
    high = config.size * config.backbone_scale_max
    sides = [s for s in range(32, int(high) + 1, 32) if low <= s <= high]
    return sides or [round(low)]


def at_training_scales(
    model: nn.Module, batches: Iterable[Any], config: TrainConfig
) -> Iterator[Any]:
    """``batches``, with the model's base input size cycled through :func:`base_sides` while
    each is used, then set back to ``config.backbone_scale``: BatchNorm statistics measured on
    them (:func:`recalibrate_batchnorm`) describe every size a multi-scale run trained at."""
    sides = base_sides(config)
    try:
        for index, batch in enumerate(batches):
            model.backbone_scale = sides[index % len(sides)] / config.size
            yield batch
    finally:
        model.backbone_scale = config.backbone_scale


def refine_sample_pixels(config: TrainConfig) -> int:
    """Pixels the refiner re-predicts per training crop (a multiple of 16, at least 16 patches)."""
    share = config.refine_sample_fraction
    return refine_pixels_for(config.size, config.size, share=share, minimum=16 * 16)


#: What ``freeze_base`` keeps fixed: everything but the refiner.
BASE_PARTS = ("backbone", "aspp", "decoder")


def frozen_parts(config: TrainConfig) -> tuple[str, ...]:
    """Submodules this run does not train (``freeze_base``: the base network)."""
    return BASE_PARTS if config.freeze_base else ()


def set_train_mode(model: nn.Module, frozen: Sequence[str] = ()) -> nn.Module:
    """``model.train()``, except the ``frozen`` submodules, which stay in eval mode: their
    BatchNorm layers keep normalising with (and never update) their running statistics."""
    model.train()
    for name in frozen:
        getattr(model, name).eval()
    return model


def _parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    rates = OFFICIAL_LEARNING_RATES[config.stage]
    groups = []
    for name, lr in rates.items():
        if name in frozen_parts(config):
            continue
        module = getattr(model, name)
        groups.append(
            {"params": list(module.parameters()), "lr": lr * config.lr_scale, "name": name}
        )
    return groups


def _build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = _parameter_groups(model, config)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    return torch.optim.Adam(groups, weight_decay=config.weight_decay)


def _lr_factor(config: TrainConfig) -> Callable[[int], float]:
    """Learning-rate multiplier at a step: linear warm-up, then constant or cosine decay to 5 %."""

    def factor(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.schedule == "constant":
            return 1.0
        span = max(1, config.steps - config.warmup_steps)
        progress = min(1.0, (step - config.warmup_steps) / span)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def _training_dataset(config: TrainConfig) -> Dataset:
    """The synthetic generator, or real foregrounds composited onto real backgrounds."""
    size = (config.size, config.size)
    if config.data == "synthetic":
        length = config.train_samples or config.steps * config.batch_size
        return SyntheticMattingDataset(length, size, seed=config.seed)
    kind, _, path = config.data.partition(":")
    if kind == "photomatte85":
        foregrounds = data.PhotoMatteDataset(path)
    else:
        split = "train" if (Path(path) / "train").is_dir() else None
        foregrounds = data.VideoMatteDataset(path, split=split)
    return data.CompositionDataset(
        foregrounds,
        data.BackgroundDataset(config.backgrounds),
        size=size,
        seed=config.seed,
        fgr_scale=(0.4, 1.0) if config.stage == "base" else (0.3, 1.0),  # as the official
    )


class _EpochIndexed(Dataset):
    """Items are addressed as ``(epoch, index)`` so a dataset with ``set_epoch`` (per-epoch
    augmentations) gets the right epoch even inside DataLoader worker processes."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def validation_samples(
    count: int, size: int, perturb: bool = False
) -> list[dict[str, torch.Tensor]]:
    """Chapter 06. A fixed held-out synthetic set: ``count`` dicts with ``src, bgr, fgr, pha``.

    The seeds (``VALIDATION_SEED + i``) are far from every training seed. By default ``src`` is
    the exact composite over the background and ``bgr`` is that same clean plate. With
    ``perturb=True`` the pair goes through the training augmentations and what real cameras add
    (:func:`mattingkit.data.augment.camera_effects`, seeded per sample): shadows on the floor, noise,
    JPEG, exposure that changed, a plate whose colours and position drift.
    """
    samples = []
    for i in range(count):
        s = make_sample(VALIDATION_SEED + i, size=(size, size))
        src, bgr = s.src, s.bgr
        if perturb:
            generator = torch.Generator().manual_seed(VALIDATION_SEED + i)
            src, bgr = (
                x[0] for x in camera_effects(s.fgr[None], s.pha[None], s.bgr[None], generator)
            )
        samples.append({"src": src, "bgr": bgr, "fgr": s.fgr, "pha": s.pha})
    return samples


def _as_dict(sample: Any) -> dict[str, torch.Tensor]:
    if isinstance(sample, dict):
        return sample
    return {name: getattr(sample, name) for name in ("fgr", "pha", "bgr")}


def _collate(samples: list[Any]) -> dict[str, torch.Tensor]:
    dicts = [_as_dict(s) for s in samples]
    return {name: torch.stack([d[name] for d in dicts]) for name in ("fgr", "pha", "bgr")}


class _ResumableBatches(torch.utils.data.Sampler):
    """Index batches for steps ``start..total`` of this rank, reproducible from ``(seed, step)``.

    A ``DistributedSampler`` shuffles the dataset once per epoch and gives each rank its share;
    this wrapper cuts that into batches and can start in the middle of an epoch (on resume).
    """

    def __init__(
        self, dataset: Dataset, batch_size: int, dist_info: _Dist, seed: int, start: int, total: int
    ):
        self.sampler = DistributedSampler(
            dataset,
            num_replicas=dist_info.world_size,
            rank=dist_info.rank,
            shuffle=True,
            seed=seed,
            drop_last=True,
        )
        self.batch_size = batch_size
        self.start, self.total = start, total
        self.steps_per_epoch = len(self.sampler) // batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"the training set has {len(dataset)} samples, fewer than one batch of {batch_size} "
                f"per process; use more samples or a smaller --batch-size"
            )

    def __len__(self) -> int:
        return self.total - self.start

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        while step < self.total:
            epoch, offset = divmod(step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch)
            indices = list(self.sampler)
            for k in range(offset, self.steps_per_epoch):
                if step >= self.total:
                    return
                yield [(epoch, i) for i in indices[k * self.batch_size : (k + 1) * self.batch_size]]
                step += 1


def _loader(dataset: Dataset, batches: _ResumableBatches, config: TrainConfig) -> DataLoader:
    """A DataLoader over ``batches`` whose workers are seeded from the config (reproducible)."""
    return DataLoader(
        _EpochIndexed(dataset),
        batch_sampler=batches,
        collate_fn=_collate,
        num_workers=config.num_workers,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(config.seed),
    )


def _make_batch(
    batch: dict[str, torch.Tensor], config: TrainConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(src, bgr, true_fgr, true_pha)``: augmented (official recipe) or a plain composite."""
    fgr, pha, bgr = batch["fgr"], batch["pha"], batch["bgr"]
    exact = pha * fgr + (1 - pha) * bgr
    if not config.augment:
        return exact, bgr, fgr, pha
    augment = camera_effects if config.camera_effects else augment_batch
    src, plate = augment(fgr, pha, bgr, generator=generator)
    if config.exact_plate_share > 0:
        keep = (
            torch.rand(len(src), generator=generator, device=generator.device)
            < config.exact_plate_share
        )
        keep = keep.to(src.device).view(-1, 1, 1, 1)
        src, plate = torch.where(keep, exact, src), torch.where(keep, bgr, plate)
    return src, plate, fgr, pha


def _recalibration_batches(
    dataset: Dataset, config: TrainConfig, local_batch: int, dist_info: _Dist, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Augmented training batches for :func:`recalibrate_batchnorm`, seeded apart from the steps."""
    sampler = _ResumableBatches(
        dataset, local_batch, dist_info, config.seed + 7919, 0, config.bn_recalibration
    )
    loader = _loader(dataset, sampler, config)
    generator = torch.Generator()
    for k, batch in enumerate(loader):
        batch_seed = _mix_seed(config.seed, -1 - k, dist_info.rank)  # apart from the steps' seeds
        generator.manual_seed(batch_seed)
        torch.manual_seed(batch_seed)  # the dropout of the forward pass that follows
        batch = {name: value.to(device) for name, value in batch.items()}
        src, bgr, _, _ = _make_batch(batch, config, generator)
        yield src, bgr


def calibration_batches(
    config: TrainConfig, device: torch.device | str = "cpu"
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Chapter 06. ``config.bn_recalibration`` augmented ``(src, bgr)`` training batches of ``config``.

    For :func:`recalibrate_batchnorm` outside :func:`train`, e.g. after loading exported weights.
    """
    config.validate()
    return _recalibration_batches(
        _training_dataset(config), config, config.batch_size, _Dist(), torch.device(device)
    )


# ------------------------------------------------------------------------------------------------
# One step, evaluation, BatchNorm statistics
# ------------------------------------------------------------------------------------------------


def _loss(stage: str, output: Any, true_pha: torch.Tensor, true_fgr: torch.Tensor):
    output = type(output)(*(t.float() for t in output))  # losses in fp32, also under autocast
    if stage == "base":
        return base_loss_from_output(output, true_pha, true_fgr, return_terms=True)
    return refine_loss(output, true_pha, true_fgr, return_terms=True)


def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    src: torch.Tensor,
    bgr: torch.Tensor,
    true_pha: torch.Tensor,
    true_fgr: torch.Tensor,
    stage: str = "base",
    amp: bool = False,
    clip_grad_norm: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Chapter 06. One optimisation step: forward, loss, (scaled) backward, optimizer step.

    ``amp=True`` runs the forward pass under ``torch.autocast`` (fp16 on CUDA); the loss is
    always computed in fp32. ``scaler`` is a ``torch.amp.GradScaler``: on CUDA with AMP it
    multiplies the loss so small fp16 gradients do not flush to zero, and divides them back
    before the step (skipping steps whose gradients overflowed). Built with ``enabled=False``
    (plain fp32) every call below is a pass-through, so both paths share this code.
    Returns the detached loss and its terms.
    """
    device_type = src.device.type
    with torch.autocast(device_type, enabled=amp):
        output = model(src, bgr)
    loss, terms = _loss(stage, output, true_pha, true_fgr)
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"the loss became {loss.item()}; lower the learning rate (--lr-scale)"
        )
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad_norm:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), terms


@torch.no_grad()
def evaluate(
    model: nn.Module | Callable,
    samples: Sequence[dict[str, torch.Tensor]],
    metrics: Sequence[str] = ("sad", "mse", "grad"),
    trimap: str | None = "auto",
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Chapter 06. Mean alpha metrics of ``model`` on ``samples`` (dicts with ``src, bgr, pha``).

    Works for ``MattingBase`` and ``MattingRefine`` (the alpha is output 0 of both) and for any
    callable ``(src, bgr) -> (pha, ...)`` on ``(1, 3, H, W)`` batches. Metric names are functions
    of :mod:`mattingkit.training.metrics` (``sad``, ``mse``, ``grad``, ``conn``). ``trimap="auto"`` scores
    the unknown band of each true alpha like the paper (:func:`mattingkit.training.metrics.trimap_from_alpha`);
    ``None`` scores the whole image. The model is put in eval mode and restored after.
    """
    if trimap not in ("auto", None):
        raise ValueError(f"trimap must be 'auto' or None, got {trimap!r}")
    functions = {name: getattr(metric_functions, name) for name in metrics}
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
        if device is None:
            device = next(model.parameters()).device
    device = torch.device(device or "cpu")
    totals = dict.fromkeys(metrics, 0.0)
    try:
        for sample in samples:
            src = sample["src"][None].to(device)
            bgr = sample["bgr"][None].to(device)
            pha = model(src, bgr)[0].float().cpu()[0]
            region = metric_functions.trimap_from_alpha(sample["pha"]) if trimap == "auto" else None
            for name, fn in functions.items():
                totals[name] += float(fn(pha, sample["pha"], region))
    finally:
        if was_training:
            model.train()
    return {name: total / max(1, len(samples)) for name, total in totals.items()}


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    amp: bool = False,
    frozen: Sequence[str] = (),
) -> int:
    """Chapter 06. Re-estimate every BatchNorm's running mean and variance for the current weights.

    In training mode BatchNorm normalises with the batch's own statistics and keeps running
    averages for eval mode (momentum 0.1: mostly the last ~10 batches). Early in training the
    weights change faster than those averages follow, so eval mode normalises with stale numbers
    and a model that trains well can predict garbage (typically an all-zero alpha). Resetting the
    averages and feeding a few batches with ``momentum=None`` (an exact mean) fixes that; this is
    "precise BN" (``torch.optim.swa_utils.update_bn`` does the same for one-input models).
    ``batches`` yields ``(src, bgr)`` pairs. ``frozen`` names submodules (``freeze_base``: the
    base network) whose statistics stay as they are: they run in eval mode, as in training.

    For a ``MattingRefine`` the refiner's statistics depend on *which* patches it sees: measure
    them with the selection the training used (:func:`build_model` sets it: ``refine_sample_pixels``
    of the crop and ``refiner.train_random_share``), e.g. with :func:`training_selection`. With
    the inference selection (only the worst few percent of patches) the statistics describe
    hard patches only, and every refine mode then does worse than no refinement.
    Returns how many batches were used.
    """
    skip = {id(m) for name in frozen for m in getattr(model, name).modules()}
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in skip
    ]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    modes = [(m, m.training) for m in model.modules()]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over all batches below
    set_train_mode(model, frozen)
    count = 0
    try:
        for src, bgr in batches:
            with torch.autocast(src.device.type, enabled=amp):
                model(src, bgr)
            count += 1
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        for module, mode in modes:
            module.training = mode
    return count


@contextlib.contextmanager
def training_selection(model: nn.Module, config: TrainConfig) -> Iterator[nn.Module]:
    """Chapter 06. Within the block, ``model``'s refiner picks patches as the stage ``config``
    trained it (sampling ``refine_sample_pixels(config)`` per crop, ``refine_random_share`` of
    them at random); the inference settings come back after. Wrap :func:`recalibrate_batchnorm`
    of exported weights in it: the refiner's BatchNorm statistics must describe the patches it
    was trained on, not only the hardest ones inference picks.
    """
    refiner = getattr(model, "refiner", None)
    if refiner is None:
        yield model
        return
    saved = (model.refine_mode, model.refine_sample_pixels, refiner.train_random_share)
    model.refine_mode = "sampling"
    model.refine_sample_pixels = refine_sample_pixels(config)
    refiner.train_random_share = config.refine_random_share
    try:
        yield model
    finally:
        model.refine_mode, model.refine_sample_pixels, refiner.train_random_share = saved


# ------------------------------------------------------------------------------------------------
# The run: start or resume, the loop, finish
# ------------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """Everything one training run holds, so the three phases below can hand it on."""

    config: TrainConfig
    dist_info: _Dist
    device: torch.device
    use_amp: bool
    local_batch: int
    model: nn.Module  # the network itself (checkpoints, evaluation)
    net: nn.Module  # what the loop calls: the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    dataset: Dataset
    start_step: int
    resume_from: Path | None
    notes: list[str]
    callbacks: Sequence[Callable[[dict[str, Any]], None]]
    history: list[dict[str, Any]] = field(default_factory=list)
    validation: list[dict[str, Any]] = field(default_factory=list)
    val_set: list[dict[str, torch.Tensor]] = field(default_factory=list)
    progress: Any = None

    @property
    def is_main(self) -> bool:
        return self.dist_info.rank == 0

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    def emit(self, **event: Any) -> None:
        """Call the callbacks (rank 0 only) with ``{"step", "steps", "stage", ...}``."""
        if self.is_main:
            event = {"steps": self.config.steps, "stage": self.config.stage, **event}
            for callback in self.callbacks:
                callback(event)

    def say(self, message: str) -> None:
        if not self.is_main:
            return
        if self.progress is not None:
            self.progress.write(message)
        else:
            print(message, flush=True)


def train(
    config: TrainConfig,
    callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
) -> TrainResult:
    """Chapter 06. Train one stage as ``config`` says; returns the model and what was logged.

    ``callbacks`` are called on rank 0 with an event dict ``{"step", "steps", "stage", "loss",
    "terms", "lr", "val", "final"}`` every ``log_every`` steps, after each validation and at the end.
    """
    config.validate()
    dist_info = _setup_distributed(config.device)
    try:
        run = _start_or_resume(config, dist_info, callbacks)
        if run.start_step >= config.steps:
            return _already_complete(run)
        step, last_checkpoint, seconds = _run_steps(run)
        return _finish(run, step, last_checkpoint, seconds)
    finally:
        if dist_info.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _check_resumed_steps(
    config: TrainConfig, planned: int, checkpoint: dict[str, Any], path: Path
) -> None:
    """A resumed run keeps the checkpoint's ``--steps`` unless ``--extend`` says otherwise.

    The learning-rate schedule (cosine decay, warm-up) is a function of the total, so a new
    total silently changes the rate of every remaining step: refused without ``--extend``.
    """
    step = int(checkpoint["step"])
    if config.steps == planned:
        return
    if not config.extend:
        where = (
            f"it finished all {planned}"
            if step >= planned
            else f"it is at step {step}; pass --steps {planned} to finish it as planned"
        )
        raise ValueError(
            f"cannot resume {path} with --steps {config.steps}: that run was planned for "
            f"--steps {planned} and its learning-rate schedule depends on the total ({where}); "
            f"add --extend to continue to step {config.steps} with the schedule recomputed for "
            f"{config.steps} steps"
        )
    if config.steps <= step:
        raise ValueError(
            f"cannot resume {path} with --steps {config.steps} --extend: it is already at step "
            f"{step}; give a --steps larger than {step}"
        )


def _replan_schedule(run: _Run, planned: int) -> str:
    """Put the learning rate on the schedule of the new total at once; say what changed."""
    config, step = run.config, run.start_step
    before = run.optimizer.param_groups[0]["lr"]
    factor = _lr_factor(config)
    for group, base in zip(run.optimizer.param_groups, run.scheduler.base_lrs):
        group["lr"] = base * factor(step)
    after = run.optimizer.param_groups[0]["lr"]
    change = (
        f"the {config.schedule} learning-rate schedule is recomputed for {config.steps} steps: "
        f"at step {step} the backbone's rate goes from {before:.3g} to {after:.3g}"
        if before != after
        else f"the learning rate stays {after:.3g} ({config.schedule} schedule)"
    )
    return f"--extend: planned for {planned} steps, now {config.steps}; {change}"


def _already_complete(run: _Run) -> TrainResult:
    """A resumed run whose checkpoint is already at ``steps``: nothing to train or rewrite.

    Only ``model.pth`` is written, if a run was stopped between its last checkpoint and the
    weights file; the history and the checkpoints stay as the finished run left them.
    """
    weights = run.out / "model.pth"
    if run.is_main and not weights.is_file():
        with atomic_write(weights) as f:
            torch.save(run.model.state_dict(), f)
    if run.dist_info.enabled:
        dist.barrier()
    run.model.eval()
    return TrainResult(
        run.model, run.config, run.start_step, 0.0, run.history, run.validation,
        run.resume_from, weights, start_step=run.start_step,
    )  # fmt: skip


def _start_or_resume(config: TrainConfig, dist_info: _Dist, callbacks: Sequence[Callable]) -> _Run:
    """Build model, optimizer and data; restore them from the newest checkpoint on ``resume``.

    Never overwrites checkpoints the user already has: without ``resume`` an ``out`` folder
    that holds some is refused.
    """
    local_batch = per_process_batch(config.batch_size, dist_info.world_size)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = _training_device(config.device, dist_info)
    out = Path(config.out)
    if dist_info.rank == 0:
        remove_stale_temp_files(out)
    existing = latest_checkpoint(out)
    if existing is not None and not config.resume:
        raise FileExistsError(
            f"{out} already holds checkpoints ({existing.name}); pass --resume to "
            f"continue that run or choose another --out"
        )
    resume_from = existing if config.resume else None
    _seed_everything(_mix_seed(config.seed, dist_info.rank))

    model = build_model(config).to(device)
    notes = []
    checkpoint = None
    if resume_from is not None:
        checkpoint = load_checkpoint(resume_from)
        saved = checkpoint["config"]
        for key in ("stage", "backbone", "size", "batch_size", "seed", "data"):
            if saved.get(key) != getattr(config, key):
                raise ValueError(
                    f"cannot resume {resume_from}: it was trained with --{key.replace('_', '-')} "
                    f"{saved.get(key)!r}, this run asks for {getattr(config, key)!r}"
                )
        _check_resumed_steps(config, int(saved.get("steps", config.steps)), checkpoint, resume_from)
        model.load_state_dict(checkpoint["model"])
        notes.append(f"resuming from {resume_from} (step {checkpoint['step']})")
    elif config.init is not None:
        notes.append(load_initial_weights(model, config.init))
    elif config.resume:
        notes.append(f"--resume: no checkpoint in {checkpoint_dir(out)}, starting from scratch")

    if dist_info.enabled and config.stage == "refine" and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # as train_refine.py
    use_amp = bool(config.amp and device.type == "cuda")
    optimizer = _build_optimizer(model, config)
    run = _Run(
        config=config,
        dist_info=dist_info,
        device=device,
        use_amp=use_amp,
        local_batch=local_batch,
        model=model,
        net=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config)),
        scaler=torch.amp.GradScaler(device.type, enabled=use_amp),
        dataset=_training_dataset(config),
        start_step=0,
        resume_from=resume_from,
        notes=notes,
        callbacks=callbacks,
    )
    if checkpoint is not None:
        run.optimizer.load_state_dict(checkpoint["optimizer"])
        run.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint.get("scaler"):
            run.scaler.load_state_dict(checkpoint["scaler"])
        run.start_step = int(checkpoint["step"])
        run.history = list(checkpoint.get("history", []))
        run.validation = list(checkpoint.get("validation", []))
        restore_rng_states(checkpoint["rng"])
        planned = int(checkpoint["config"].get("steps", config.steps))
        if planned != config.steps:  # --extend, checked above
            notes.append(_replan_schedule(run, planned))

    if dist_info.enabled:
        run.net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.stage == "refine",  # no patch picked -> refiner unused
        )
    if run.is_main:
        run.val_set = validation_samples(config.val_samples, config.size)
    return run


def _run_steps(run: _Run) -> tuple[int, Path | None, float]:
    """The loop: batch, augment, step; log, validate and checkpoint on schedule.

    Returns the last step, the last checkpoint written and the seconds spent.
    """
    config, dist_info = run.config, run.dist_info
    batches = _ResumableBatches(
        run.dataset, run.local_batch, dist_info, config.seed, run.start_step, config.steps
    )
    loader = _loader(run.dataset, batches, config)
    if run.is_main and config.progress:
        run.progress = tqdm(
            total=config.steps, initial=run.start_step, desc=f"{config.stage} ({run.device.type})"
        )
    for note in run.notes:
        run.say(note)

    run.net.train()
    set_train_mode(run.model, frozen_parts(config))
    aug_generator = torch.Generator()
    started = time.perf_counter()
    last_checkpoint = run.resume_from
    step = run.start_step
    window: list[float] = []
    sides = base_sides(config) if config.stage == "refine" else []
    for batch in loader:
        # Every random choice of this step comes from (seed, step, rank): resume is exact.
        step_seed = _mix_seed(config.seed, step, dist_info.rank)
        aug_generator.manual_seed(step_seed)
        torch.manual_seed(step_seed)  # dropout in the ASPP
        batch = {k: v.to(run.device, non_blocking=True) for k, v in batch.items()}
        src, bgr, true_fgr, true_pha = _make_batch(batch, config, aug_generator)
        if len(sides) > 1:  # multi-scale: this step's base input size, drawn from the step's seed
            side = sides[int(torch.randint(len(sides), (1,), generator=aug_generator))]
            run.model.backbone_scale = side / config.size
        loss, terms = training_step(
            run.net, run.optimizer, run.scaler, src, bgr, true_pha, true_fgr,
            stage=config.stage, amp=run.use_amp, clip_grad_norm=config.clip_grad_norm,
        )  # fmt: skip
        run.scheduler.step()
        step += 1
        loss_value = loss.item()
        window.append(loss_value)

        if step % config.log_every == 0 or step == config.steps:
            record = {
                "step": step,
                "loss": sum(window) / len(window),
                "lr": run.optimizer.param_groups[0]["lr"],
                "time": time.perf_counter() - started,
                **{name: float(v) for name, v in terms.items()},
            }
            window.clear()
            run.history.append(record)
            run.emit(step=step, loss=record["loss"], terms=terms, lr=record["lr"], val=None)
        if run.progress is not None:
            run.progress.update(1)
            run.progress.set_postfix(loss=f"{loss_value:.4f}")
        if config.val_every and step % config.val_every == 0 and step < config.steps:
            record = _validate(run, step)
            set_train_mode(run.model, frozen_parts(config))  # evaluate() left it all in train mode
            if record is not None:
                run.say(
                    f"step {step}: "
                    + ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "step")
                )
        if (
            run.is_main
            and config.checkpoint_every
            and step % config.checkpoint_every == 0
            and step < config.steps
        ):
            last_checkpoint = _save(run, step)

    if config.stage == "refine":
        run.model.backbone_scale = config.backbone_scale  # what the weights are saved and scored at
    if config.bn_recalibration and step > run.start_step:
        # Short runs from scratch: the running averages lag behind weights that moved fast,
        # and eval mode would use stale statistics. Re-measure them for the final weights.
        batches = _recalibration_batches_of(run)
        if config.stage == "refine":
            batches = at_training_scales(run.model, batches, config)
        recalibrate_batchnorm(run.model, batches, run.use_amp, frozen_parts(config))
    return step, last_checkpoint, time.perf_counter() - started


def _finish(run: _Run, step: int, last_checkpoint: Path | None, seconds: float) -> TrainResult:
    """Validate the final weights, write the last checkpoint, ``model.pth`` and ``history.json``."""
    config, out = run.config, run.out
    weights = None
    if run.is_main:
        if step > run.start_step or not run.validation or run.validation[-1]["step"] != step:
            _validate(run, step, final=True)  # the model itself, recalibrated above
        last_checkpoint = _save(run, step)
        weights = out / "model.pth"
        with atomic_write(weights) as f:
            torch.save(run.model.state_dict(), f)
        with atomic_write(out / "history.json", "w") as f:
            json.dump({"config": config.to_dict(), "history": run.history,
                       "validation": run.validation, "seconds": seconds,
                       "steps_run": step - run.start_step}, f, indent=1)  # fmt: skip
        run.emit(step=step, loss=None, val=None, final=True)
    if run.progress is not None:
        run.progress.close()
    if config.param_checksum:
        checksum_file = out / f"params-rank{run.dist_info.rank}.sha256"
        checksum_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(checksum_file, "w") as f:
            f.write(param_checksum(run.model) + "\n")
    if run.dist_info.enabled:
        dist.barrier()
    run.model.eval()
    return TrainResult(
        run.model, config, step, seconds, run.history, run.validation, last_checkpoint, weights,
        start_step=run.start_step,
    )  # fmt: skip


def _recalibration_batches_of(run: _Run) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    return _recalibration_batches(
        run.dataset, run.config, run.local_batch, run.dist_info, run.device
    )


def _validate(run: _Run, step: int, final: bool = False) -> dict[str, Any] | None:
    """Score the held-out set on rank 0 (every rank calls it: SyncBatchNorm needs them all)."""
    scored = run.model
    if run.config.bn_recalibration and not final:
        # Score a copy with fresh BatchNorm statistics; the training state stays untouched.
        scored = copy.deepcopy(run.model)
        recalibrate_batchnorm(
            scored, _recalibration_batches_of(run), run.use_amp, frozen_parts(run.config)
        )
    if not run.is_main:
        return None
    scores = evaluate(scored, run.val_set, device=run.device)
    record = {"step": step, **scores}
    run.validation.append(record)
    run.emit(step=step, loss=None, val=scores)
    return record


def _save(run: _Run, step: int) -> Path:
    """Checkpoint everything a resumed run needs (rank 0 only)."""
    state = {
        "step": step,
        "config": run.config.to_dict(),
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": rng_states(),
        "history": run.history,
        "validation": run.validation,
    }
    return save_checkpoint(run.out, state, keep=run.config.keep_checkpoints)


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mattingkit.train",
        description="Train Background Matting V2 (chapter 06). Every option is a TrainConfig field.",
    )
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if f.type in ("bool", bool):
            action = parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=f.default
            )
            # Set after construction: Python 3.9/3.10 append "(default: False)" themselves.
            action.help = f"{help_text} (default: {'on' if f.default else 'off'})"
            continue
        kind = {"int": int, "float": float}.get(str(f.type), str)
        default = f.default
        if "(default:" not in help_text:  # some fields say their default in words
            help_text = f"{help_text} (default: {default})"
        parser.add_argument(flag, type=kind, default=default, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: ``python -m mattingkit.train --stage base --steps 100 --out runs/base``."""
    parser = _parser()
    args = parser.parse_args(argv)
    config = TrainConfig(**vars(args))
    try:
        config.validate()
    except ValueError as error:
        parser.error(str(error))
    try:
        result = train(config)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(_summary(result), flush=True)
    return 0


def _summary(result: TrainResult) -> str:
    """The last line of a run: what this call did, not what the run did in total."""
    last = result.validation[-1] if result.validation else {}
    scores = ", ".join(f"{k}={v:.4g}" for k, v in last.items() if k != "step")
    if result.steps_run == 0:
        return (
            f"already complete at step {result.steps} of {result.config.steps}; nothing to do "
            f"(weights: {result.weights}; to train longer, add --extend with a larger --steps)"
        )
    ran = f"{result.steps_run} steps"
    if result.start_step:  # resumed: this call ran only the rest
        ran = f"steps {result.start_step + 1}-{result.steps} ({ran})"
    return f"done: {ran} in {result.seconds:.1f} s; weights {result.weights}" + (
        f"; {scores}" if scores else ""
    )


if __name__ == "__main__":
    raise SystemExit(main())
