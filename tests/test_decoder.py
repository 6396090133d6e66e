"""The decoder's geometry and its two modes (``exact`` | ``fast``), and memory bounded by the output.

``exact`` must stay torchvision's ``Resize + CenterCrop`` pixels (today's) on ordinary images; only images whose
resized form would be huge resize their crop box alone (issue 9: a 243-byte 1 x 40000 PNG peaked at 3.8 GB RSS).
``fast`` decodes JPEGs at a DCT-domain draft no smaller than 2x the resize target and resizes the crop box alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from frpt_runtime.families.frpt import FRPTConfig
from frpt_runtime.images import FULL_RESIZE_MAX_AREA, ImageDecodeError, load_image

REPO = Path(__file__).resolve().parents[1]


def _photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 ``[H, W, 3]``: scikit-image's astronaut resized, plus noise (no symmetry to hide shifts)."""
    from skimage import data

    base = Image.fromarray(data.astronaut()).resize((width, height), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(seed).integers(-8, 9, (height, width, 3))
    return np.clip(np.asarray(base, np.int16) + noise, 0, 255).astype(np.uint8)


def _torchvision(path: Path, size: int, crop: float) -> np.ndarray:
    tv = pytest.importorskip("torchvision.transforms")
    ref = tv.Compose([tv.Resize(round(size / crop), interpolation=tv.InterpolationMode.BICUBIC), tv.CenterCrop(size)])
    return np.asarray(ref(Image.open(path).convert("RGB")))


@pytest.mark.parametrize(("width", "height"), [(500, 375), (375, 500), (641, 213), (150, 449), (37, 37), (146, 200)])
@pytest.mark.parametrize("crop", [0.875, 1.0])
def test_exact_is_torchvision_bit_for_bit_on_ordinary_images(tmp_path: Path, width: int, height: int, crop: float):
    """Resize rule (shorter side to round(S / crop), longer truncated), pass order and rounding: identical pixels."""
    for ext in ("png", "jpg"):
        path = tmp_path / f"a.{ext}"
        Image.fromarray(_photo(width, height)).save(path)
        for size in (32, 128):
            np.testing.assert_array_equal(load_image(path, size, crop, "exact"), _torchvision(path, size, crop))


def _record_resizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Every PIL resize as ``(input size, output size)``."""
    calls: list[tuple[tuple[int, int], tuple[int, int]]] = []
    resize = Image.Image.resize

    def recording(self: Image.Image, size, *args, **kwargs):
        calls.append((self.size, tuple(size)))
        return resize(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", recording)
    return calls


@pytest.mark.parametrize("decoder", ["exact", "fast"])
def test_thin_image_resizes_only_its_crop_box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decoder: str) -> None:
    """1 x 40000 and 40000 x 1: no resize output above FULL_RESIZE_MAX_AREA x S^2 (the full one is 146 x 5.8 M)."""
    rng = np.random.default_rng(0)
    for shape in ((40000, 1, 3), (1, 40000, 3)):
        path = tmp_path / f"thin_{shape[0]}.png"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
        calls = _record_resizes(monkeypatch)
        out = load_image(path, 128, 0.875, decoder)
        assert out.shape == (128, 128, 3) and calls
        assert all(w * h <= FULL_RESIZE_MAX_AREA * 128 * 128 for _, (w, h) in calls), calls


def test_thin_png_peak_memory_stays_small() -> None:
    """The issue's case, in a fresh process: peak RSS grows by < 150 MiB (it was 3.6 GiB)."""
    script = f"""
import resource, sys
sys.path[:0] = [{str(REPO / "runtime")!r}]
import numpy as np, tempfile, os
from PIL import Image
from frpt_runtime.images import load_image
path = os.path.join(tempfile.mkdtemp(), "thin.png")
Image.fromarray(np.zeros((40000, 1), np.uint8)).save(path)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for decoder in ("exact", "fast"):
    load_image(path, 128, 0.875, decoder)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    grown_mib = float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert grown_mib < 150, f"decoding a 1 x 40000 PNG grew the peak RSS by {grown_mib:.0f} MiB"


def test_exact_stays_close_to_torchvision_on_extreme_aspect(tmp_path: Path) -> None:
    """Beyond the full-resize bound (aspect > ~3:1) only the crop box is resized: pixels differ by rounding."""
    path = tmp_path / "strip.png"
    Image.fromarray(_photo(900, 90)).save(path)
    diff = np.abs(load_image(path, 64, 0.875, "exact").astype(int) - _torchvision(path, 64, 0.875))
    assert diff.max() <= 2 and diff.mean() < 0.05


def test_fast_drafts_jpegs_to_no_less_than_twice_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """1600 x 1200 JPEG: 1/4 draft at 128 px (shorter side 300 >= 2 x 146), 1/2 at 224 px (600 >= 2 x 256)."""
    path = tmp_path / "photo.jpg"
    Image.fromarray(_photo(1600, 1200)).save(path, quality=92)
    for size, drafted in ((128, (400, 300)), (224, (800, 600))):
        calls = _record_resizes(monkeypatch)
        fast = load_image(path, size, 0.875, "fast")
        assert [source for source, _ in calls] == [drafted] and calls[0][1] == (size, size)
        diff = np.abs(fast.astype(int) - load_image(path, size, 0.875, "exact"))
        assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 8, (size, diff.mean())
    png = tmp_path / "photo.png"
    Image.fromarray(_photo(1600, 1200)).save(png)
    calls = _record_resizes(monkeypatch)
    load_image(png, 128, 0.875, "fast")
    assert [source for source, _ in calls] == [(1600, 1200)]  # no draft outside JPEG


@pytest.mark.parametrize("orientation", range(1, 9))
def test_fast_keeps_exif_orientation_and_geometry(tmp_path: Path, orientation: int) -> None:
    """A 1203 x 901 JPEG (not a multiple of its 1/4 draft) under each EXIF orientation: the same picture as the exact
    decode (a draft misplaced by its partly filled last pixel differs by a mean of 1.7 to 5.4 levels here)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_photo(1203, 901)).save(tmp_path / "o.jpg", exif=exif, quality=95)
    for crop in (0.875, 1.0):
        fast = load_image(tmp_path / "o.jpg", 64, crop, "fast").astype(int)
        assert np.abs(fast - load_image(tmp_path / "o.jpg", 64, crop, "exact")).mean() < 0.6, crop


