"""frpt-index / frpt-search end to end on the toy contract graph: the demo acceptance, bad input, --add, pictures."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss", reason="FAISS is not installed (pip install 'frpt-toolkit[search]')")

from PIL import Image
from runtime_toys import BAD_FILES, make_image_folder, make_toy_onnx
from typer.testing import CliRunner

from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from frpt_runtime.embed import embed_folder
from frpt_runtime.engine_sidecar import sha256_file
from frpt_runtime.metrics import recall_at_k, recall_from_embeddings
from frpt_runtime.search.cli import index_app, search_app
from frpt_runtime.search.pictures import BORDER, GREEN, GREY, QUERY_BLUE, RED, SheetLayout
from frpt_runtime.search.sidecar import sidecar_path

RUNNER = CliRunner()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A toy model, 12 good images in 3 class folders (+ 3 bad files), their frpt-embed output, a flat index."""
    root = tmp_path_factory.mktemp("search")
    model = root / "toy.onnx"
    make_toy_onnx(model)
    images = make_image_folder(root / "images", good=12)
    more = root / "more"
    for i in range(3):  # a second embedded folder for --add
        (more / "class0").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(50 + i).integers(0, 256, (18, 18, 3), np.uint8)).save(
            more / "class0" / f"extra{i}.png"
        )
    with OnnxRuntimeBackend(model) as backend:
        embed_folder(images, backend, root / "emb", batch=4)
        embed_folder(more, backend, root / "emb_more", batch=4)
    index = root / "gallery.index"
    built = RUNNER.invoke(index_app, ["build", str(root / "emb"), "-o", str(index)])
    assert built.exit_code == 0, built.output
    return {
        "root": root,
        "model": model,
        "images": images,
        "emb": root / "emb",
        "more": root / "emb_more",
        "index": index,
    }


