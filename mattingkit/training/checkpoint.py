"""Chapter 06. Training checkpoints: what a run saves, how it resumes, what it exports.

A checkpoint (``<out>/checkpoints/step-0000100.pth``) holds everything an interrupted run needs
to continue exactly where it stopped: model, optimizer, LR schedule, grad scaler, step, config,
history and the state of every random number generator (torch, CUDA, numpy, Python). It is
written atomically (:func:`mattingkit.io.atomic_write`: a temporary file renamed when
complete), so a crash while saving leaves the previous checkpoint intact, and it holds only
tensors and plain Python values, so it loads with ``torch.load(..., weights_only=True)``.

:func:`export_weights` writes what you share instead: a plain (fp16 by default) ``state_dict``.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mattingkit.io import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "checkpoint_dir",
    "export_weights",
    "latest_checkpoint",
    "load_checkpoint",
    "load_initial_weights",
    "param_checksum",
    "remove_stale_temp_files",
    "restore_rng_states",
    "rng_states",
    "save_checkpoint",
    "state_dict_of",
]

CHECKPOINT_FORMAT = "mattingkit-train-checkpoint-v1"


# ------------------------------------------------------------------------------------------------
# Random number generators
# ------------------------------------------------------------------------------------------------


def rng_states() -> dict[str, Any]:
    """Every generator a training step may touch, as tensors and plain values (weights_only-safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Put back what :func:`rng_states` saved (CUDA only on a machine with as many GPUs)."""
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if (
        "cuda" in states
        and torch.cuda.is_available()
        and len(states["cuda"]) == torch.cuda.device_count()
    ):
        torch.cuda.set_rng_state_all(states["cuda"])


# ------------------------------------------------------------------------------------------------
# Checkpoint files
# ------------------------------------------------------------------------------------------------


def checkpoint_dir(out: str | Path) -> Path:
    """Where a run in ``out`` keeps its checkpoints."""
    return Path(out) / "checkpoints"


def latest_checkpoint(out: str | Path) -> Path | None:
    """Chapter 06. The newest ``step-*.pth`` in ``out/checkpoints`` (``None`` if there is none)."""
    files = sorted(checkpoint_dir(out).glob("step-*.pth"))
    return files[-1] if files else None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Chapter 06. Read a training checkpoint safely (``weights_only=True``); clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - report which file, not a pickle traceback
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint ({type(error).__name__}: {error})"
        ) from error
    return checkpoint


def save_checkpoint(out: str | Path, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` as ``step-<step>.pth`` atomically, then keep only the ``keep`` newest."""
    path = checkpoint_dir(out) / f"step-{state['step']:07d}.pth"
    with atomic_write(path) as f:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, f)
    for old in sorted(checkpoint_dir(out).glob("step-*.pth"))[:-keep]:
        old.unlink(missing_ok=True)
    return path


def remove_stale_temp_files(out: str | Path) -> None:
    """A process killed *during* a save leaves its temporary file (never the checkpoint): delete it."""
    for stale in checkpoint_dir(out).glob(".step-*.tmp"):
        stale.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------
# Weights in and out
# ------------------------------------------------------------------------------------------------


def state_dict_of(source: Any) -> dict[str, torch.Tensor]:
    """The model weights of a training checkpoint, or ``source`` itself if it is a state_dict."""
    if isinstance(source, dict) and source.get("format") == CHECKPOINT_FORMAT:
        return source["model"]
    if isinstance(source, dict):
        return source
    raise ValueError(f"expected a checkpoint or a state_dict, got {type(source).__name__}")


def _describe(model: nn.Module) -> str:
    backbone = type(getattr(model, "backbone", None)).__name__
    return f"{type(model).__name__} ({backbone})"


def load_initial_weights(model: nn.Module, path: str | Path) -> str:
    """Load ``path`` into ``model``; base weights into a refine model leave only ``refiner.*`` new.

    Returns a one-line note saying what was loaded (the refine stage starts this way from the
    base stage's weights).
    """
    state = state_dict_of(load_checkpoint(path))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if wrong:
        raise ValueError(
            f"--init {path} does not fit a {_describe(model)}: {len(wrong)} tensors have other "
            f"shapes, e.g. {wrong[0]} {tuple(state[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)} "
            f"(weights of another --backbone?)"
        )
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("refiner.")]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"--init {path} does not fit a {type(model).__name__}: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]} (wrong --backbone?)"
        )
    loaded = len(state) - len(result.unexpected_keys)
    fresh = len(result.missing_keys)
    return f"initialised {loaded} tensors from {path}" + (
        f"; {fresh} refiner tensors start fresh" if fresh else ""
    )


def export_weights(
    source: nn.Module | str | Path, path: str | Path, half: bool = True, overwrite: bool = False
) -> Path:
    """Chapter 06. Write a model's weights as a plain (fp16 by default) ``state_dict``, atomically.

    ``source`` is a model or a training checkpoint path. fp16 halves the file (MobileNetV2:
    about 10 MB instead of 20 MB) and loses nothing visible: load it into a fp32 model with
    ``model.load_state_dict({k: v.float() ...})`` or let ``mattingkit.weights.pretrained`` do it.
    """
    if isinstance(source, nn.Module):
        state = source.state_dict()
    else:
        state = state_dict_of(load_checkpoint(source))
    state = {
        k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().contiguous()
        for k, v in state.items()
    }
    with atomic_write(path, overwrite=overwrite) as f:
        torch.save(state, f)
    return Path(path)


def param_checksum(model: nn.Module) -> str:
    """SHA-256 of every parameter (not the BatchNorm running statistics, which each DDP process
    keeps for itself after the last forward pass)."""
    digest = hashlib.sha256()
    for name, tensor in model.named_parameters():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
