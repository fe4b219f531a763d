"""mattingkit.apps.web: the browser's model (fp16 weights), the pinned runtime, the static page.

The page itself runs in a real browser in tests/test_web_page_browser.py; here, without a
browser: the file the page runs (half the size, alpha close to fp32 PyTorch), what the
export writes, and that it never leaves half a folder or replaces one without being asked.
"""

from __future__ import annotations

import hashlib
import json
import math
import re

import pytest
from browser_helpers import require_web_runtime

from mattingkit import load_pretrained
from mattingkit.apps import web

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model():
    return load_pretrained("mattingkit")


@pytest.fixture(scope="module")
def web_models(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("web_models")
    return {
        precision: web.export_web_model(model, folder / f"{precision}.onnx", precision=precision)
        for precision in ("fp32", "fp16")
    }


def test_fp16_weights_halve_the_file_and_keep_the_alpha(web_models, model):
    fp32, fp16 = web_models["fp32"], web_models["fp16"]
    # Measured: 20,059,399 and 10,023,772 bytes (49.97 %).
    assert fp16.stat().st_size <= 0.5 * fp32.stat().st_size
    proto = onnx.load(str(fp16))
    assert [i.name for i in proto.graph.input] == ["src", "bgr"]
    assert {o.name for o in proto.graph.output} >= {"pha", "fgr"}
    big = [i for i in proto.graph.initializer if math.prod(i.dims) >= 16]
    assert {i.data_type for i in big} == {onnx.TensorProto.FLOAT16}  # every weight tensor
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["mattingkit.weights_precision"] == "fp16"
    assert meta["mattingkit.refine_sample_pixels"] == str(web.WEB_SETTINGS["refine_sample_pixels"])
    # Alpha against fp32 PyTorch (same settings, onnxruntime on the CPU), at 320×240.
    # Measured: fp32 file max 2.7e-6; fp16 weights mean 3.5e-5, and 0.005 % of the pixels
    # (4 of 76,800) off by up to 0.24: fp16 rounding tipped the choice of one 4x4 patch in a
    # near tie of the error map, so the max alone says little; a broken cast moves them all.
    exact = web.check_web_model(fp32, model)
    assert exact.pha_max_abs < 1e-4, str(exact)
    half = web.check_web_model(fp16, model)
    print(f"\n{exact}\n{half}")
    assert half.pha_mean_abs < 1e-3 and half.pha_far_share < 1e-3, str(half)


def test_the_runtime_is_the_pinned_one():
    require_web_runtime()
    files = web.runtime_files()
    assert set(files) == set(web.RUNTIME_FILES)
    lock = json.loads((web.WEB_STATIC / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/onnxruntime-web"]
    assert pinned["version"] == web.runtime_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", web.runtime_version())  # exact, no range
    assert pinned["integrity"].startswith("sha512-")


def test_the_cdn_hashes_are_those_of_the_installed_runtime():
    """The committed SRI/SHA-256 hashes (what a page checks the CDN's files against) are
    the pinned package's own."""
    require_web_runtime()
    import base64

    integrity = web.runtime_integrity()
    assert integrity["version"] == web.runtime_version()
    assert integrity["cdn"].endswith(f"onnxruntime-web@{web.runtime_version()}/dist/")
    for name, path in web.runtime_files().items():
        data = path.read_bytes()
        entry = integrity["files"][name]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        sri = "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
        assert entry["integrity"] == sri and entry["bytes"] == len(data)


def test_a_missing_runtime_names_the_file_and_the_command(tmp_path, monkeypatch):
    (tmp_path / "package.json").write_text((web.WEB_STATIC / "package.json").read_text())
    monkeypatch.setattr(web, "WEB_STATIC", tmp_path)
    with pytest.raises(web.RuntimeMissing) as error:
        web.export_web(tmp_path / "page")
    assert str(tmp_path / "node_modules/onnxruntime-web/dist/ort.min.js") in str(error.value)
    assert f"cd {tmp_path} && npm ci --ignore-scripts" in str(error.value)
    assert not (tmp_path / "page").exists()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    require_web_runtime()
    return web.export_web(tmp_path_factory.mktemp("web_page") / "page")


def test_the_page_is_self_contained(page):
    names = {p.relative_to(page).as_posix() for p in page.rglob("*") if p.is_file()}
    config = json.loads((page / "mattingkit-web.json").read_text())
    model = page / config["model"]["url"]
    assert names == {
        *web.PAGE_FILES,
        "mattingkit-web.json",
        *(f"ort/{name}" for name in web.RUNTIME_FILES),
        config["model"]["url"],
    }
    assert hashlib.sha256(model.read_bytes()).hexdigest() == config["model"]["sha256"]
    assert config["model"]["sha256"][:12] in model.name  # a new model is a new URL
    assert config["runtime"]["version"] == web.runtime_version()
    html = (page / "index.html").read_text()
    assert "{{" not in html and config["model"]["url"] in html
    # Everything it loads is its own: no address outside the folder.
    for name in ("index.html", "page.js", "mattingkit-web.js"):
        assert not re.search(r"(src|href)=\"(https?:)?//", (page / name).read_text())
    for name, source in web.runtime_files().items():
        assert (page / "ort" / name).read_bytes() == source.read_bytes()


def test_export_refuses_a_non_empty_folder_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty; pass overwrite=True"):
        web.export_web(mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]

    def fails(scratch, *args):
        (scratch / "index.html").write_text("half a page")
        raise RuntimeError("export failed")

    monkeypatch.setattr(web, "_write_page", fails)
    with pytest.raises(RuntimeError, match="export failed"):
        web.export_web(tmp_path / "new", model=object())
    with pytest.raises(RuntimeError, match="export failed"):
        web.export_web(mine, model=object(), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folders
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]  # untouched

    monkeypatch.setattr(web, "_write_page", lambda scratch, *a: (scratch / "index.html").touch())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert web.export_web(empty, model=object()) == empty  # an empty folder is fine
    web.export_web(mine, model=object(), overwrite=True)
    assert [p.name for p in mine.iterdir()] == ["index.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "mine"]
