"""mattingkit: a readable, teachable Background Matting V2.

The package mirrors the notebook series: each module holds the ideas of one chapter.
Heavy names are imported lazily, so ``import mattingkit.metrics`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS = {
    "MattingBase": "mattingkit.model",
    "MattingRefine": "mattingkit.model",
    "BaseOutput": "mattingkit.model",
    "RefineOutput": "mattingkit.model",
    "load_pretrained": "mattingkit.pretrained",
    "list_pretrained": "mattingkit.pretrained",
    "get_weights": "mattingkit.pretrained",
    "read_image": "mattingkit.io",
    "write_image": "mattingkit.io",
    "pick_device": "mattingkit.runtime",
    "fast_mode": "mattingkit.runtime",
    "gmacs": "mattingkit.profile",
    "fps": "mattingkit.profile",
    "TrainConfig": "mattingkit.train",
    "train": "mattingkit.train",
    "Matter": "mattingkit.inference",
    "MatteResult": "mattingkit.inference",
    "matte_video": "mattingkit.video",
    "Studio": "mattingkit.studio",
    "WebcamMatting": "mattingkit.webcam",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mattingkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What ``dir(mattingkit)`` and Jupyter's tab completion show: the lazy exports too."""
    return sorted(set(globals()) | set(_EXPORTS))
