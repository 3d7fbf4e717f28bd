"""An orchestrator's settings, checked by pydantic at registration and built into the object.

The settings a flavor takes are its class's `__init__` keyword parameters after `name`, so the
pydantic model is derived from that signature rather than declared a second time: each
parameter becomes a field with its annotation and default, and a class that takes `**kwargs`
also allows settings its signature does not name. An annotation that cannot be resolved (a
name imported only under TYPE_CHECKING) leaves every field unchecked (`Any`).

Settings are stored and travel as JSON, so they are validated as JSON text in strict mode:
`max_workers="abc"` (or `"2"`) for an int is refused, not converted, and what is stored is
what the orchestrator is built with. A value its type allows but the class refuses
(`max_workers=-2`, `memory="heaps"`) is caught by a field validator that builds the
orchestrator with that one setting and the defaults, so pydantic's error names the field
either way (a class with required settings cannot be built so: it gets no such validators);
what only the combination explains (Ray's `address` with `num_cpus`) fails when all are built
together. Each refusal is one line naming the orchestrator, its flavor, the setting, the
value and the expected type or the class's reason. pydantic is imported only here: a run
builds the stored settings directly and consults the model only to explain a failure.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from branchwork.exceptions import ConfigurationError

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    from branchwork.orchestrators.base import BaseOrchestrator


def check_orchestrator_settings(name: str, flavor: str, config: dict[str, Any]) -> None:
    """Refuse settings `flavor` does not take, or takes with another type or value."""
    from branchwork.orchestrators.flavors import orchestrator_class

    cls = orchestrator_class(flavor)  # an unknown flavor lists the available ones
    _validate(cls, name, flavor, config)
    build_orchestrator(name, flavor, config)


def build_orchestrator(name: str, flavor: str, config: dict[str, Any]) -> BaseOrchestrator:
    """The orchestrator registered settings describe, built as a run builds it."""
    from branchwork.orchestrators.flavors import orchestrator_class

    cls = orchestrator_class(flavor)
    try:
        orchestrator: BaseOrchestrator = cls(name, **config)
        return orchestrator
    except Exception as error:
        _validate(cls, name, flavor, config)  # names the setting when one is to blame
        raise ConfigurationError(
            f"{_where(name, flavor)}: invalid settings: {first_line(error)}"
        ) from None


def first_line(error: BaseException) -> str:
    """The first non-blank line of an error's message (or its type's name)."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _where(name: str, flavor: str) -> str:
    return f"Orchestrator '{name}' (flavor {flavor!r})"


def _validate(cls: type[Any], name: str, flavor: str, config: dict[str, Any]) -> None:
    from pydantic import ValidationError

    try:
        text = json.dumps(config)
    except (TypeError, ValueError) as error:
        raise ConfigurationError(
            f"{_where(name, flavor)}: its settings must be JSON values ({error})."
        ) from None
    model = settings_model(cls)
    try:
        model.model_validate_json(text)
    except ValidationError as error:
        raise _refusal(cls, model, _where(name, flavor), flavor, config, error) from None


def _refusal(
    cls: type[Any],
    model: type[BaseModel],
    where: str,
    flavor: str,
    config: dict[str, Any],
    error: ValidationError,
) -> ConfigurationError:
    first = error.errors(include_url=False)[0]
    key = str(first["loc"][0]) if first["loc"] else ""
    if first["type"] == "extra_forbidden":
        accepted = ", ".join(model.model_fields) or "no settings"
        return ConfigurationError(
            f"{where}: unknown setting {key!r}; flavor {flavor!r} accepts: {accepted}."
        )
    expected = _shown_type(cls, key)
    if first["type"] == "missing":
        return ConfigurationError(f"{where}: setting {key!r} ({expected}) is required.")
    if first["type"] == "value_error":  # the class refused the value (see the docstring)
        reason = str(first["ctx"]["error"]).rstrip(".")
    else:
        reason = f"expected {expected}"
    return ConfigurationError(f"{where}: setting {key!r} = {config[key]!r} is invalid: {reason}.")


def _settings_parameters(cls: type[Any]) -> tuple[list[inspect.Parameter], bool]:
    """The keyword parameters `cls(name, **settings)` takes, and whether it takes **kwargs
    (a signature that cannot be read takes anything)."""
    try:
        parameters = list(inspect.signature(cls.__init__).parameters.values())
    except (TypeError, ValueError):
        return [], True
    named = [
        parameter
        for parameter in parameters
        if parameter.name not in ("self", "name")
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
    return named, any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters)


def _shown_type(cls: type[Any], key: str) -> str:
    """A setting's annotation as its signature spells it ("int | None")."""
    annotations = {
        parameter.name: parameter.annotation for parameter in _settings_parameters(cls)[0]
    }
    annotation = annotations.get(key, inspect.Parameter.empty)
    if annotation is inspect.Parameter.empty:
        return "any value"
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def settings_model(cls: type[Any]) -> type[BaseModel]:
    """The pydantic model of `cls`'s settings (see the module docstring)."""
    from pydantic import AfterValidator, ConfigDict, create_model

    parameters, takes_any = _settings_parameters(cls)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # a name imported only under TYPE_CHECKING: check no types
        hints = {}
    buildable_alone = all(parameter.default is not parameter.empty for parameter in parameters)
    fields: dict[str, Any] = {}
    for parameter in parameters:
        annotation = hints.get(parameter.name, Any)
        if buildable_alone:
            annotation = Annotated[annotation, AfterValidator(_alone(cls, parameter.name))]
        required = parameter.default is parameter.empty
        fields[parameter.name] = (annotation, ... if required else parameter.default)
    config = ConfigDict(
        strict=True, extra="allow" if takes_any else "forbid", arbitrary_types_allowed=True
    )
    model: type[BaseModel] = create_model(f"{cls.__name__}Settings", __config__=config, **fields)
    return model


def _alone(cls: type[Any], key: str) -> Callable[[Any], Any]:
    """A validator building `cls` with only the setting `key`, to blame the value it refuses."""

    def check(value: Any) -> Any:
        try:
            cls(None, **{key: value})
        except Exception as error:
            raise ValueError(first_line(error)) from None
        return value

    return check
