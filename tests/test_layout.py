"""The package's layers, checked: the teaching core stays readable on its own, nothing imports
upwards, and ``import mattingkit`` stays light.

Layers, lowest first (a module may import its own layer and the ones below):
core -> outputs, runtime -> io, speed -> weights -> data -> training -> apps -> notebook.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mattingkit"

LAYERS = {
    "core": 0,
    "outputs": 1,
    "runtime": 1,
    "io": 2,
    "speed": 2,
    "weights": 3,
    "data": 4,
    "training": 5,
    "apps": 6,
    "train": 6,  # the ``python -m mattingkit.train`` entry point
    "notebook": 7,
    "__main__": 7,
}
CORE_MAY_IMPORT = {"torch", "torchvision", "mattingkit"}
HEAVY = ("cv2", "av", "ipywidgets", "anywidget", "matplotlib", "PIL", "gdown", "tqdm", "IPython")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in a file, including those inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == "mattingkit":  # from mattingkit import core
                found += [(node.lineno, f"mattingkit.{alias.name}") for alias in node.names]
    return found


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "mattingkit" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer():
    for path in package_files():
        relative = path.relative_to(PACKAGE)
        if relative.name == "__init__.py" and relative.parent == Path("."):
            continue  # the package root: lazy public names only
        top = relative.parts[0].removesuffix(".py")
        assert top in LAYERS, f"{relative}: put it in a layer (tests/test_layout.py LAYERS)"


def test_the_core_imports_only_torch_torchvision_and_itself():
    stdlib = set(sys.stdlib_module_names)
    for path in sorted((PACKAGE / "core").glob("*.py")):
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            if top in stdlib or top == "__future__":
                continue
            assert top in CORE_MAY_IMPORT, f"core/{path.name}:{line} imports {module}"
            if top == "mattingkit":
                assert module.startswith("mattingkit.core"), (
                    f"core/{path.name}:{line} imports {module}: the core imports only itself"
                )


def test_nothing_imports_a_higher_layer():
    problems = []
    for path in package_files():
        relative = path.relative_to(PACKAGE)
        own = LAYERS.get(relative.parts[0].removesuffix(".py"))
        if own is None:
            continue
        for line, module in imported_modules(path):
            layer = layer_of(module)
            if layer is not None and layer > own:
                problems.append(f"{relative}:{line} imports {module}")
    assert not problems, "imports upwards:\n" + "\n".join(problems)


def test_the_planted_violations_are_caught(tmp_path):
    """The checks above can fail: an upward and a heavy import are found."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import cv2\n"
        "def f():\n"
        "    from mattingkit.notebook import plotting\n"
        "from mattingkit import apps\n"
    )
    found = imported_modules(planted)
    assert (1, "cv2") in found
    assert layer_of("mattingkit.notebook.plotting") == LAYERS["notebook"]
    assert (4, "mattingkit.apps") in found
    assert "cv2".split(".")[0] not in CORE_MAY_IMPORT


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_import_mattingkit_is_light():
    loaded = loaded_after("import mattingkit")
    assert "torch" not in loaded and "cv2" not in loaded and "matplotlib" not in loaded


@pytest.fixture(scope="module")
def torch_itself() -> set[str]:
    """What ``import torch, torchvision`` loads by itself (torchvision brings PIL, say)."""
    return loaded_after("import torch, torchvision")


@pytest.mark.parametrize(
    "module",
    ["matting", "backbones", "decoder", "model", "refiner", "losses", "paper"],
)
def test_the_core_loads_no_application_library(module, torch_itself):
    loaded = loaded_after(f"import mattingkit.core.{module}") - torch_itself
    heavy = sorted(name for name in loaded if name.split(".")[0] in HEAVY)
    assert not heavy, f"mattingkit.core.{module} loads {heavy}"
    outside = sorted(
        name
        for name in loaded
        if name.startswith("mattingkit.") and not name.startswith("mattingkit.core")
    )
    assert not outside, f"mattingkit.core.{module} loads {outside}"


def test_the_public_api_keeps_its_names():
    import mattingkit

    for name in ("Matter", "MattingRefine", "MattingBase", "load_pretrained", "TrainConfig"):
        assert name in mattingkit.__all__
    for name in mattingkit.__all__:
        assert getattr(mattingkit, name) is not None
    assert callable(mattingkit.train) and mattingkit.train.__name__ == "train"
    command = subprocess.run(
        [sys.executable, "-m", "mattingkit.train", "--help"], capture_output=True, text=True
    )
    assert command.returncode == 0 and "--stage" in command.stdout
