"""matplotlib figures as PNG + SVG, loaded back as a RenderedFigure."""

from __future__ import annotations

import base64
import io

import pytest

matplotlib = pytest.importorskip("matplotlib", reason="the matplotlib extra is not installed")

from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from branchwork import pipeline, step  # noqa: E402
from branchwork.artifact_stores import artifact_store_for_uri  # noqa: E402
from branchwork.materializers.matplotlib_materializer import (  # noqa: E402
    MatplotlibFigureMaterializer,
    RenderedFigure,
)
from branchwork.materializers.registry import materializer_path  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def line_figure(points: list[float]) -> Figure:
    figure = Figure(figsize=(4, 3), dpi=50)
    axes = figure.add_subplot()
    axes.plot(points)
    axes.set_title("loss")
    return figure


def pixel_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as picture:
        return picture.size


def test_a_figure_loads_as_its_png_and_svg(round_trip):
    result = round_trip(line_figure([3, 2, 1]))
    assert result.materializer is MatplotlibFigureMaterializer
    assert (result.files, result.warnings) == (["figure.png", "figure.svg"], [])
    loaded = result.loaded
    assert type(loaded) is RenderedFigure
    assert loaded.png.startswith(PNG_SIGNATURE)
    assert pixel_size(loaded.png) == (200, 150)  # 4x3 inches at 50 dpi
    assert "<svg" in loaded.svg and "<!-- loss -->" in loaded.svg  # the title, drawn as paths
    assert loaded._repr_png_() == loaded.png and loaded._repr_svg_() == loaded.svg
    assert repr(loaded) == (
        f"RenderedFigure(png={len(loaded.png)} bytes, svg={len(loaded.svg)} characters)"
    )


def test_a_rendered_figure_round_trips_with_the_figures_content_hash(round_trip):
    first = round_trip(line_figure([1, 2, 4]))
    again = round_trip(first.loaded)
    assert again.loaded == first.loaded
    assert again.content_hash == first.content_hash
    assert round_trip(line_figure([1, 2, 4])).content_hash == first.content_hash
    assert round_trip(line_figure([1, 2, 5])).content_hash != first.content_hash


def test_saving_leaves_the_backend_and_settings_alone(round_trip):
    backend, salt = matplotlib.get_backend(), matplotlib.rcParams["svg.hashsalt"]
    round_trip(line_figure([1.0]))
    assert (matplotlib.get_backend(), matplotlib.rcParams["svg.hashsalt"]) == (backend, salt)


def test_preview_gives_size_axes_and_a_thumbnail(round_trip):
    figure = line_figure([1, 2])
    figure.add_subplot(2, 1, 2)
    preview = round_trip(figure).preview
    assert preview["text"] == "figure, 4x3 in, 2 axes"
    assert preview["metadata"] == {
        "width": 200,
        "height": 150,
        "width_inches": 4.0,
        "height_inches": 3.0,
        "axes": 2,
    }
    assert pixel_size(base64.b64decode(preview["image_png"])) == (128, 96)


def test_a_rendered_figure_previews_its_pixels(round_trip):
    preview = round_trip(round_trip(line_figure([1, 2])).loaded).preview
    assert preview["text"] == "figure, 200x150 pixels"
    assert preview["metadata"] == {"width": 200, "height": 150}
    assert "image_png" in preview


@step
def plot_losses(epochs: int) -> Figure:
    return line_figure([1 / (epoch + 1) for epoch in range(epochs)])


@step
def report(figure: RenderedFigure) -> str:
    return f"{type(figure).__name__} {pixel_size(figure.png)}"


@pipeline(enable_cache=False)
def training_report(epochs: int):
    return report(plot_losses(epochs))


def test_a_figure_passes_between_steps_as_a_rendered_figure():
    assert training_report(epochs=5) == "RenderedFigure (200, 150)"
    output = training_report.last_run.steps["plot_losses"].output
    assert output.materializer == materializer_path(MatplotlibFigureMaterializer)
    files = artifact_store_for_uri(output.uri).listdir(output.uri)
    assert sorted(files) == ["figure.png", "figure.svg"]
    assert output.preview["text"] == "figure, 4x3 in, 1 axes"
    assert type(output.load()) is RenderedFigure
