"""The names in the weights registry and where the files come from, importable without torch.

The ``mattingkit`` command checks ``--weights NAME`` and ``mattingkit download NAME`` against
these names before it imports torch (seconds on a fast machine, minutes on a loaded one), so
a typo fails at once, and ``mattingkit download`` fetches without torch at all, so that
offline it answers in about a second. :mod:`mattingkit.weights.pretrained` builds its registry on the
same names and sources (:func:`resolve_name`, :func:`official_sources`);
``tests/test_pretrained.py`` checks the two agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "ALIASES",
    "FILENAMES",
    "SHIPPED_FILENAME",
    "SHIPPED_LABEL",
    "check_name_or_file",
    "fetch_registry_file",
    "is_shipped",
    "official_sources",
    "require_shipped",
    "resolve_name",
    "shipped_card",
    "shipped_card_lines",
    "shipped_quality_warning",
    "unknown_name_message",
    "unknown_weights_message",
]

#: mattingkit's own small model, shipped in ``assets/weights/``.
SHIPPED_FILENAME = "mattingkit_mobilenetv2_fp16.pth"
#: How a report names the shipped model.
SHIPPED_LABEL = "mattingkit's shipped MobileNetV2"

#: GitHub release that mirrors the Google Drive files.
RELEASE_URL = "https://github.com/PeterL1n/BackgroundMattingV2/releases/download/v1.0.0"
#: The official shared Drive folder (subfolders PyTorch/, TorchScript/, ONNX/).
DRIVE_FOLDER_ID = "1cbetlrKREitIgjnIikG1HdM4x72FtgBh"
#: Drive file ids where the official sources give one (the others are found in the folder).
DRIVE_IDS = {
    "pytorch_resnet50.pth": "1ErIAsB_miVhYL9GDlYUmfbqlV293mSYf",
    "pytorch_resnet101.pth": "1zysR-jW6jydA2zkWfevxD1JpQHglKG1_",
    "pytorch_mobilenetv2.pth": "1b2FQH0yULaiBwe4ORUvSxXpdWLipjLsI",
    "torchscript_resnet50_fp32.pth": "1-t9SO--H4WmP7wUl1tVNNeDkq47hjbv4",
}

#: Every registry file, official releases first; the registry name is the file's stem.
FILENAMES = (
    "pytorch_resnet50.pth",
    "pytorch_resnet101.pth",
    "pytorch_mobilenetv2.pth",
    "torchscript_resnet50_fp32.pth",
    "torchscript_resnet50_fp16.pth",
    "torchscript_resnet101_fp32.pth",
    "torchscript_resnet101_fp16.pth",
    "torchscript_mobilenetv2_fp32.pth",
    "torchscript_mobilenetv2_fp16.pth",
    "onnx_mobilenetv2_hd.onnx",
    "onnx_mobilenetv2_4k.onnx",
    SHIPPED_FILENAME,
)

#: Short names for the common files.
ALIASES = {
    "resnet50": "pytorch_resnet50",
    "resnet101": "pytorch_resnet101",
    "mobilenetv2": "pytorch_mobilenetv2",
    "mattingkit": "mattingkit_mobilenetv2_fp16",
    "shipped": "mattingkit_mobilenetv2_fp16",
}

_NAMES = {Path(filename).stem: filename for filename in FILENAMES}


def resolve_name(name: str) -> str | None:
    """The registry name for a name, an alias or a file name (any case); None if unknown."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key in _NAMES:
        return key
    for stem, filename in _NAMES.items():
        if filename.lower() == key:
            return stem
    return None


def unknown_name_message(name: object) -> str:
    """The one message for a name that is not in the registry."""
    return (
        f"no pretrained weights named {str(name)!r}; choose one of {list(_NAMES)} "
        f"or an alias {sorted(ALIASES)}"
    )


def unknown_weights_message(value: object) -> str:
    """The one message for weights that are neither an existing file nor a registry name."""
    return (
        f"{str(value)!r} is neither a file nor a registry name; names: {list(_NAMES)}, "
        f"aliases: {sorted(ALIASES)}"
    )


def check_name_or_file(value: str) -> None:
    """Weights given on a command line must be a registry name or an existing file.

    Raises ``FileNotFoundError`` (or ``IsADirectoryError``) with the one message for it.
    """
    if resolve_name(value) is not None:
        return
    path = Path(value).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; pass the weights file inside it")
    if not path.is_file():
        raise FileNotFoundError(unknown_weights_message(value))


