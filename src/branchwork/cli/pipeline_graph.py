"""`branchwork graph TARGET`: draw a pipeline before running it (see `cli.preview`)."""

from __future__ import annotations

from typing import Annotated

import typer

from branchwork.cli.run import ParamOption, pipeline_params
from branchwork.cli.runs import FileOption, FormatOption, emit_graph


def graph(
    target: Annotated[
        str,
        typer.Argument(
            help="path/to/file.py:pipeline_name or package.module:pipeline_name.",
            metavar="TARGET",
            show_default=False,
        ),
    ],
    param: ParamOption = None,
    fmt: FormatOption = None,
    output: FileOption = None,
) -> None:
    """Draw a pipeline's graph without running it; for a dynamic pipeline, the part known
    before the first step output is used as a value."""
    from branchwork.cli.preview import pipeline_view
    from branchwork.cli.targets import load_target

    params = pipeline_params(param or [])
    emit_graph(pipeline_view(load_target(target), params), fmt, output)
