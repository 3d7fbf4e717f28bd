"""pydantic models as the JSON pydantic writes (`model_dump_json`), validated back on loading.

Imported by the registry only once pydantic is already loaded. The model's class is the
`data_type` that `load` receives (the artifact's recorded type). A model is written as JSON
only when validating that JSON gives back an equal model: a tuple in an `Any` field, private
attributes, validators that change values all make it a pickle, with the usual warning.
Every field of a loaded model counts as set (`model_fields_set`).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import BaseModel

from branchwork.materializers.base import BaseMaterializer
from branchwork.materializers.cloudpickle_materializer import (
    PICKLE_FILE,
    load_pickle,
    save_pickled,
)
from branchwork.materializers.dataclass_materializer import MissingClassError, class_preview
from branchwork.materializers.preview import Preview

MODEL_FILE = "model.json"


class PydanticMaterializer(BaseMaterializer):
    """`pydantic.BaseModel` and its subclasses."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (BaseModel,)
    HASH_FROM_WRITES = True
    INLINE = True

    def save(self, data: Any) -> None:
        encoded = _exact_json(data)
        if encoded is None:
            save_pickled(self, data, " whose JSON does not validate back to an equal model")
            return
        self._write_bytes(MODEL_FILE, encoded)

    def load(self, data_type: type) -> Any:
        filename, data = self._read_first(MODEL_FILE, PICKLE_FILE)
        if filename == PICKLE_FILE:
            return load_pickle(data)
        if not (isinstance(data_type, type) and issubclass(data_type, BaseModel)):
            raise MissingClassError.asked_for("pydantic model", data_type)
        return data_type.model_validate_json(data)

    def preview(self, data: Any) -> Preview:
        """The shortened repr, the class and its field names."""
        return class_preview(data, list(type(data).model_fields))


def _exact_json(model: BaseModel) -> bytes | None:
    """The model's JSON, or None when validating it does not give back an equal model."""
    try:
        encoded = _json_of(model)
        same = type(model).model_validate_json(encoded) == model
    except Exception:  # serializing or validating failed (validators may raise anything)
        return None
    return encoded.encode() if same else None


def _json_of(model: BaseModel) -> str:
    """`model_dump_json`, with its sets written sorted: pydantic writes a set in its
    iteration order, which for strs follows the process's hash seed, so an equal model was
    another file, and content hash, in each process (every step downstream missed)."""
    plain = model.model_dump(warnings=False)
    if not _holds_set(plain):
        return model.model_dump_json(warnings=False)
    encoded = _sets_sorted(plain, model.model_dump(mode="json", warnings=False))
    return json.dumps(encoded, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _holds_set(plain: Any) -> bool:
    if isinstance(plain, (set, frozenset)):
        return True
    if isinstance(plain, dict):
        return any(_holds_set(value) for value in plain.values())
    if isinstance(plain, (list, tuple)):
        return any(_holds_set(value) for value in plain)
    return False


def _sets_sorted(plain: Any, encoded: Any) -> Any:
    """`encoded` (the model's `model_dump(mode="json")`) with each list that is a set in
    `plain` (its `model_dump()`, the same shape) sorted by its items' JSON; where the two
    shapes differ (a serializer of the user's), as it is."""
    if isinstance(plain, (set, frozenset)) and isinstance(encoded, list):
        return sorted(encoded, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(plain, dict) and isinstance(encoded, dict) and len(plain) == len(encoded):
        pairs = zip(plain.values(), encoded.items())  # dicts keep their order; keys may differ
        return {key: _sets_sorted(value, item) for value, (key, item) in pairs}
    if isinstance(plain, (list, tuple)) and isinstance(encoded, list):
        return [_sets_sorted(value, item) for value, item in zip(plain, encoded)]
    return encoded