def test_fast_decode_budget_counts_the_drafted_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pixel budget is what is decoded: over it at full scale (exact refuses), well under it as a draft."""
    path = tmp_path / "big.jpg"
    Image.fromarray(_photo(1600, 1200)).save(path)
    Image.new("CMYK", (1600, 1200), (10, 80, 160, 20)).save(tmp_path / "cmyk.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(ImageDecodeError, match="exceeds the limit"):
        load_image(path, 128, 0.875, "exact")
    with pytest.warns(Image.DecompressionBombWarning):
        assert load_image(path, 128, 0.875, "fast").shape == (128, 128, 3)
        assert load_image(tmp_path / "cmyk.jpg", 128, 0.875, "fast").shape == (128, 128, 3)


def test_decoder_is_part_of_the_config_and_old_files_read_exact() -> None:
    assert FRPTConfig().decoder == "fast" and FRPTConfig.from_json(FRPTConfig().to_json()).decoder == "fast"
    old = FRPTConfig().to_dict()
    del old["decoder"]  # a config written before the field existed
    assert FRPTConfig.from_dict(old).decoder == "exact"
    with pytest.raises(ValueError, match="decoder"):
        FRPTConfig(decoder="draft")
    with pytest.raises(ValueError, match="decoder"):
        load_image("unused.png", 32, 0.875, "draft")


def test_manifest_records_the_decoder(tmp_path: Path) -> None:
    from runtime_toys import expected_embeddings, make_image_folder, make_toy_onnx, toy_metadata

    from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from frpt_runtime.embed import embed_folder

    folder = make_image_folder(tmp_path / "images")
    for decoder in ("exact", "fast"):
        meta = toy_metadata()
        meta["frpt.config"] = FRPTConfig.from_json(meta["frpt.config"]).replace(decoder=decoder).to_json()
        weights = make_toy_onnx(tmp_path / f"{decoder}.onnx", metadata=meta)
        with OnnxRuntimeBackend(tmp_path / f"{decoder}.onnx") as backend:
            embed_folder(folder, backend, tmp_path / decoder, batch=4, workers=2)
        assert json.loads((tmp_path / decoder / "manifest.json").read_text())["config"]["decoder"] == decoder
        if decoder == "fast":  # the toy folder's images are the default decoder's (fast) reference
            np.testing.assert_allclose(
                np.load(tmp_path / decoder / "embeddings.npy"), expected_embeddings(folder, weights)[1], atol=1e-5
            )


def test_pipelines_of_embed_and_search_decode_with_the_models_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """frpt-embed and frpt-search queries feed the model what its config's decoder gives (an index and its queries
    must see the same pixels)."""
    from runtime_toys import make_image_folder, make_toy_onnx, toy_metadata

    from frpt_runtime import pipeline
    from frpt_runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from frpt_runtime.image_files import list_images
    from frpt_runtime.search.queries import embed_images

    photo = tmp_path / "photo.jpg"
    Image.fromarray(_photo(1200, 900)).save(photo, quality=90)
    config = FRPTConfig(input_size=64, crop_pct=0.875)
    for decoder in ("exact", "fast"):
        with pipeline.BatchPipeline.for_config([photo], config.replace(decoder=decoder), batch=1, workers=1) as pool:
            got = next(iter(pool)).images[0]
        np.testing.assert_array_equal(got, load_image(photo, 64, 0.875, decoder))
    assert not np.array_equal(load_image(photo, 64, 0.875, "exact"), load_image(photo, 64, 0.875, "fast"))

    seen: list[str] = []
    real = pipeline.load_image
    monkeypatch.setattr(pipeline, "load_image", lambda *a, decoder: seen.append(decoder) or real(*a, decoder=decoder))
    meta = toy_metadata()
    meta["frpt.config"] = FRPTConfig.from_json(meta["frpt.config"]).replace(decoder="fast").to_json()
    make_toy_onnx(tmp_path / "fast.onnx", metadata=meta)
    paths = list_images(make_image_folder(tmp_path / "images", good=3))
    with OnnxRuntimeBackend(tmp_path / "fast.onnx") as backend:  # load_image's own default is exact
        kept, rows, _ = embed_images(paths, backend, batch=2, workers=1)
    assert kept and rows.shape[0] == len(kept) and seen and set(seen) == {"fast"}


def test_alpha_composite_in_strips_equals_the_whole_image() -> None:
    from frpt_runtime import images

    rng = np.random.default_rng(1)
    rgba = Image.fromarray(rng.integers(0, 256, (images._STRIP_ROWS * 2 + 37, 50, 4), dtype=np.uint8), mode="RGBA")
    palette = rgba.convert("RGB").quantize(32)
    palette.info["transparency"] = 3
    for image in (rgba, rgba.convert("LA"), palette):
        whole = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image.convert("RGBA"))
        np.testing.assert_array_equal(np.asarray(images._to_rgb(image)), np.asarray(whole.convert("RGB")))


def test_decode_memory_budget_bounds_what_threads_hold_at_once() -> None:
    """Reservations within the budget overlap; above it they wait; one request above the whole budget runs alone."""
    import threading
    import time

    from frpt_runtime.images import _DecodeMemory

    budget, held, seen, lock = _DecodeMemory(100), [0], [], threading.Lock()

    def decode(nbytes: int) -> None:
        with budget.reserve(nbytes):
            with lock:
                held[0] += nbytes
                seen.append(held[0])
            time.sleep(0.05)
            with lock:
                held[0] -= nbytes

    threads = [threading.Thread(target=decode, args=(n,)) for n in (40, 40, 40, 40, 250, 30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(total == 250 or total <= 100 for total in seen), seen  # 250 alone; the others <= 100 together
    assert 250 in seen and max(total for total in seen if total != 250) >= 80 and budget.used == 0


def test_onnxruntime_cpu_runs_a_batch_in_bounded_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU provider a batch runs in runs of at most CPU_RUN_PIXELS input pixels, with the same result."""
    from runtime_toys import TOY_SIZE, make_toy_onnx, toy_reference

    from frpt_runtime.backends import onnxruntime_backend as ort_backend

    weights = make_toy_onnx(tmp_path / "toy.onnx")
    images = np.random.default_rng(0).integers(0, 256, (7, TOY_SIZE, TOY_SIZE, 3), dtype=np.uint8)
    monkeypatch.setattr(ort_backend, "CPU_RUN_PIXELS", 3 * TOY_SIZE * TOY_SIZE)
    with ort_backend.OnnxRuntimeBackend(tmp_path / "toy.onnx") as backend:
        runs: list[int] = []
        run = backend._run
        monkeypatch.setattr(backend, "_run", lambda chunk: runs.append(len(chunk)) or run(chunk))
        np.testing.assert_allclose(backend.infer(images), toy_reference(images, weights), atol=1e-5)
    assert runs == [3, 3, 1]