def _search(*args: str) -> dict:
    res = RUNNER.invoke(search_app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    document = json.loads(res.stdout)
    assert document["command"] == "frpt-search"
    return document["result"]


def _fails(app, args: list[str], message: str) -> None:
    res = RUNNER.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1 and message in res.stderr, res.stderr


def test_demo_acceptance_own_image_is_rank_one(demo: dict[str, Path]) -> None:
    image = demo["images"] / "class1" / "img4.png"
    result = _search(str(image), "--index", str(demo["index"]), "--onnx", str(demo["model"]), "-k", "5")
    (query,) = result["queries"]
    top = query["hits"][0]
    assert Path(top["path"]) == image.resolve() and top["score"] >= 0.9999 and top["rank"] == 1
    assert query["label"] == "class1" and query["gallery_row"] == top["row"] and len(query["hits"]) == 5
    assert [h["same_label"] for h in query["hits"]] == [h["label"] == "class1" for h in query["hits"]]
    table = RUNNER.invoke(search_app, [str(image), "--index", str(demo["index"]), "--onnx", str(demo["model"])])
    assert table.exit_code == 0 and re.search(r"^\s+1\s+1\.0000\s+\S+img4\.png\s+class1$", table.stdout, re.M)
    assert "rank    score  path" in table.stdout and "k=10" in table.stdout
    own = _search(str(image), "--index", str(demo["index"]), "--onnx", str(demo["model"]), "--exclude-self")
    assert all(Path(h["path"]) != image.resolve() for h in own["queries"][0]["hits"])
    assert len(own["queries"][0]["hits"]) == 10


def test_recall_through_the_index_equals_frpt_eval_today(demo: dict[str, Path]) -> None:
    manifest = json.loads((demo["emb"] / "manifest.json").read_text())
    folders = [str(Path(p).parent) for p in manifest["images"]]
    labels = np.array([sorted(set(folders)).index(f) for f in folders])
    expected = recall_at_k(np.load(demo["emb"] / "embeddings.npy"), labels, (1, 2, 4, 8))
    assert recall_from_embeddings(demo["emb"]) == {**expected, "images": 12, "classes": 3}


def test_query_folder_skips_and_lists_bad_files(demo: dict[str, Path]) -> None:
    result = _search(str(demo["images"]), "--index", str(demo["index"]), "--onnx", str(demo["model"]), "-k", "3")
    assert len(result["queries"]) == 12 and {Path(p).name for p, _ in result["skipped"]} == BAD_FILES
    reasons = {Path(p).name: why for p, why in result["skipped"]}
    assert reasons["empty.png"] == "zero-byte file"
    assert all(q["hits"][0]["score"] >= 0.9999 and q["label"] == Path(q["path"]).parent.name for q in result["queries"])
    args = [str(demo["images"]), "--index", str(demo["index"]), "--onnx", str(demo["model"])]
    table = RUNNER.invoke(search_app, args)
    assert "skipped 3 query files:" in table.stdout and "empty.png: zero-byte file" in table.stdout


def test_embedded_queries_need_no_model_and_image_queries_do(demo: dict[str, Path]) -> None:
    result = _search(str(demo["emb"]), "--index", str(demo["index"]), "-k", "2", "--exclude-self")
    assert len(result["queries"]) == 12 and all(q["gallery_row"] is not None for q in result["queries"])
    assert all(h["row"] != q["gallery_row"] for q in result["queries"] for h in q["hits"])
    _fails(search_app, [str(demo["images"]), "--index", str(demo["index"])], "pass --onnx MODEL.onnx")


def test_bad_input_is_one_line_exit_2(demo: dict[str, Path], tmp_path: Path) -> None:
    root, index = demo["root"], demo["index"]
    other = tmp_path / "other.onnx"
    make_toy_onnx(other, seed=1)
    image = str(demo["images"] / "class0" / "img0.jpg")
    _fails(search_app, [image, "--index", str(index), "--onnx", str(other)], "but the index was built with")
    with OnnxRuntimeBackend(other) as backend:  # an frpt-embed output of another model: refused too
        embed_folder(demo["images"] / "class0", backend, tmp_path / "other_emb", batch=4)
    _fails(search_app, [str(tmp_path / "other_emb"), "--index", str(index)], "the embeddings in")
    _fails(
        index_app,
        ["build", str(demo["emb"]), str(tmp_path / "other_emb"), "-o", str(tmp_path / "x.index")],
        "was embedded by another model",
    )
    _fails(search_app, [str(tmp_path / "nope.jpg"), "--index", str(index)], "query not found")
    _fails(search_app, [image, "--index", str(index), "--onnx", str(demo["model"]), "-k", "13"], "pass -k 1..12")

    copy = tmp_path / "copy.index"  # a truncated index file, then a sidecar that does not match it
    shutil.copy(index, copy)
    shutil.copy(sidecar_path(index), sidecar_path(copy))
    copy.write_bytes(index.read_bytes()[:100])
    _fails(search_app, [image, "--index", str(copy), "--onnx", str(demo["model"])], "truncated or replaced")
    shutil.copy(index, copy)
    facts = json.loads(sidecar_path(index).read_text())
    sidecar_path(copy).write_text(json.dumps({**facts, "dimension": 4}))
    _fails(search_app, [image, "--index", str(copy), "--onnx", str(demo["model"])], "differs in: dimension")
    _fails(search_app, [image, "--index", str(root / "none.index"), "--onnx", str(demo["model"])], "index not found")

    narrow = tmp_path / "narrow_emb"  # same model hash, another width: a mismatched dimension
    shutil.copytree(demo["emb"], narrow)
    np.save(narrow / "embeddings.npy", np.load(narrow / "embeddings.npy")[:, :4].copy())
    manifest = json.loads((narrow / "manifest.json").read_text())
    narrow_sha = hashlib.sha256((narrow / "embeddings.npy").read_bytes()).hexdigest()
    consistent = {**manifest, "embedding_dim": 4, "embeddings_sha256": narrow_sha}
    (narrow / "manifest.json").write_text(json.dumps(consistent))
    _fails(search_app, [str(narrow), "--index", str(index)], "but the index holds D=8")
    _fails(index_app, ["build", str(demo["emb"]), str(narrow), "-o", str(tmp_path / "y.index")], "D=4 vs")
    (narrow / "manifest.json").write_text(json.dumps({**manifest, "embeddings_sha256": narrow_sha}))  # says D=8
    _fails(index_app, ["build", str(narrow), "-o", str(tmp_path / "z.index")], "as manifest.json says")
    (narrow / "manifest.json").write_text(json.dumps(manifest))  # rows replaced behind the manifest's back
    _fails(index_app, ["build", str(narrow), "-o", str(tmp_path / "w.index")], "sha256 differs")
    _fails(
        index_app,
        ["build", str(demo["emb"]), "-o", str(tmp_path / "p.index"), "--kind", "hnsw", "--param", "ef"],
        "expected NAME=INTEGER",
    )
    _fails(index_app, ["build", str(demo["emb"]), "-o", str(tmp_path)], "is a folder")


def test_build_approximate_prints_recall_and_add_extends(demo: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "g.index"
    built = RUNNER.invoke(
        index_app, ["build", str(demo["emb"]), "-o", str(target), "--kind", "hnsw", "--param", "ef_search=64"]
    )
    assert built.exit_code == 0, built.output
    assert "recall@10 vs exact search: 1.0000 on 12 gallery images" in built.stdout and "ef_search=64" in built.stdout
    added = RUNNER.invoke(index_app, ["build", str(demo["more"]), "-o", str(target), "--add", "--json"])
    assert added.exit_code == 0, added.output
    report = json.loads(added.stdout)["result"]
    assert report["count"] == 15 and report["added"] == 3 and report["kind"] == "hnsw" and report["recall"]["k"] == 10
    assert report["params"]["ef_search"] == 64
    facts = json.loads(sidecar_path(target).read_text())
    assert facts["count"] == 15 and facts["paths"][-1].endswith("more/class0/extra2.png")
    assert facts["index_sha256"] == sha256_file(target) and facts["labels"][-3:] == ["class0"] * 3
    extra = demo["root"] / "more" / "class0" / "extra1.png"
    result = _search(str(extra), "--index", str(target), "--onnx", str(demo["model"]), "-k", "1")
    assert Path(result["queries"][0]["hits"][0]["path"]) == extra.resolve()
    _fails(index_app, ["build", str(demo["more"]), "-o", str(target), "--add"], "is already in the index")
    _fails(index_app, ["build", str(demo["emb"]), "-o", str(target), "--add", "--kind", "ivf"], "drop --kind ivf")
    _fails(index_app, ["build", str(demo["emb"]), str(demo["emb"]), "-o", str(tmp_path / "t.index")], "listed twice")


def test_sheet_and_html_geometry_and_colours(demo: dict[str, Path], tmp_path: Path) -> None:
    loose = tmp_path / "loose.png"  # outside the gallery and its folders: a query without a label
    shutil.copy(demo["images"] / "class2" / "img5.png", loose)
    queries = [str(demo["images"] / "class0" / "img3.jpg"), str(demo["images"] / "class1" / "img7.png"), str(loose)]
    sheet, page = tmp_path / "pics" / "results.png", tmp_path / "pics" / "results.html"
    (tmp_path / "pics").mkdir()
    result = _search(
        *queries,
        "--index",
        str(demo["index"]),
        "--onnx",
        str(demo["model"]),
        "-k",
        "4",
        "--sheet",
        str(sheet),
        "--html",
        str(page),
    )
    assert result["sheet"] == str(sheet) and result["html"] == str(page)
    layout = SheetLayout(rows=3, k=4)
    picture = Image.open(sheet)
    assert picture.format == "PNG" and picture.size == layout.size == (max(560, 8 + 5 * 128 + 16), 40 + 8 + 3 * 158)
    assert SheetLayout(rows=5, k=10).size == (8 + 11 * 128 + 16, 40 + 8 + 5 * 158)
    rgb = picture.convert("RGB")
    for row, query in enumerate(result["queries"]):
        left, top, _, _ = layout.frame(row, 0)
        assert rgb.getpixel((left + 1, top + BORDER // 2)) == QUERY_BLUE
        for hit in query["hits"]:
            left, top, right, bottom = layout.frame(row, hit["rank"])
            want = GREY if hit["same_label"] is None else GREEN if hit["same_label"] else RED
            for x, y in ((left + 1, top + 1), (right - 1, bottom - 1), ((left + right) // 2, top + BORDER - 1)):
                assert rgb.getpixel((x, y)) == want, (row, hit, x, y)
    colours = [h["same_label"] for q in result["queries"] for h in q["hits"]]
    assert True in colours and False in colours and result["queries"][2]["label"] is None
    assert all(h["same_label"] is None for h in result["queries"][2]["hits"])
    text = page.read_text()
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert len(sources) == 3 * 5 and not any(s.startswith("/") for s in sources)
    assert all((page.parent / s).resolve().is_file() for s in sources)
    assert sources[0] == Path(os.path.relpath(queries[0], page.parent)).as_posix()
    assert "border-color:#00a03c" in text and "border-color:#dc1e1e" in text and "border-color:#969696" in text
    _fails(
        search_app,
        [queries[0], "--index", str(demo["index"]), "--onnx", str(demo["model"]), "--sheet", str(tmp_path)],
        "--sheet",
    )


def test_sheet_caps_its_rows_and_draws_missing_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import frpt_runtime.search.pictures as contact_sheet
    from frpt_runtime.search import Hit, QueryResult, SearchReport

    monkeypatch.setattr(contact_sheet, "SHEET_MAX_ROWS", 2)
    missing = str(tmp_path / "gone.png")  # an image deleted since it was indexed: a grey "unreadable" tile
    queries = [QueryResult(missing, "a", None, [Hit(1, 0.5, 0, missing, "a", True)]) for _ in range(3)]
    report = SearchReport(tmp_path / "g.index", "flat", 1, 8, None, 1, False, queries, [])
    sheet = contact_sheet.write_sheet(report, tmp_path / "s.png")
    picture = Image.open(sheet).convert("RGB")
    assert picture.size == SheetLayout(rows=2, k=1).size
    left, top, _, _ = SheetLayout(rows=2, k=1).frame(1, 1)
    assert picture.getpixel((left + 1, top + 1)) == GREEN
    assert picture.getpixel((left + BORDER + 2, top + BORDER + 2)) == (225, 225, 225)
