"""Where artifact bytes live: the local disk or any fsspec filesystem."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from functools import lru_cache

from branchwork.artifact_stores.base import BaseArtifactStore
from branchwork.artifact_stores.configured import configured_spec_for, remember_store_spec
from branchwork.artifact_stores.fsspec_store import FsspecArtifactStore
from branchwork.artifact_stores.local import LocalArtifactStore, local_path

__all__ = [
    "BaseArtifactStore",
    "FsspecArtifactStore",
    "LocalArtifactStore",
    "artifact_store_for_uri",
    "artifact_store_from_spec",
    "remember_store_spec",
]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")  # two letters at least: C:\ is a path


def artifact_store_from_spec(spec: Mapping[str, str]) -> BaseArtifactStore:
    """The artifact store a `spec()` describes, as a stack or a step envelope carries it."""
    root = spec["root"]
    if "://" in root and not root.startswith("file://"):
        options = {name: value for name, value in spec.items() if name != "root"}
        return FsspecArtifactStore(root, **options)
    return LocalArtifactStore(root)


def artifact_store_for_uri(uri: str) -> BaseArtifactStore:
    """A store that can read the artifact at `uri`: the configured store whose root holds it
    (see `configured`), else one rooted at its parent folder.

    Artifacts are loaded from the metadata store, where only their URI is recorded.
    """
    match = _SCHEME.match(uri)
    if match is None or match.group(1).lower() == "file":
        return LocalArtifactStore(os.path.dirname(os.path.abspath(local_path(uri))))
    spec = configured_spec_for(uri)
    if spec is None:
        scheme, _, path = uri.partition("://")
        spec = {"root": f"{scheme}://{posixpath.dirname(path.rstrip('/'))}"}
    return _remote_store(tuple(sorted(spec.items())))


@lru_cache(maxsize=64)  # loads repeat the same roots, and each store connects once
def _remote_store(spec: tuple[tuple[str, str], ...]) -> BaseArtifactStore:
    return artifact_store_from_spec(dict(spec))
