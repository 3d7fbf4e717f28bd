"""Saving and loading one artifact, with every failure reported as an ArtifactError."""

from __future__ import annotations

from typing import Any, NamedTuple

from branchwork.artifact_stores import BaseArtifactStore, artifact_store_for_uri
from branchwork.artifact_stores.inline import InlineStore, inline_uri, is_inline
from branchwork.exceptions import ArtifactError, MissingArtifactError
from branchwork.materializers import registry
from branchwork.materializers.base import BaseMaterializer, type_name
from branchwork.materializers.cloudpickle_materializer import PICKLE_FILE
from branchwork.materializers.pickle_policy import allowed_by_user, loading, recorded_as
from branchwork.materializers.preview import failed_preview, preview_json


class SavedArtifact(NamedTuple):
    """What saving a value gives back: the URI to record (an inline one when it is kept in the
    metadata store, with `inline` its data), its content hash, its preview (JSON) and how
    many items it has for `step.map` (None: not known without loading it)."""

    uri: str
    content_hash: str
    preview: str
    item_count: int | None = None
    inline: bytes | None = None


def save_artifact(
    value: Any,
    uri: str,
    store: BaseArtifactStore,
    materializer_cls: type[BaseMaterializer],
    *,
    allow_inline: bool = False,
) -> SavedArtifact:
    """Save `value` under `uri` with `materializer_cls`, and preview it. With `allow_inline`
    (a caller that records `SavedArtifact.inline`), a small value may be kept inline instead
    (see `artifact_stores.inline`)."""
    try:
        materializer = materializer_cls(uri, store)
        materializer.keeps_inline = allow_inline and materializer_cls.INLINE
        materializer.save(value)
        content_hash = materializer.content_hash()
        item_count = materializer.item_count(value)
        inline = materializer.inline_data()
    except Exception as exc:
        raise ArtifactError(
            f"Could not save a {type_name(type(value))} value with materializer "
            f"{registry.materializer_path(materializer_cls)} to {uri}: {exc!r}"
        ) from exc
    try:
        preview = materializer.preview(value)
    except Exception as exc:  # a preview is a courtesy: it never fails the step
        preview = failed_preview(exc)
    if materializer.wrote(PICKLE_FILE):  # loading it then needs allow_pickle: shown with it
        preview.metadata["pickled"] = True
    recorded_uri = uri if inline is None else inline_uri(content_hash)
    recorded_as(uri, recorded_uri)
    return SavedArtifact(recorded_uri, content_hash, preview_json(preview), item_count, inline)


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
    inline: bytes | None = None,
) -> Any:
    """Load the artifact at `uri` written by the materializer recorded as `materializer_path`
    (only its item `item`, or items `item` to `stop`, when given: see
    `BaseMaterializer.load_item`).

    Without `store`, one is derived from the URI (artifacts are read back with no stack); an
    inline artifact is read from `inline`, its data as its version row holds it.
    A pickle inside it loads only as `pickle_policy` says, after checking `content_hash`.
    """
    materializer_cls = registry.load_materializer_class(materializer_path)
    if is_inline(uri) and inline is None:
        raise ArtifactError(
            f"The artifact {uri} is stored in the metadata store, not the artifact store: load "
            "it through its artifact version (`Client().get_artifact_version(...).load()`)."
        )
    try:
        if inline is not None:
            store = InlineStore(uri, inline)
        store = store or artifact_store_for_uri(uri)
        materializer = materializer_cls(uri, store)
        with loading(materializer, allowed_by_user(allow_pickle), content_hash):
            if item is None:
                return materializer.load(data_type)
            return materializer.load_item(data_type, item, stop)
    except ArtifactError:
        raise
    except FileNotFoundError as exc:
        raise MissingArtifactError(
            f"The artifact at {uri} is missing from the artifact store (deleted, or the store "
            f"moved?): {exc}",
            uri,
        ) from exc
    except Exception as exc:
        raise ArtifactError(
            f"Could not load the artifact at {uri} with materializer {materializer_path}: {exc!r}"
        ) from exc
