"""The names in the weights registry, importable without torch.

The ``mattingkit`` command checks ``--weights NAME`` and ``mattingkit download NAME`` against
these names before it imports torch (seconds on a fast machine, minutes on a loaded one), so
a typo fails at once. :mod:`mattingkit.pretrained` builds its registry on the same names and
resolves them with :func:`resolve_name`; ``tests/test_pretrained.py`` checks the two agree.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ALIASES",
    "FILENAMES",
    "SHIPPED_FILENAME",
    "resolve_name",
    "unknown_name_message",
    "unknown_weights_message",
]

#: mattingkit's own small model, shipped in ``assets/weights/``.
SHIPPED_FILENAME = "mattingkit_mobilenetv2_fp16.pth"

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
