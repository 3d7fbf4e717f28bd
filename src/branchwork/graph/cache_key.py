"""Cache keys: the same code, parameters, input contents and materializers give the same key.

Input artifacts enter by content hash, not by id, so a rerun whose upstream steps produced
equal values hits the cache even though those values are new artifact versions. Parameters
enter by their `branchwork.values` encoding, which keeps types: a step called with `(1, 2)`
and with `[1, 2]` has two keys.

A key starts with its format, `KEY_FORMAT`; keys of the format before it are plain hex. A key
of another format is a cache miss, and not evidence that a rerun or a resumed run changed its
graph (see `same_key_format`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from branchwork.graph.invocation import Invocation, OutputRef
from branchwork.materializers.registry import materializer_path
from branchwork.values import Leaf, canonical, hash_json

if TYPE_CHECKING:
    from branchwork.steps.step import Step

KEY_FORMAT = "v2"


def cache_key(invocation: Invocation, content_hash: Callable[[OutputRef], str]) -> str:
    step = invocation.step
    by_content = Leaf(
        "$hash", OutputRef, lambda ref: {"$hash": content_hash(ref), "index": ref.item}
    )
    payload = {
        "code": step.code_hash,
        "inputs": canonical(invocation.inputs, by_content),
        "outputs": _outputs_of(step),
    }
    # 64 characters in all: the width of the store's cache_key column
    return KEY_FORMAT + hash_json(payload)[len(KEY_FORMAT) :]


@functools.lru_cache(maxsize=1024)
def _outputs_of(step: Step[Any, Any]) -> list[list[str | None]]:
    """What a step's outputs are and how they are stored: computed once per step."""
    return [
        [
            spec.name,
            repr(spec.annotation),
            materializer_path(spec.materializer) if spec.materializer else None,
        ]
        for spec in step.outputs
    ]


def same_key_format(a: str | None, b: str | None) -> bool:
    """Whether two keys are of one format, so that a difference means different inputs."""
    return (a or "").startswith(KEY_FORMAT) == (b or "").startswith(KEY_FORMAT)
