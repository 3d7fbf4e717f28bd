"""PIL images as PNG (or TIFF for the modes PNG lacks), with a size/mode preview and a
thumbnail."""

from __future__ import annotations

import base64
import io
import random

import pytest

Image = pytest.importorskip("PIL.Image", reason="the images extra (pillow) is not installed")

from branchwork import pipeline, step  # noqa: E402
from branchwork.artifact_stores import artifact_store_for_uri  # noqa: E402
from branchwork.materializers import cloudpickle_materializer  # noqa: E402
from branchwork.materializers.pil_materializer import (  # noqa: E402
    PNG_MODES,
    TIFF_MODES,
    PilImageMaterializer,
)
from branchwork.materializers.preview import IMAGE_LIMIT  # noqa: E402
from branchwork.materializers.registry import materializer_path  # noqa: E402


def noisy_image(mode: str, size: tuple[int, int] = (16, 12)) -> Image.Image:
    """An image of `mode` whose pixels are all different bytes (a palette for P and PA)."""
    length = len(Image.new(mode, size).tobytes())
    image = Image.frombytes(mode, size, random.Random(0).randbytes(length))
    if mode in ("P", "PA"):
        image.putpalette(random.Random(1).randbytes(768))
    return image


def assert_same_image(loaded, image):
    assert type(loaded) is Image.Image
    assert (loaded.mode, loaded.size) == (image.mode, image.size)
    assert loaded.tobytes() == image.tobytes()
    assert loaded.getpalette() == image.getpalette()


@pytest.mark.parametrize("mode", sorted(PNG_MODES))
def test_png_modes_round_trip_exactly(round_trip, mode):
    image = noisy_image(mode)
    result = round_trip(image)
    assert result.materializer is PilImageMaterializer
    assert (result.files, result.warnings) == (["image.png"], [])
    assert_same_image(result.loaded, image)


@pytest.mark.parametrize("mode", sorted(TIFF_MODES))
def test_modes_png_lacks_are_tiff_and_round_trip_exactly(round_trip, mode):
    image = noisy_image(mode)
    result = round_trip(image)
    assert (result.files, result.warnings) == (["image.tiff"], [])
    assert_same_image(result.loaded, image)


def test_a_mode_neither_format_holds_is_pickled_with_a_warning(round_trip, monkeypatch):
    monkeypatch.setattr(cloudpickle_materializer, "_warned", set())
    image = noisy_image("HSV")
    result = round_trip(image)
    assert result.files == ["data.pkl"]
    assert result.warnings[0].startswith("PIL.Image.Image values in mode HSV (neither PNG nor")
    assert_same_image(result.loaded, image)


def test_an_image_opened_from_a_file_loads_as_a_plain_image_with_its_pixels(round_trip):
    buffer = io.BytesIO()
    noisy_image("RGB").save(buffer, format="JPEG")
    jpeg = Image.open(buffer)
    result = round_trip(jpeg)
    assert type(jpeg).__name__ == "JpegImageFile"
    assert result.files == ["image.png"]
    assert_same_image(result.loaded, jpeg)


def test_the_same_image_gives_the_same_content_hash(round_trip):
    first = round_trip(noisy_image("RGB")).content_hash
    assert round_trip(noisy_image("RGB")).content_hash == first
    assert round_trip(noisy_image("RGBA")).content_hash != first


def thumbnail(preview: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(preview["image_png"])))


def test_preview_gives_size_mode_and_a_thumbnail(round_trip):
    preview = round_trip(Image.linear_gradient("L").resize((400, 200))).preview
    assert preview["text"] == "L image, 400x200"
    assert preview["metadata"] == {"width": 400, "height": 200, "mode": "L"}
    assert thumbnail(preview).size == (128, 64)


def test_a_noisy_thumbnail_is_made_smaller_to_fit_the_preview_limit(round_trip):
    preview = round_trip(noisy_image("RGBA", (128, 128))).preview
    assert len(base64.b64decode(preview["image_png"])) <= IMAGE_LIMIT
    assert thumbnail(preview).size == (64, 64)  # 128x128 noise is more than 64 KB as PNG


def test_a_float_image_previews_stretched_to_grey_levels(round_trip):
    depth = Image.linear_gradient("L").resize((64, 64)).convert("F").point(lambda v: v / 1000)
    preview = round_trip(depth).preview
    assert preview["metadata"]["mode"] == "F"
    assert thumbnail(preview).mode == "L"
    assert thumbnail(preview).getextrema() == (0, 255)


@step
def draw(size: int) -> Image.Image:
    return Image.linear_gradient("L").resize((size, size // 2)).convert("RGB")


@step
def describe(image: Image.Image) -> str:
    return f"{type(image).__name__} {image.mode} {image.size}"


@pipeline(enable_cache=False)
def gradient(size: int):
    return describe(draw(size))


def test_an_image_passes_between_steps():
    assert gradient(size=32) == "Image RGB (32, 16)"
    output = gradient.last_run.steps["draw"].output
    assert output.materializer == materializer_path(PilImageMaterializer)
    assert artifact_store_for_uri(output.uri).listdir(output.uri) == ["image.png"]
    assert output.preview["metadata"] == {"width": 32, "height": 16, "mode": "RGB"}
    assert_same_image(output.load(), draw(32))
