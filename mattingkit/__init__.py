"""mattingkit: a readable, teachable Background Matting V2.

The package mirrors the notebook series: each module holds the ideas of one chapter.
Heavy names are imported lazily, so ``import mattingkit.training.metrics`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS = {
    "MattingBase": "mattingkit.core.model",
    "MattingRefine": "mattingkit.core.model",
    "BaseOutput": "mattingkit.core.model",
    "RefineOutput": "mattingkit.core.model",
    "load_pretrained": "mattingkit.weights.pretrained",
    "list_pretrained": "mattingkit.weights.pretrained",
    "get_weights": "mattingkit.weights.pretrained",
    "read_image": "mattingkit.io",
    "write_image": "mattingkit.io",
    "pick_device": "mattingkit.runtime",
    "fast_mode": "mattingkit.runtime",
    "gmacs": "mattingkit.speed.profile",
    "fps": "mattingkit.speed.profile",
    "TrainConfig": "mattingkit.training.loop",
    "train": "mattingkit.training.loop",
    "Matter": "mattingkit.apps.inference",
    "MatteResult": "mattingkit.apps.inference",
    "matte_video": "mattingkit.apps.video",
    "Studio": "mattingkit.notebook.studio",
    "WebcamMatting": "mattingkit.notebook.webcam",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mattingkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What ``dir(mattingkit)`` and Jupyter's tab completion show: the lazy exports too."""
    return sorted(set(globals()) | set(_EXPORTS))
