"""Cache keys: the same code, parameters, input contents and materializers give the same key.

Input artifacts enter by content hash, not by id, so a rerun whose upstream steps produced
equal values hits the cache even though those values are new artifact versions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from branchwork.graph.invocation import Invocation, OutputRef
from branchwork.materializers.registry import materializer_path


def _hashed(value: Any, content_hash: Callable[[OutputRef], str]) -> Any:
    if isinstance(value, OutputRef):
        return {"$hash": content_hash(value), "index": value.item}
    if isinstance(value, (list, tuple)):
        return [_hashed(item, content_hash) for item in value]
    if isinstance(value, dict):
        return {str(key): _hashed(item, content_hash) for key, item in value.items()}
    return value


def cache_key(invocation: Invocation, content_hash: Callable[[OutputRef], str]) -> str:
    step = invocation.step
    payload = {
        "code": step.code_hash,
        "inputs": _hashed(invocation.inputs, content_hash),
        "outputs": [
            [
                spec.name,
                repr(spec.annotation),
                materializer_path(spec.materializer) if spec.materializer else None,
            ]
            for spec in step.outputs
        ],
    }
    encoded = json.dumps(payload, sort_keys=True, default=repr).encode()
    return hashlib.sha256(encoded).hexdigest()
