"""scikit-learn estimators through skops, which stores a model's state rather than code.
Imported by the registry only once sklearn is loaded.

Loading trusts only types from scikit-learn, numpy and scipy, and classes of `builtins` (not
its functions, such as `eval`): skops would otherwise build whatever type the file names.
A model holding anything else (a custom transformer, a function of the user's), or that
skops cannot store, is pickled when saved, with a warning naming why, and loads under the
pickle rule; a skops file holding such types is refused with an error naming them.

skops names a file's parts after object ids, so saving the same model twice gives different
files and content hashes (a step downstream of a retrained model misses the cache).
"""

from __future__ import annotations

import builtins
from typing import Any, ClassVar

import skops.io
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from branchwork.exceptions import ArtifactError
from branchwork.materializers.base import BaseMaterializer, type_name
from branchwork.materializers.cloudpickle_materializer import (
    PICKLE_FILE,
    load_pickle,
    save_pickled,
)
from branchwork.materializers.preview import Preview, short_repr

MODEL_FILE = "model.skops"
TRUSTED_PACKAGES = frozenset({"sklearn", "numpy", "scipy"})
PREVIEW_PARAMS = 30  # parameters listed in a preview
PARAM_REPR = 100  # characters of each parameter's repr


class SklearnMaterializer(BaseMaterializer):
    """Estimators: `sklearn.base.BaseEstimator` and its subclasses (pipelines included)."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (BaseEstimator,)
    HASH_FROM_WRITES = True

    def save(self, data: Any) -> None:
        try:
            encoded = skops.io.dumps(data)
        except Exception as exc:  # skops raises several kinds, for types it cannot store
            save_pickled(self, data, f" that skops cannot store ({exc})")
            return
        refused = _refused(skops.io.get_untrusted_types(data=encoded))
        if refused:
            save_pickled(self, data, f" holding {', '.join(refused)} (skops loads those unsafely)")
            return
        self._write_bytes(MODEL_FILE, encoded)

    def load(self, data_type: type) -> Any:
        filename, data = self._read_first(MODEL_FILE, PICKLE_FILE)
        if filename == PICKLE_FILE:
            return load_pickle(data)
        untrusted = skops.io.get_untrusted_types(data=data)
        refused = _refused(untrusted)
        if refused:
            path = self.artifact_store.join(self.uri, MODEL_FILE)
            raise ArtifactError(
                f"Refusing to load the scikit-learn model at {path}: it holds types outside "
                f"scikit-learn, numpy and scipy ({', '.join(refused)}), and loading them could "
                "run code from the artifact store. If you trust this file, load its bytes "
                f"yourself with skops.io.loads(data, trusted={untrusted!r})."
            )
        return skops.io.loads(data, trusted=untrusted)

    def preview(self, data: Any) -> Preview:
        parameters = list(data.get_params(deep=False).items())[:PREVIEW_PARAMS]
        metadata: dict[str, Any] = {
            "class": type_name(type(data)),
            "params": {name: short_repr(value)[:PARAM_REPR] for name, value in parameters},
            "fitted": _is_fitted(data),
        }
        if isinstance(data, Pipeline):
            metadata["steps"] = [[name, type_name(type(step))] for name, step in data.steps]
        return Preview(text=repr(data), metadata=metadata)


def _refused(type_names: list[str]) -> list[str]:
    """The types among `type_names` ("module.QualName") loading does not trust."""
    return [name for name in type_names if not _trusted(name)]


def _trusted(type_name: str) -> bool:
    package, _, name = type_name.partition(".")
    if package == "builtins":
        return isinstance(getattr(builtins, name, None), type)
    return package in TRUSTED_PACKAGES


def _is_fitted(estimator: Any) -> bool:
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True
