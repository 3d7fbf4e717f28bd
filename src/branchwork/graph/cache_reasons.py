"""Why a step was served from the cache or run: the reason recorded with each step run.

A hit names what it reused. A miss compares the step's key parts (`graph.cache_key`) with
those recorded for the same invocation in the pipeline's previous run, and names what
changed: the code (the functions and classes that changed, by the fingerprints of
`graph.code_hash`), an argument (with its old and new value when it is a plain one), a file it
reads, a library version, its `cache_key_fn` value, how its outputs are stored. Pure: the
loop hands it what the store holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from branchwork.graph.cache_key import KeyParts
from branchwork.graph.code_hash import changed_parts

# Verdicts, as recorded (`step_run.cache_verdict`).
HIT = "hit"
MISS = "miss"
OFF = "off"
REFRESH = "refresh"
EXPIRED = "expired"
FAILED = "key_failed"
RESUMED = "resumed"
REPLAYED = "replayed"  # a replay runs it again instead of reusing the original's record


class Earlier(NamedTuple):
    """What the previous run recorded for the same invocation (`parts` None: the run did
    not make it), and how that run's pipeline parameters differ from this one's."""

    run_name: str
    parts: KeyParts | None
    code_parts: Mapping[str, str] | None  # its code fingerprint's pieces, when known
    parameter_changes: list[str]
    status: str | None = None  # of its latest attempt there
    invalidated: bool = False  # its result (or the one its cache hit reused) was invalidated


def parameter_changes(now: Mapping[str, Any], before: Mapping[str, Any]) -> list[str]:
    """How pipeline parameters differ, e.g. `pipeline parameter 'n' changed: 3 → 4`."""
    return _map_changes(
        lambda name: f"pipeline parameter '{name}'",
        {name: repr(value) for name, value in now.items()},
        {name: repr(value) for name, value in before.items()},
        shown=str,  # reprs, not tokens
    )


def hit(invocation_id: str, run_name: str) -> str:
    return f"reused invocation '{invocation_id}' of run '{run_name}'"


def miss(
    parts: KeyParts,
    code_parts: Mapping[str, str],
    earlier: Earlier | None,
    sources: Mapping[str, str] | None = None,
    invalidated: bool = False,
) -> str:
    """What changed since the previous run of this invocation, in one line; `sources` says
    which step output an argument is ("the output of 'load'"), by argument; `invalidated`:
    the results with this very key were invalidated, the cause whatever changed since the
    previous run."""
    if invalidated and (earlier is None or earlier.parts != parts):
        return f"a result with this key was cached, then invalidated ({_INVALIDATE})"
    if earlier is None:
        return "first run of this pipeline"
    if earlier.parts is None and earlier.status is not None:
        return f"run '{earlier.run_name}' recorded no key for it (its key failed, or is older)"
    if earlier.parts is None:
        because = f" ({'; '.join(earlier.parameter_changes)})" if earlier.parameter_changes else ""
        return f"a new invocation: run '{earlier.run_name}' had none{because}"
    before = earlier.parts
    changes: list[str] = []
    if parts.code != before.code:
        changes.append(_code_change(code_parts, earlier.code_parts))
    changes += _argument_changes(
        parts.arguments, before.arguments, sources or {}, earlier.parameter_changes
    )
    changes += _other_changes(parts, before)
    if not changes:
        return f"same key as in run '{earlier.run_name}', {_not_reusable(earlier)}"
    return f"since run '{earlier.run_name}': " + "; ".join(changes)


def input_changes(parts: KeyParts, before: KeyParts) -> list[str]:
    """What differs between the key parts of two calls of the same code, beside the code:
    what a resume whose call diverged from its record names."""
    return _argument_changes(parts.arguments, before.arguments, {}, []) + _other_changes(
        parts, before
    )


def _other_changes(parts: KeyParts, before: KeyParts) -> list[str]:
    """Changes in the parts beside the code and the arguments."""
    changes = _map_changes(
        lambda path: f"input file '{path}'", parts.files, before.files, values=False
    )
    changes += _map_changes(lambda name: f"library '{name}'", parts.libraries, before.libraries)
    changes += _map_changes(
        lambda name: f"class '{name}' of an input",
        parts.classes,
        before.classes,
        values=False,
    )
    if parts.extra != before.extra:
        changes.append("its cache_key_fn gave another value")
    if parts.outputs != before.outputs:
        changes.append("its outputs' types or materializers changed")
    return changes


def _argument_changes(
    now: Mapping[str, str],
    before: Mapping[str, str],
    sources: Mapping[str, str],
    parameter_changes: list[str],
) -> list[str]:
    """Changed arguments: those that are other steps' outputs name the step; the pipeline's
    parameter changes follow the others, being what literal arguments likely came from."""

    def changed(names: set[str], label: Callable[[str], str]) -> list[str]:
        return _map_changes(
            label,
            {name: token for name, token in now.items() if name in names},
            {name: token for name, token in before.items() if name in names},
        )

    names = now.keys() | before.keys()
    literal = changed(names - sources.keys(), lambda name: f"argument '{name}'")
    if literal and parameter_changes:
        literal[-1] += f" ({'; '.join(parameter_changes)})"
    from_steps = changed(
        names & sources.keys(), lambda name: f"argument '{name}' ({sources[name]})"
    )
    return literal + from_steps


def _not_reusable(earlier: Earlier) -> str:
    """Why a result with the very same key was not served."""
    if earlier.invalidated:
        return f"whose result was invalidated ({_INVALIDATE})"
    if earlier.status == "failed":
        return "where it failed"
    if earlier.status == "stopped":
        return "where it was stopped"
    if earlier.status == "cached":
        return "which reused a result that was since deleted"
    return "whose result cannot be reused (it did not finish, or was deleted)"


_INVALIDATE = "branchwork cache invalidate"


def _code_change(now: Mapping[str, str], before: Mapping[str, str] | None) -> str:
    if before is None:
        return "its code changed"
    changed = changed_parts(now, before)
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return f"code changed: {shown}" if shown else "its code changed"


def _map_changes(
    label: Callable[[str], str],
    now: Mapping[str, str],
    before: Mapping[str, str],
    values: bool = True,
    shown: Callable[[str], str] | None = None,
) -> list[str]:
    """`label(name) changed: old → new` for each name whose token differs; a token's value
    as `shown` gives it (`_value` by default)."""
    shown = shown or _value
    changes = []
    for name in sorted(now.keys() | before.keys()):
        old, new = before.get(name), now.get(name)
        if old == new:
            continue
        if old is None:
            changes.append(f"new {label(name)}")
        elif new is None:
            changes.append(f"{label(name)} is gone")
        elif values and _readable(old) and _readable(new):
            changes.append(f"{label(name)} changed: {shown(old)} → {shown(new)}")
        else:
            changes.append(f"{label(name)} changed")
    return changes


def _readable(token: str) -> bool:
    return not token.startswith(("hash:", "file:"))  # `file:` tokens name the file


def _value(token: str) -> str:
    """`int:5` -> `5`; a library version is its own value."""
    return token.split(":", 1)[1] if ":" in token else token
