"""Image decoding corners and model-config validation, in process (issue 15, coverage part).

Float (``F``) and 32-bit integer images, an image PIL opens with no pixels, the crop offsets of a non-square
image, and the config checks every file reader relies on (type, range, unknown keys, non-object data).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from frpt_runtime import images
from frpt_runtime.errors import FrptError
from frpt_runtime.families import config_from_dict
from frpt_runtime.families.frpt import FRPTConfig
from frpt_runtime.images import ImageDecodeError, load_image, resized_shape


def test_float_image_is_clipped_rounded_and_nan_is_black(tmp_path):
    values = np.array([[0.4, -5.0, 300.0, 127.5], [254.4, np.nan, 0.6, 1e9]], np.float32)
    path = tmp_path / "float.tif"
    Image.fromarray(values, mode="F").save(path)
    assert Image.open(path).mode == "F"
    pixels = load_image(path, size=2, crop_pct=1.0)  # 4x2 -> short side 2 -> 4x2 (no resampling), centre 2x2
    np.testing.assert_array_equal(pixels[..., 0], [[0, 255], [0, 1]])  # -5 -> 0, 300 -> 255, NaN -> 0, 0.6 -> 1
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 0] == pixels[..., 2]).all()


def test_32_bit_integer_image_keeps_the_high_byte_of_16_bits(tmp_path):
    values = np.array([[255, -7, 70000, 65535], [256, 0x1234, 1 << 20, 0x80FF]], np.int32)
    path = tmp_path / "int32.tif"
    Image.fromarray(values, mode="I").save(path)
    assert np.asarray(Image.open(path)).min() == -7
    pixels = load_image(path, size=2, crop_pct=1.0)
    np.testing.assert_array_equal(pixels[..., 0], [[0, 255], [0x12, 255]])  # -7 -> 0, 70000 and 2**20 -> 255
    assert (pixels[..., 0] == pixels[..., 2]).all()


@pytest.mark.parametrize("size", [(0, 5), (5, 0)])
def test_an_image_without_pixels_is_a_decode_error(tmp_path, monkeypatch, size):
    path = tmp_path / "empty.png"
    path.write_bytes(b"some bytes")
    monkeypatch.setattr(images.Image, "open", lambda file: Image.new("RGB", size))
    with pytest.raises(ImageDecodeError, match=rf"^empty image \({size[0]}x{size[1]} pixels\)$"):
        load_image(path, size=4, crop_pct=1.0)


def test_unexpected_decoder_error_becomes_one_line(tmp_path, monkeypatch):
    path = tmp_path / "x.png"
    path.write_bytes(b"bytes")

    def broken(file):
        raise RuntimeError("plugin\nexploded   here")

    monkeypatch.setattr(images.Image, "open", broken)
    with pytest.raises(ImageDecodeError, match=r"^cannot decode: RuntimeError: plugin exploded here$"):
        load_image(path, size=4, crop_pct=1.0)


def test_crop_is_centred_on_a_tall_image(tmp_path):
    # 8 wide, 16 tall, each row its own value: short side 8 -> no resize; the centre 8x8 is rows 4..11
    rows = np.repeat(np.arange(16, dtype=np.uint8)[:, None] * 10, 8, axis=1)
    path = tmp_path / "tall.png"
    Image.fromarray(np.stack([rows] * 3, axis=-1)).save(path)
    pixels = load_image(path, size=8, crop_pct=1.0)
    np.testing.assert_array_equal(pixels[:, 0, 0], np.arange(4, 12) * 10)


def test_crop_pct_resizes_the_short_side_to_size_over_crop_pct(tmp_path, monkeypatch):
    seen = []
    real = Image.Image.resize

    def spy(self, size, *args, **kwargs):
        seen.append(size)
        return real(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((40, 57, 3), np.uint8)).save(path)
    assert load_image(path, size=35, crop_pct=0.875).shape == (35, 35, 3)
    assert resized_shape(57, 40, 40) == (57, 40) and seen == []  # already the resize's size: left as it is
    seen.clear()
    Image.fromarray(np.zeros((57, 40, 3), np.uint8)).save(path)
    load_image(path, size=37, crop_pct=1.0)
    assert seen == [(37, 52)]  # long side 57 * 37 / 40 = 52.7, truncated (torchvision), not rounded


@pytest.mark.parametrize(
    ("size", "crop_pct", "decoder"),
    [(0, 0.5, "exact"), (8, 0.0, "exact"), (8, 1.01, "fast"), (8, -0.5, "exact"), (8, 0.5, "draft")],
    ids=["size-0", "pct-0", "pct-over-1", "pct<0", "unknown-decoder"],
)
def test_bad_geometry_is_a_value_error(tmp_path, size, crop_pct, decoder):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    with pytest.raises(ValueError, match=re.escape(f"got {size}, {crop_pct}, {decoder}")):
        load_image(path, size=size, crop_pct=crop_pct, decoder=decoder)


def test_crop_pct_of_one_is_accepted(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.full((4, 4, 3), 7, np.uint8)).save(path)
    assert (load_image(path, size=1, crop_pct=1.0) == 7).all()


# --- model config validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_size": 0}, r"input_size must be an integer in \[1, "),
        ({"input_size": 64.0}, "input_size must be an integer"),
        ({"crop_pct": 0.0}, r"crop_pct must be a number in \(0, 1\]"),
        ({"crop_pct": 1.5}, r"crop_pct must be a number in \(0, 1\], got 1.5"),
        ({"pixel_std": (0.5, 0.0, 0.5)}, "pixel_std must be a list of 3 values"),
        ({"pixel_mean": (0.5, 0.5)}, "pixel_mean must be a list of 3 values"),
        ({"grid": 1}, r"grid must be an integer in \[2, 1024\]"),
        ({"pooling": "max"}, "pooling must be one of avg, gem"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be a number in \[0, 1\)"),
        ({"num_classes": True}, "num_classes must be an integer >= 1, got True"),
        ({"backbone": "resnet9000"}, "backbone must be one of"),
    ],
)
def test_config_refuses_out_of_range_fields(changes, message):
    with pytest.raises(ValueError, match=message):
        FRPTConfig(**changes)


def test_config_from_dict_round_trips_and_refuses_bad_data():
    config = FRPTConfig(input_size=64, class_names=("a", "b"), pixel_mean=(0.1, 0.2, 0.3))
    data = json.loads(config.to_json())
    assert isinstance(data["pixel_mean"], list)
    back = config_from_dict("frpt", data, "model.onnx metadata")
    assert back == config and back.class_names == ("a", "b") and back.pixel_mean == (0.1, 0.2, 0.3)
    with pytest.raises(FrptError, match=r"^model.onnx metadata: the frpt model config is not a JSON object$"):
        config_from_dict("frpt", [1, 2], "model.onnx metadata")
    with pytest.raises(FrptError, match=r"invalid frpt model config: unknown FRPT config keys \['zoom'\]"):
        config_from_dict("frpt", {**data, "zoom": 2}, "x")
    with pytest.raises(FrptError, match="^x: invalid frpt model config: crop_pct must be a number"):
        config_from_dict("frpt", {**data, "crop_pct": 2.0}, "x")
    with pytest.raises(FrptError, match="unknown model family 'nope'"):
        config_from_dict("nope", data, "x")


def test_a_one_pixel_image_decodes(tmp_path):
    path = tmp_path / "dot.png"
    Image.fromarray(np.array([[[10, 20, 30]]], np.uint8)).save(path)
    np.testing.assert_array_equal(load_image(path, size=1, crop_pct=1.0), [[[10, 20, 30]]])
    line = tmp_path / "line.png"
    Image.fromarray(np.full((1, 6, 3), 90, np.uint8)).save(line)
    assert (load_image(line, size=2, crop_pct=1.0) == 90).all()


def test_pixel_limit_is_inclusive(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 16)
    at_limit, over = tmp_path / "at.png", tmp_path / "over.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(at_limit)
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(over)
    assert load_image(at_limit, size=2, crop_pct=1.0).shape == (2, 2, 3)
    with pytest.raises(ImageDecodeError, match=r"^decompression bomb: 5x4 = 20 pixels exceeds the limit of 16$"):
        load_image(over, size=2, crop_pct=1.0)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # PIL's "no limit"
    assert load_image(over, size=2, crop_pct=1.0).shape == (2, 2, 3)


def test_alpha_is_blended_over_opaque_white_to_rounding(tmp_path):
    # every alpha 0..255 once, over colours (0, 100, 200): out = c * a + 255 * (1 - a), rounded (PIL's integer maths)
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 1], rgba[..., 2] = 100, 200
    rgba[..., 3] = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    pixels = load_image(path, size=16, crop_pct=1.0).astype(np.float64)
    alpha = rgba[..., 3:] / 255.0
    blend = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
    assert np.abs(pixels - blend).max() <= 0.5


def test_decoder_error_without_a_message_is_named_by_its_type(tmp_path, monkeypatch):
    path = tmp_path / "x.png"
    path.write_bytes(b"bytes")

    def silent(file):
        raise KeyError()

    monkeypatch.setattr(images.Image, "open", silent)
    with pytest.raises(ImageDecodeError, match=r"^cannot decode: KeyError: KeyError$"):
        load_image(path, size=4, crop_pct=1.0)


@pytest.mark.parametrize("family", ["frpt", "vpt"])
def test_both_families_carry_the_decoder_and_refuse_an_unknown_one(family):
    from frpt_runtime.families import config_class

    cls = config_class(family)
    assert cls().decoder == "fast" and cls(decoder="exact").decoder == "exact"
    with pytest.raises(ValueError, match="decoder"):
        cls(decoder="draft")
    assert config_from_dict(family, cls(decoder="exact").to_dict(), "x.json").decoder == "exact"
    older = {key: value for key, value in cls().to_dict().items() if key != "decoder"}  # a file from before the field
    assert config_from_dict(family, older, "x.json").decoder == "exact"
    assert cls.from_json(cls(decoder="fast").to_json()) == cls(decoder="fast")
