"""Matting in the browser: the web model, the pinned runtime, and ``mattingkit export --web``.

Chapter 08. The model runs where the camera is: onnxruntime-web (WebGPU where the browser
offers it, WebAssembly otherwise) mattes each frame in the page, and the page draws the
composite itself; no Python runs per frame, or at all for an exported page.

* :func:`export_web_model` writes the ONNX file the page runs: the project's own ONNX export
  (:func:`mattingkit.apps.export.export_onnx`, sampling refinement, opset 12) with its
  weights stored in fp16 (half the download) and cast to fp32 when the session loads, so
  every backend computes in fp32 (onnxruntime-web's WASM backend has few fp16 kernels).
* :func:`runtime_files` finds the pinned onnxruntime-web in ``static/web/node_modules``
  (``npm ci`` there installs it); a missing file is an error that says what to run.
* :func:`export_web` writes a self-contained static folder (page, model, runtime) that
  mattes a webcam in any modern browser without Python. Serve it over http(s)
  (``python -m http.server -d DIR``): browsers load WebAssembly and open cameras only from
  a served page (``localhost`` counts as secure), never from ``file://``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

__all__ = [
    "CHUNK_BYTES",
    "RUNTIME_FILES",
    "WEB_SETTINGS",
    "RuntimeMissing",
    "WebModelCheck",
    "cached_web_model",
    "check_web_model",
    "chunks",
    "export_web",
    "export_web_model",
    "fp16_weights",
    "install_command",
    "runtime_files",
    "runtime_integrity",
    "runtime_version",
]

PathLike = Union[str, os.PathLike]

#: Where the pinned runtime lives (package.json, package-lock.json; node_modules git-ignored).
WEB_STATIC = Path(__file__).resolve().parents[1] / "notebook" / "static" / "web"
RUNTIME_PACKAGE = "onnxruntime-web"
#: The runtime files a page needs: the script (WebAssembly and WebGPU backends) and the
#: WebAssembly build it loads (the JSEP build, which carries the WebGPU kernels too).
RUNTIME_FILES = (
    "ort.min.js",
    "ort-wasm-simd-threaded.jsep.mjs",
    "ort-wasm-simd-threaded.jsep.wasm",
)
#: The page's own files, copied next to the runtime.
PAGE_FILES = ("index.html", "mattingkit-web.js", "page.js")

#: The model's fixed settings in the browser: traced at 640×480 with that size's share of
#: refined pixels (:func:`mattingkit.core.paper.scaled_settings`), so at 320×240 the same
#: file refines a larger share (a traced file fixes the number of patches).
WEB_SETTINGS: dict[str, Any] = {
    "export_size": (480, 640),
    "refine_sample_pixels": 11_856,
    "backbone_scale": 0.25,
    "opset": 12,
}


class RuntimeMissing(FileNotFoundError):
    """The pinned onnxruntime-web is not installed next to the package."""


# --------------------------------------------------------------------------------------
# The runtime
# --------------------------------------------------------------------------------------
def runtime_version() -> str:
    """The pinned onnxruntime-web version (package.json), whether installed or not."""
    manifest = json.loads((WEB_STATIC / "package.json").read_text())
    return manifest["dependencies"][RUNTIME_PACKAGE]


def install_command() -> str:
    """The shell command that installs the pinned runtime (what ``.ci/run`` runs)."""
    return f"cd {WEB_STATIC} && npm ci --ignore-scripts"


def runtime_files() -> dict[str, Path]:
    """The installed runtime files by name; :class:`RuntimeMissing` names what is missing.

    The installed version must be the pinned one: a page and its tests must run what CI runs.
    """
    dist = WEB_STATIC / "node_modules" / RUNTIME_PACKAGE / "dist"
    for name in RUNTIME_FILES:
        if not (dist / name).is_file():
            raise RuntimeMissing(
                f"the browser runtime is not installed ({dist / name} is missing): "
                f"run `{install_command()}` (needs Node.js and npm; see README, chapter 08)"
            )
    installed = json.loads((dist.parent / "package.json").read_text())["version"]
    if installed != runtime_version():
        raise RuntimeMissing(
            f"{RUNTIME_PACKAGE} {installed} is installed in {dist.parent}, but "
            f"{runtime_version()} is pinned: run `{install_command()}`"
        )
    return {name: dist / name for name in RUNTIME_FILES}


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------
def fp16_weights(proto: Any, min_elements: int = 16) -> Any:
    """``proto`` with its float32 weights stored as float16 and cast back on load.

    Every float32 initializer with at least ``min_elements`` values becomes a float16 one
    plus a ``Cast`` to float32 under the old name, so the graph computes in fp32 as before:
    the file is half the size, and onnxruntime folds the casts when the session loads (no
    cost per frame). Names and doc strings of nodes are dropped (they are most of what is
    not weights; onnxruntime never needs them). Modifies and returns ``proto``.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        if values.size < min_elements:
            continue
        name = init.name
        half = numpy_helper.from_array(values.astype(np.float16), f"{name}.fp16")
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [half.name], [name], to=TensorProto.FLOAT))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    _short_names(graph)
    return proto


