"""Reading a step's outputs off its return annotation.

`-> int` is one output named "output"; `-> Annotated[int, "rows"]` names it; a
`Tuple[Annotated[int, "a"], Annotated[str, "b"]]` declares several; `-> None` declares none.

A name given in the annotation also names the output's artifact, globally (as in ZenML):
every run of any pipeline that produces "model" adds a version of the one artifact "model".
`Annotated[Model, ArtifactConfig(name="model", tags=["prod"])]` does the same and tags each
new version. An unnamed output's artifact is `{pipeline}::{step}::{output}`.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from branchwork.exceptions import PipelineDefinitionError

if TYPE_CHECKING:
    from branchwork.materializers.base import BaseMaterializer

DEFAULT_OUTPUT = "output"
# `output_materializers=`: one materializer class for every output, or one per output name.
OutputMaterializers: TypeAlias = "type[BaseMaterializer] | dict[str, type[BaseMaterializer]]"
# The CLI reads `NAME:VERSION` and `RUN/INVOCATION[/OUTPUT]`; a name with these would be ambiguous.
_RESERVED = (":", "/")
_MAX_LENGTH = 255  # the store's column


@dataclass(frozen=True)
class ArtifactConfig:
    """How an output's artifact is named and tagged, given in its annotation:
    `-> Annotated[Model, ArtifactConfig(name="model", tags=["prod"])]`. Without a name the
    output keeps its default name and artifact; the tags still apply."""

    name: str | None = None
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # A list is the natural thing to write; keep it immutable. A lone string stays as it
        # is, for `parse_outputs` to refuse (tuple("prod") would tag p, r, o, d).
        if isinstance(self.tags, (list, set, frozenset)):
            object.__setattr__(self, "tags", tuple(self.tags))


@dataclass(frozen=True)
class OutputSpec:
    """One declared output: its name, annotation, (optionally) a chosen materializer, and the
    name (None: the default, see `artifact_name_in`) and tags of its artifact."""

    name: str
    annotation: Any = Any
    materializer: type[BaseMaterializer] | None = None
    artifact_name: str | None = None
    tags: tuple[str, ...] = ()

    def artifact_name_in(self, pipeline_name: str, step_name: str) -> str:
        """The name of the artifact this output adds a version to."""
        return self.artifact_name or f"{pipeline_name}::{step_name}::{self.name}"


@dataclass(frozen=True)
class _Declared:
    """What an annotation declares about one output beyond its type."""

    name: str | None = None
    config: ArtifactConfig | None = None

    @property
    def any(self) -> bool:
        return self.name is not None or self.config is not None

    def spec(self, default_name: str, annotation: Any) -> OutputSpec:
        config = self.config or ArtifactConfig()
        artifact_name = config.name or self.name
        return OutputSpec(
            self.name or config.name or default_name,
            annotation,
            artifact_name=artifact_name,
            tags=tuple(dict.fromkeys(config.tags)),  # each tag once
        )


def _checked_text(text: Any, what: str, step_name: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise PipelineDefinitionError(
            f"Step '{step_name}': {what} must be a non-empty string, got {text!r}."
        )
    if len(text) > _MAX_LENGTH:
        raise PipelineDefinitionError(
            f"Step '{step_name}': {what} {text[:40]!r}... is longer than {_MAX_LENGTH} characters."
        )
    return text


def _checked_name(name: Any, what: str, step_name: str) -> str:
    if any(mark in _checked_text(name, what, step_name) for mark in _RESERVED):
        raise PipelineDefinitionError(
            f"Step '{step_name}': {what} {name!r} cannot contain ':' or '/' (the CLI reads "
            "NAME:VERSION and RUN/INVOCATION/OUTPUT)."
        )
    return str(name)


def _checked_config(config: ArtifactConfig, step_name: str) -> ArtifactConfig:
    if config.name is not None:
        _checked_name(config.name, "ArtifactConfig(name=...)", step_name)
    tags: Any = config.tags
    if isinstance(tags, str):
        raise PipelineDefinitionError(
            f"Step '{step_name}': ArtifactConfig(tags=...) must be a list of strings, got the "
            f"string {tags!r}; write tags=[{tags!r}] for one tag."
        )
    if not isinstance(tags, tuple):
        raise PipelineDefinitionError(
            f"Step '{step_name}': ArtifactConfig(tags=...) must be a list of strings, got "
            f"{type(tags).__name__} {tags!r}."
        )
    for tag in tags:
        _checked_text(tag, "an ArtifactConfig tag", step_name)
    return config


def _strip_annotated(annotation: Any, step_name: str) -> tuple[Any, _Declared]:
    if typing.get_origin(annotation) is not typing.Annotated:
        return annotation, _Declared()
    base, *extras = typing.get_args(annotation)
    names = [extra for extra in extras if isinstance(extra, str)]
    configs = [extra for extra in extras if isinstance(extra, ArtifactConfig)]
    if len(configs) > 1:
        raise PipelineDefinitionError(
            f"Step '{step_name}': an output annotation has {len(configs)} ArtifactConfigs; "
            "give it one."
        )
    name = _checked_name(names[0], "an output name", step_name) if names else None
    config = _checked_config(configs[0], step_name) if configs else None
    return base, _Declared(name, config)


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
    base, declared = _strip_annotated(annotation, step_name)
    if typing.get_origin(base) is tuple and not declared.any:
        members = typing.get_args(base)
        stripped = [_strip_annotated(member, step_name) for member in members]
        if members and Ellipsis not in members and any(d.any for _, d in stripped):
            specs = tuple(d.spec(f"output_{i}", t) for i, (t, d) in enumerate(stripped))
            _check_distinct(specs, step_name)
            return specs
    return (declared.spec(DEFAULT_OUTPUT, base),)


def _check_distinct(specs: tuple[OutputSpec, ...], step_name: str) -> None:
    names = [spec.name for spec in specs]
    artifacts = [spec.artifact_name for spec in specs if spec.artifact_name]
    if len(set(names)) != len(names) or len(set(artifacts)) != len(artifacts):
        raise PipelineDefinitionError(
            f"Step '{step_name}' declares the same output name twice in its return "
            "annotation; give each Annotated output a distinct name."
        )
