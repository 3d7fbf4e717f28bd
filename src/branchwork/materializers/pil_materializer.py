"""PIL images as PNG, or TIFF for the modes PNG cannot hold. Imported by the registry only
once PIL.Image is loaded.

PNG keeps the modes 1, L, LA, P (with its palette), RGB, RGBA and I;16 exactly; TIFF keeps
CMYK, YCbCr, LAB, I (32-bit), F (float), I;16B and PA. The few modes neither writes (Pillow's
internal La, RGBa, RGBX, HSV, I;16L, I;16N) are pickled, with a warning. Pixels, size, mode
and palette come back; `image.info` (EXIF, DPI, text chunks) and frames other than the
current one do not. An image opened from a file (a `JpegImageFile`) loads back as a plain
`PIL.Image.Image` with the same pixels.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar, cast

from PIL import Image

from branchwork.materializers.base import BaseMaterializer
from branchwork.materializers.cloudpickle_materializer import (
    PICKLE_FILE,
    load_pickle,
    save_pickled,
)
from branchwork.materializers.preview import IMAGE_LIMIT, Preview

PNG_FILE = "image.png"
TIFF_FILE = "image.tiff"

PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"})
TIFF_MODES = frozenset({"CMYK", "YCbCr", "LAB", "I", "F", "I;16B", "PA"})
_NUMERIC_MODES = frozenset({"I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
THUMBNAIL_SIZES = (128, 64)  # the largest whose PNG fits the preview's limit is kept


class PilImageMaterializer(BaseMaterializer):
    """`PIL.Image.Image` and its subclasses (images opened from files)."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (Image.Image,)
    HASH_FROM_WRITES = True

    def save(self, data: Any) -> None:
        if data.mode in PNG_MODES:
            self._write_bytes(PNG_FILE, encode(data, "PNG"))
        elif data.mode in TIFF_MODES:
            self._write_bytes(TIFF_FILE, encode(data, "TIFF"))
        else:
            save_pickled(self, data, f" in mode {data.mode} (neither PNG nor TIFF holds it)")

    def load(self, data_type: type) -> Any:
        filename, data = self._read_first(PNG_FILE, TIFF_FILE, PICKLE_FILE)
        if filename == PICKLE_FILE:
            return load_pickle(data)
        with Image.open(io.BytesIO(data)) as image:
            return image.copy()  # a plain Image, not the file's PngImageFile, fully loaded

    def preview(self, data: Any) -> Preview:
        width, height = data.size
        return Preview(
            text=f"{data.mode} image, {width}x{height}",
            metadata={"width": width, "height": height, "mode": data.mode},
            image_png=png_thumbnail(data),
        )


def encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def png_thumbnail(image: Image.Image) -> bytes | None:
    """A PNG of `image` shrunk to at most 128x128 pixels (64x64 if that is too big for a
    preview), in a mode any viewer shows; None if even the smallest is too big."""
    for size in THUMBNAIL_SIZES:
        png = encode(_displayable(_shrunk(image, size)), "PNG")
        if len(png) <= IMAGE_LIMIT:
            return png
    return None


def _shrunk(image: Image.Image, size: int) -> Image.Image:
    """`image` resized to fit in `size` x `size` pixels, keeping its aspect, never enlarged
    (first, so a large image is never copied or converted whole)."""
    width, height = image.size
    scale = min(1.0, size / max(width, height))
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(shape, reducing_gap=2.0)


def _displayable(image: Image.Image) -> Image.Image:
    """`image` in a mode PNG holds and viewers show: numbers (depth maps, float images)
    stretched to grey levels, colour spaces converted to RGB(A)."""
    if image.mode in _NUMERIC_MODES:
        values = image.convert("F")
        low, high = cast(tuple[float, float], values.getextrema())  # one band
        scale = 255 / (high - low) if high > low else 0
        return values.point(lambda value: (value - low) * scale).convert("L")
    if image.mode in PNG_MODES - {"I;16"}:
        return image
    return image.convert("RGBA" if image.has_transparency_data else "RGB")