def _short_names(graph: Any) -> None:
    """Drop node names and doc strings and give inner values short names (``v0``, ``v1``,
    ...): torch's long names are most of what is not weights, and no runtime needs them.
    The graph's inputs and outputs keep their names."""
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    renamed: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return renamed.setdefault(name, f"v{len(renamed)}")

    for init in graph.initializer:
        init.name = short(init.name)
    for node in graph.node:
        node.name, node.doc_string = "", ""
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    for info in graph.value_info:
        info.name = short(info.name)


def export_web_model(
    model: Any, path: PathLike, *, precision: str = "fp16", overwrite: bool = False
) -> Path:
    """Write the ONNX file the browser runs (see :data:`WEB_SETTINGS`); returns the path.

    ``precision="fp16"`` stores the weights in half precision (half the file, computed in
    fp32 all the same; :func:`check_web_model` measures the difference), ``"fp32"`` keeps
    them as exported.
    """
    import onnx

    from mattingkit.apps.export import export_onnx
    from mattingkit.io import atomic_write

    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be 'fp16' or 'fp32', got {precision!r}")
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = export_onnx(
            model,
            Path(scratch) / "fp32.onnx",
            opset=WEB_SETTINGS["opset"],
            refine_mode="sampling",
            refine_sample_pixels=WEB_SETTINGS["refine_sample_pixels"],
            backbone_scale=WEB_SETTINGS["backbone_scale"],
            export_size=WEB_SETTINGS["export_size"],
        )
        proto = onnx.load(str(fp32))
    if precision == "fp16":
        proto = fp16_weights(proto)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "mattingkit.weights_precision", precision
    onnx.checker.check_model(proto)
    with atomic_write(path, "wb", overwrite=overwrite) as f:
        f.write(proto.SerializeToString())
    return path


@dataclass
class WebModelCheck:
    """The web model against fp32 PyTorch on the same frame/plate pair (onnxruntime, CPU)."""

    size: tuple[int, int]
    pha_max_abs: float
    pha_mean_abs: float
    fgr_max_abs: float
    bytes: int
    pha_far_share: float = 0.0  # share of alpha values off by > 0.05 (a patch choice tipped)

    def __str__(self) -> str:
        return (
            f"web model ({self.bytes / 1e6:.2f} MB) at {self.size[0]}×{self.size[1]}: alpha "
            f"max {self.pha_max_abs:.2e}, mean {self.pha_mean_abs:.2e} from fp32 PyTorch, "
            f"{self.pha_far_share:.3%} of it off by more than 0.05"
        )


def check_web_model(
    path: PathLike, model: Any, size: tuple[int, int] = (240, 320), seed: int = 0
) -> WebModelCheck:
    """Measure the web model's alpha against fp32 PyTorch (the same settings, see
    :func:`mattingkit.apps.export.validate_export`), with onnxruntime on the CPU."""
    from mattingkit.apps.export import validate_export

    check = validate_export(path, model, size=size, seed=seed)
    return WebModelCheck(
        size=size,
        pha_max_abs=check.max_abs["pha"],
        pha_mean_abs=check.mean_abs["pha"],
        fgr_max_abs=check.max_abs["fgr"],
        bytes=Path(path).stat().st_size,
        pha_far_share=check.far_share["pha"],
    )


# --------------------------------------------------------------------------------------
# The static page
# --------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_target(folder: Path, overwrite: bool) -> None:
    """Refuse to replace a non-empty folder (or a file) unless ``overwrite`` says so."""
    if folder.is_file():
        raise FileExistsError(f"{folder} is a file, not a folder; choose another name")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{folder} already exists and is not empty; pass overwrite=True to replace it"
        )


