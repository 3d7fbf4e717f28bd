"""Checking an answer against the JSON schema its question recorded.

Whoever answers a paused run (the CLI, `Client`, another machine) has the recorded schema,
not the pipeline's Python types, so answers are checked against the JSON schema itself. This
is the part of JSON Schema that pydantic's `TypeAdapter(...).json_schema()` writes and people
write by hand: `type` (one or a list), `enum`, `const`, `anyOf`/`oneOf`/`allOf`, `$ref` into
`$defs`/`definitions`, `properties`/`required`/`additionalProperties`, `items`/`prefixItems`,
`minItems`/`maxItems`, `minLength`/`maxLength`/`pattern`, `minimum`/`maximum` and their
exclusive forms, and the formats `date-time`, `date`, `time` and `uuid`. Other keywords are
not checked.
"""

from __future__ import annotations

import math
import operator
import re
import uuid
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any

_TYPES: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}
_FORMATS: dict[str, Callable[[str], Any]] = {
    "date-time": lambda text: datetime.fromisoformat(text.replace("Z", "+00:00")),
    "date": date.fromisoformat,
    "time": lambda text: time.fromisoformat(text.replace("Z", "+00:00")),
    "uuid": uuid.UUID,
}


def answer_problem(value: Any, schema: dict[str, Any] | None) -> str | None:
    """What is wrong with `value` under `schema` (the first thing found), or None."""
    if schema is None:
        return None
    return _Checker(schema).problem(value, schema, "")


_DATA = frozenset({"enum", "const", "default", "examples"})  # values, not schemas
# Keywords whose value maps names (of properties, of definitions) to schemas.
_NAMED = frozenset({"properties", "patternProperties", "$defs", "definitions"})
_NUMBERS = (
    *("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
    *("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"),
)


def schema_problem(schema: dict[str, Any]) -> str | None:
    """What in `schema` this checker cannot read (a pattern Python's `re` does not take, a
    `$ref` to nothing, a bound that is no number), found when the question is asked: found
    when it was answered, every answer failed with it and the run stayed paused for good."""
    checker, todo = _Checker(schema), [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
        if not isinstance(node, dict):
            continue
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as error:
                return f"its pattern {pattern!r} is not a Python regular expression ({error})"
        if "$ref" in node:
            try:
                checker._resolve(node["$ref"])
            except (ValueError, KeyError, TypeError, IndexError):
                return f"its $ref {node['$ref']!r} points at nothing in the schema"
        for keyword in _NUMBERS:
            bound = node.get(keyword)
            if keyword in node and (isinstance(bound, bool) or not isinstance(bound, int | float)):
                return f"its {keyword} is {bound!r}, not a number"
        for key, value in node.items():
            if key in _NAMED and isinstance(value, dict):
                todo.extend(value.values())  # the names are anything, `minimum` too
            elif key not in _DATA:
                todo.append(value)
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def problem(self, value: Any, schema: Any, where: str) -> str | None:
        if schema is True or schema == {}:
            return None
        if schema is False:
            return f"{where or 'the answer'}: no value is allowed here"
        if "$ref" in schema:
            return self.problem(value, self._resolve(schema["$ref"]), where)
        for check in (self._type, self._choices, self._combined, self._shape):
            found = check(value, schema, where)
            if found is not None:
                return found
        return None

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"the schema refers to {ref!r}; only '#/...' references are read")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _type(self, value: Any, schema: dict[str, Any], where: str) -> str | None:
        wanted = schema.get("type")
        if wanted is None:
            return None
        names = wanted if isinstance(wanted, list) else [wanted]
        if any(_TYPES[name](value) for name in names if name in _TYPES):
            return None
        expected = " or ".join(f"{'an' if n[0] in 'aeiou' else 'a'} {n}" for n in names)
        return f"{where or 'the answer'}: expected {expected}, got {_shown(value)}"

    def _choices(self, value: Any, schema: dict[str, Any], where: str) -> str | None:
        at = where or "the answer"
        if "const" in schema and not _equal(value, schema["const"]):
            return f"{at}: expected {_shown(schema['const'])}, got {_shown(value)}"
        if "enum" in schema and not any(_equal(value, choice) for choice in schema["enum"]):
            choices = ", ".join(_shown(choice) for choice in schema["enum"])
            return f"{at}: expected one of {choices}, got {_shown(value)}"
        return None

    def _combined(self, value: Any, schema: dict[str, Any], where: str) -> str | None:
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                found = [self.problem(value, option, where) for option in schema[keyword]]
                if all(found):
                    return found[0] if len(found) == 1 else _none_of(value, where, found)
        for option in schema.get("allOf", ()):
            problem = self.problem(value, option, where)
            if problem is not None:
                return problem
        return None

    def _shape(self, value: Any, schema: dict[str, Any], where: str) -> str | None:
        if isinstance(value, dict):
            return self._object(value, schema, where)
        if isinstance(value, list):
            return self._array(value, schema, where)
        if isinstance(value, str):
            return _string(value, schema, where or "the answer")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _number(value, schema, where or "the answer")
        return None

    def _object(self, value: dict[str, Any], schema: dict[str, Any], where: str) -> str | None:
        missing = [name for name in schema.get("required", ()) if name not in value]
        if missing:
            return f"{where or 'the answer'}: missing {', '.join(repr(m) for m in missing)}"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            at = f"{where}.{name}" if where else str(name)
            if name in properties:
                problem = self.problem(item, properties[name], at)
            elif extra is False:
                known = ", ".join(properties) or "none"
                problem = f"{at}: not expected (known fields: {known})"
            else:
                problem = self.problem(item, extra, at)
            if problem is not None:
                return problem
        return None

    def _array(self, value: list[Any], schema: dict[str, Any], where: str) -> str | None:
        at = where or "the answer"
        if len(value) < schema.get("minItems", 0):
            return f"{at}: expected at least {schema['minItems']} items, got {len(value)}"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{at}: expected at most {schema['maxItems']} items, got {len(value)}"
        prefix = schema.get("prefixItems", [])
        rest = schema.get("items", True)
        for index, item in enumerate(value):
            item_schema = prefix[index] if index < len(prefix) else rest
            problem = self.problem(item, item_schema, f"{where}[{index}]")
            if problem is not None:
                return problem
        return None


def _string(value: str, schema: dict[str, Any], at: str) -> str | None:
    if len(value) < schema.get("minLength", 0):
        return f"{at}: expected at least {schema['minLength']} characters"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"{at}: expected at most {schema['maxLength']} characters"
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        return f"{at}: {_shown(value)} does not match the pattern {schema['pattern']!r}"
    parse = _FORMATS.get(schema.get("format", ""))
    if parse is not None:
        try:
            parse(value)
        except ValueError:
            return f"{at}: {_shown(value)} is not a valid {schema['format']}"
    return None


def _number(value: float, schema: dict[str, Any], at: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{at}: expected a finite number, got {value}"
    for keyword, holds, words in _BOUNDS:
        if keyword in schema and not holds(value, schema[keyword]):
            return f"{at}: expected {words} {schema[keyword]}, got {value}"
    return None


_BOUNDS: tuple[tuple[str, Callable[[Any, Any], bool], str], ...] = (
    ("minimum", operator.ge, "at least"),
    ("exclusiveMinimum", operator.gt, "more than"),
    ("maximum", operator.le, "at most"),
    ("exclusiveMaximum", operator.lt, "less than"),
)


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _none_of(value: Any, where: str, problems: list[str | None]) -> str:
    reasons = "; ".join(p for p in problems if p)
    return f"{where or 'the answer'}: {_shown(value)} matches none of the allowed forms ({reasons})"
