"""pydantic models as the JSON pydantic writes (`model_dump_json`), validated back on loading.

Imported by the registry only once pydantic is already loaded. The model's class is the
`data_type` that `load` receives (the artifact's recorded type). A model is written as JSON
only when validating that JSON gives back an equal model: a tuple in an `Any` field, private
attributes, validators that change values all make it a pickle, with the usual warning.
Every field of a loaded model counts as set (`model_fields_set`).
"""

from __future__ import annotations

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
        encoded = model.model_dump_json(warnings=False)
        same = type(model).model_validate_json(encoded) == model
    except Exception:  # serializing or validating failed (validators may raise anything)
        return None
    return encoded.encode() if same else None
