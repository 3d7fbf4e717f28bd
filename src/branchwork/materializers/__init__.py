"""How values become artifact files and back.

Import-light on purpose: numpy, pandas, fsspec and cloudpickle are only imported when a value
needs them.
"""

from branchwork.materializers.base import BaseMaterializer
from branchwork.materializers.builtin import (
    BuiltinMaterializer,
    BytesMaterializer,
    CollectionMaterializer,
)
from branchwork.materializers.cloudpickle_materializer import CloudpickleMaterializer
from branchwork.materializers.io import load_artifact, save_artifact
from branchwork.materializers.registry import (
    load_materializer_class,
    materializer_for,
    materializer_path,
    register_materializer,
)

__all__ = [
    "BaseMaterializer",
    "BuiltinMaterializer",
    "BytesMaterializer",
    "CloudpickleMaterializer",
    "CollectionMaterializer",
    "load_artifact",
    "load_materializer_class",
    "materializer_for",
    "materializer_path",
    "register_materializer",
    "save_artifact",
]