def export_web(
    folder: PathLike,
    model: Any = None,
    *,
    precision: str = "fp16",
    overwrite: bool = False,
    title: str = "mattingkit: live background matting",
) -> Path:
    """Write a static page that mattes a webcam in the browser, without Python; returns it.

    Chapter 08. ``folder`` gets ``index.html`` with its scripts, ``ort/`` (the pinned
    onnxruntime-web) and ``model/`` (:func:`export_web_model`, its file name carrying its
    hash so the page's cache never serves an old model). Serve it over http(s) and open it:
    Start camera, step out of view, Capture plate, step back in, choose a background.

    The folder is built in a temporary folder beside it and renamed into place, so it is
    either complete or absent. An existing non-empty folder is replaced only with
    ``overwrite=True``. ``model``: anything :func:`~mattingkit.apps.export.export_onnx`
    takes; default: the shipped model.
    """
    folder = Path(folder).absolute()
    _check_target(folder, overwrite)
    runtime = runtime_files()  # before the slow export: a missing runtime fails at once
    if model is None:
        from mattingkit.weights.pretrained import load_pretrained

        model = load_pretrained("mattingkit")
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        _write_page(scratch, model, runtime, precision, title)
        _move_into_place(scratch, folder, overwrite)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return folder


def _write_page(
    scratch: Path, model: Any, runtime: dict[str, Path], precision: str, title: str
) -> None:
    """Fill ``scratch`` with the page, the runtime and the model."""
    (scratch / "ort").mkdir()
    for name, source in runtime.items():
        shutil.copyfile(source, scratch / "ort" / name)
    (scratch / "model").mkdir()
    staged = export_web_model(model, scratch / "model" / "staged.onnx", precision=precision)
    digest = _sha256(staged)
    model_path = staged.rename(scratch / "model" / f"matting-{precision}-{digest[:12]}.onnx")
    config = {
        "title": title,
        "model": {
            "url": f"model/{model_path.name}",
            "sha256": digest,
            "bytes": model_path.stat().st_size,
            "precision": precision,
            **{k: v for k, v in WEB_SETTINGS.items() if k != "export_size"},
        },
        "runtime": {"package": RUNTIME_PACKAGE, "version": runtime_version(), "path": "ort/"},
        "sizes": [[240, 320], [480, 640]],
    }
    for name in PAGE_FILES:
        text = (WEB_STATIC / name).read_text(encoding="utf-8")
        if name == "index.html":
            text = text.replace("{{TITLE}}", title).replace(
                "{{CONFIG}}", json.dumps(config, indent=2).replace("</", "<\\/")
            )
        (scratch / name).write_text(text, encoding="utf-8")
    (scratch / "mattingkit-web.json").write_text(json.dumps(config, indent=2) + "\n")


def _move_into_place(scratch: Path, folder: Path, overwrite: bool) -> None:
    """Rename the finished ``scratch`` onto ``folder``; an old folder goes only after."""
    old = None
    if folder.is_dir():
        if any(folder.iterdir()):
            if not overwrite:  # made meanwhile
                raise FileExistsError(f"{folder} appeared while exporting; nothing was replaced")
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            folder.rename(old)
        else:
            folder.rmdir()  # an empty folder the user made for it
    scratch.chmod(0o755)  # mkdtemp made it private; a web server must read it
    scratch.rename(folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------
# What chapter 08's widget sends to the page (browser mode)
# --------------------------------------------------------------------------------------
#: Pieces of a file sent to the page in widget messages: under the ~1 MB a comm message
#: should stay below (Jupyter's and Colab's websockets take larger ones, slowly).
CHUNK_BYTES = 900_000


def runtime_integrity() -> dict[str, Any]:
    """The pinned runtime's CDN folder and, per file, its size, SHA-256 and SRI hash.

    Committed (``static/web/runtime-integrity.json``, checked against ``node_modules`` by
    the tests), so a page with internet can fetch the runtime from the CDN, verified by the
    browser (``integrity``), even where ``npm ci`` never ran.
    """
    return json.loads((WEB_STATIC / "runtime-integrity.json").read_text())


def _weights_key(model: Any) -> str:
    """A short hash of a model's weights: the cache key of its web model."""
    from mattingkit.apps.export import _unwrap

    digest = hashlib.sha256()
    for name, tensor in sorted(_unwrap(model).state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def cached_web_model(model: Any, folder: PathLike | None = None) -> Path:
    """The web model (fp16 weights) of ``model``, exported once per weights and kept in
    ``folder`` (default: ``<cache_dir()>/web``): the export takes seconds to a minute."""
    from mattingkit.weights.download import cache_dir

    folder = Path(folder) if folder is not None else cache_dir() / "web"
    path = (
        folder / f"matting-fp16-{_weights_key(model)}-r{WEB_SETTINGS['refine_sample_pixels']}.onnx"
    )
    if not path.is_file():
        export_web_model(model, path, precision="fp16", overwrite=True)
    return path


def chunks(data: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    """``data`` in pieces of at most ``size`` bytes (at least one piece)."""
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]
