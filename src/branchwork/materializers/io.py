"""Saving and loading one artifact, with every failure reported as an ArtifactError."""

from __future__ import annotations

from typing import Any, NamedTuple

from branchwork.artifact_stores import BaseArtifactStore, artifact_store_for_uri
from branchwork.exceptions import ArtifactError
from branchwork.materializers import registry
from branchwork.materializers.base import BaseMaterializer, type_name
from branchwork.materializers.pickle_policy import allowed_by_user, loading
from branchwork.materializers.preview import failed_preview, preview_json


class SavedArtifact(NamedTuple):
    """What saving a value gives back: its content hash, its preview (JSON) and how many
    items it has for `step.map` (None: not known without loading it)."""

    content_hash: str
    preview: str
    item_count: int | None = None


def save_artifact(
    value: Any, uri: str, store: BaseArtifactStore, materializer_cls: type[BaseMaterializer]
) -> SavedArtifact:
    """Save `value` under `uri` with `materializer_cls`, and preview it."""
    try:
        materializer = materializer_cls(uri, store)
        materializer.save(value)
        content_hash = materializer.content_hash()
        item_count = materializer.item_count(value)
    except Exception as exc:
        raise ArtifactError(
            f"Could not save a {type_name(type(value))} value with materializer "
            f"{registry.materializer_path(materializer_cls)} to {uri}: {exc!r}"
        ) from exc
    try:
        preview = materializer.preview(value)
    except Exception as exc:  # a preview is a courtesy: it never fails the step
        preview = failed_preview(exc)
    return SavedArtifact(content_hash, preview_json(preview), item_count)


def load_artifact(
    uri: str,
    materializer_path: str,
    data_type: Any = Any,
    store: BaseArtifactStore | None = None,
    *,
    content_hash: str | None = None,
    allow_pickle: bool = False,
    item: int | None = None,
    stop: int | None = None,
) -> Any:
    """Load the artifact at `uri` written by the materializer recorded as `materializer_path`
    (only its item `item`, or items `item` to `stop`, when given: see
    `BaseMaterializer.load_item`).

    Without `store`, one is derived from the URI (artifacts are read back with no stack).
    A pickle inside it loads only as `pickle_policy` says, after checking `content_hash`.
    """
    materializer_cls = registry.load_materializer_class(materializer_path)
    try:
        store = store or artifact_store_for_uri(uri)
        materializer = materializer_cls(uri, store)
        with loading(materializer, allowed_by_user(allow_pickle), content_hash):
            if item is None:
                return materializer.load(data_type)
            return materializer.load_item(data_type, item, stop)
    except ArtifactError:
        raise
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"The artifact at {uri} is missing from the artifact store (deleted, or the store "
            f"moved?): {exc}"
        ) from exc
    except Exception as exc:
        raise ArtifactError(
            f"Could not load the artifact at {uri} with materializer {materializer_path}: {exc!r}"
        ) from exc
