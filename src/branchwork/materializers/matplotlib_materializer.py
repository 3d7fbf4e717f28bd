"""matplotlib figures as PNG + SVG. Imported by the registry only once matplotlib.figure is
loaded.

A figure cannot be rebuilt from its pictures, so it loads back as a `RenderedFigure`. The
figure is drawn with `fig.savefig`, which renders PNG and SVG through matplotlib's own
canvases whatever backend is active: the user's backend is left alone.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import matplotlib
from matplotlib.figure import Figure
from PIL import Image

from branchwork.materializers.base import BaseMaterializer
from branchwork.materializers.pil_materializer import png_thumbnail
from branchwork.materializers.preview import Preview

PNG_FILE = "figure.png"
SVG_FILE = "figure.svg"


@dataclass(frozen=True, repr=False)
class RenderedFigure:
    """A matplotlib figure as it was saved: a PNG (`.png`, bytes) and an SVG (`.svg`, str).

    This is what loading a figure artifact gives: the pictures hold no data, axes or artists,
    so the `Figure` cannot be rebuilt from them. A notebook shows it as it shows a figure;
    write `.png` or `.svg` to a file to keep it; returned from a step, it is stored as the
    same two files.
    """

    png: bytes
    svg: str

    def __repr__(self) -> str:
        return f"RenderedFigure(png={len(self.png)} bytes, svg={len(self.svg)} characters)"

    def _repr_png_(self) -> bytes:
        return self.png

    def _repr_svg_(self) -> str:
        return self.svg


class MatplotlibFigureMaterializer(BaseMaterializer):
    """`matplotlib.figure.Figure` (saved as pictures) and `RenderedFigure` (loaded as one)."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (Figure, RenderedFigure)
    HASH_FROM_WRITES = True
    _rendered: RenderedFigure | None = None  # what `save` drew, so the preview draws nothing

    def save(self, data: Any) -> None:
        self._rendered = rendered = _as_rendered(data)
        self._write_bytes(PNG_FILE, rendered.png)
        self._write_bytes(SVG_FILE, rendered.svg.encode())

    def load(self, data_type: type) -> Any:
        return RenderedFigure(self._read_bytes(PNG_FILE), self._read_bytes(SVG_FILE).decode())

    def preview(self, data: Any) -> Preview:
        rendered = self._rendered or _as_rendered(data)
        with Image.open(io.BytesIO(rendered.png)) as picture:
            width, height = picture.size
            thumbnail = png_thumbnail(picture)
        metadata: dict[str, Any] = {"width": width, "height": height}
        text = f"figure, {width}x{height} pixels"
        if isinstance(data, Figure):
            width_inches, height_inches = (float(inches) for inches in data.get_size_inches())
            axes = len(data.axes)
            metadata.update(width_inches=width_inches, height_inches=height_inches, axes=axes)
            text = f"figure, {width_inches:g}x{height_inches:g} in, {axes} axes"
        return Preview(text=text, metadata=metadata, image_png=thumbnail)


def _as_rendered(data: Figure | RenderedFigure) -> RenderedFigure:
    if isinstance(data, RenderedFigure):
        return data
    png, svg = io.BytesIO(), io.StringIO()
    data.savefig(png, format="png")
    with _repeatable_svg_ids():
        data.savefig(svg, format="svg", metadata={"Date": None})
    return RenderedFigure(png.getvalue(), svg.getvalue())


@contextmanager
def _repeatable_svg_ids() -> Iterator[None]:
    """Fix the salt of the SVG's element ids (random by default) unless the user set one,
    so one figure always gives the same files and the same content hash.

    Only this one setting is touched and put back (`rc_context` would put back every
    setting, undoing changes other threads make meanwhile)."""
    if matplotlib.rcParams["svg.hashsalt"] is not None:
        yield
        return
    matplotlib.rcParams["svg.hashsalt"] = "branchwork"
    try:
        yield
    finally:
        matplotlib.rcParams["svg.hashsalt"] = None