def official_sources(filename: str) -> dict[str, Any]:
    """Where an official file is downloaded from: Drive id, Drive folder, GitHub mirror."""
    return {
        "drive_id": DRIVE_IDS.get(filename),
        "drive_folder_id": DRIVE_FOLDER_ID,
        "urls": (f"{RELEASE_URL}/{filename}",),
    }


def fetch_registry_file(
    name: str, *, cache_dir: str | Path | None = None, progress: bool = True
) -> Path:
    """The local file of a registry name, without torch: the shipped file, or the official
    one downloaded (:func:`mattingkit.weights.download.fetch`). What ``mattingkit download`` runs;
    :func:`mattingkit.weights.pretrained.fetch_weights` is the same with a ``Weights`` entry."""
    from mattingkit.runtime import asset_path
    from mattingkit.weights.download import fetch

    key = resolve_name(name)
    if key is None:
        raise KeyError(unknown_name_message(name))
    filename = _NAMES[key]
    if filename == SHIPPED_FILENAME:
        return require_shipped(asset_path("weights", SHIPPED_FILENAME))
    return fetch(filename, **official_sources(filename), cache_dir=cache_dir, progress=progress)


def is_shipped(weights: object) -> bool:
    """Whether weights given by name, alias or path are mattingkit's shipped model."""
    if weights is None:
        return False
    if resolve_name(str(weights)) == Path(SHIPPED_FILENAME).stem:
        return True
    from mattingkit.runtime import asset_path

    try:
        return Path(str(weights)).expanduser().samefile(asset_path("weights", SHIPPED_FILENAME))
    except OSError:
        return False


def shipped_quality_warning() -> str:
    """The one warning after results made with the shipped model (the ``mattingkit``
    command's report and the demo's print it; ``--weights`` is an option of both)."""
    return (
        f"These results come from {SHIPPED_LABEL}, a small model trained offline on synthetic "
        "data: far below the official weights in quality (on real photos expect holes, "
        "specks and parts of the subject left almost transparent). For real footage use "
        "--weights resnet50 or --weights mobilenetv2 (downloaded once)."
    )


def shipped_card() -> dict[str, Any]:
    """The shipped model's measured card (``assets/weights/*.json``, written by
    ``scripts/train_shipped_model.py``): chapters print its numbers instead of quoting them."""
    import json

    from mattingkit.runtime import asset_path

    path = require_shipped(asset_path("weights", SHIPPED_FILENAME)).with_suffix(".json")
    return json.loads(path.read_text())


#: How the card names the methods it scores (its keys are ``"<method>/<plate>"``).
_CARD_METHODS = {
    "difference_key": "difference keying",
    "none": "no refinement",
    "sampling": "sampling",
    "thresholding": "thresholding",
    "full": "full",
}


def shipped_card_lines(previous: bool = True) -> list[str]:
    """The card's held-out table as aligned text lines: MSE x 10^3 and SAD in the trimap band
    and the holes, per plate and method, with the MSE of the shipped models before it beside
    (*previous*: the one this model continued; *earlier*: the one before that, when the card
    has it)."""
    card = shipped_card()
    metrics = card["metrics"]
    columns = [
        (name, card[f"{name}_metrics"])
        for name in ("previous", "earlier")
        if previous and card.get(f"{name}_metrics")
    ]
    lines = [
        f"held-out synthetic set: {card['eval_count']} samples at "
        f"{card['eval_size']}x{card['eval_size']} (assets/weights/README.md)",
        f"{'plate':<10}{'method':<20}{'MSE x 10^3':>11}{'SAD':>8}{'holes':>8}"
        + "".join(f"{name + ' MSE':>14}" for name, _ in columns),
    ]
    for key, scores in metrics.items():
        method, plate = key.split("/")
        line = (
            f"{plate:<10}{_CARD_METHODS[method]:<20}{scores['mse'] * 1e3:>11.1f}"
            f"{scores['sad']:>8.2f}{scores['holes']:>8.1%}"
        )
        if method != "difference_key":
            line += "".join(
                f"{other[key]['mse'] * 1e3:>14.1f}" if key in other else " " * 14
                for _, other in columns
            )
        lines.append(line)
    return lines


def require_shipped(path: Path) -> Path:
    """``path`` of the shipped weights, or the one message for a checkout without them."""
    if not path.is_file():
        raise FileNotFoundError(
            f"mattingkit's shipped weights are missing: {path}. Train them with "
            "`python scripts/train_shipped_model.py`, or use the official weights."
        )
    return path
