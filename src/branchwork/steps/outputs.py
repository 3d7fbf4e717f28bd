"""Reading a step's outputs off its return annotation.

`-> int` is one output named "output"; `-> Annotated[int, "rows"]` names it; a
`Tuple[Annotated[int, "a"], Annotated[str, "b"]]` declares several; `-> None` declares none.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from branchwork.exceptions import PipelineDefinitionError

if TYPE_CHECKING:
    from branchwork.materializers.base import BaseMaterializer

DEFAULT_OUTPUT = "output"
# `output_materializers=`: one materializer class for every output, or one per output name.
OutputMaterializers: TypeAlias = "type[BaseMaterializer] | dict[str, type[BaseMaterializer]]"


@dataclass(frozen=True)
class OutputSpec:
    """One declared output: its name, annotation and (optionally) a chosen materializer."""

    name: str
    annotation: Any = Any
    materializer: type[BaseMaterializer] | None = None


def _strip_annotated(annotation: Any) -> tuple[Any, str | None]:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        names = [extra for extra in extras if isinstance(extra, str)]
        return base, names[0] if names else None
    return annotation, None


def parse_outputs(func: Callable[..., Any], step_name: str) -> tuple[OutputSpec, ...]:
    """The outputs a step function declares through its return annotation."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to one untyped output
        hints = {}
    if "return" not in hints:
        return (OutputSpec(DEFAULT_OUTPUT),)
    annotation = hints["return"]
    if annotation is None or annotation is type(None):
        return ()
    base, name = _strip_annotated(annotation)
    if typing.get_origin(base) is tuple and name is None:
        members = typing.get_args(base)
        named = [_strip_annotated(member) for member in members]
        if members and Ellipsis not in members and any(n for _, n in named):
            specs = tuple(OutputSpec(n or f"output_{i}", t) for i, (t, n) in enumerate(named))
            if len({spec.name for spec in specs}) != len(specs):
                raise PipelineDefinitionError(
                    f"Step '{step_name}' declares the same output name twice in its return "
                    "annotation; give each Annotated output a distinct name."
                )
            return specs
    return (OutputSpec(name or DEFAULT_OUTPUT, base),)
