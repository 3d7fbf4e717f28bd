"""Where artifact bytes live: the local disk or any fsspec filesystem."""

from __future__ import annotations

import os
import posixpath
import re
from functools import lru_cache

from branchwork.artifact_stores.base import BaseArtifactStore
from branchwork.artifact_stores.fsspec_store import FsspecArtifactStore
from branchwork.artifact_stores.local import LocalArtifactStore, local_path

__all__ = [
    "BaseArtifactStore",
    "FsspecArtifactStore",
    "LocalArtifactStore",
    "artifact_store_for_root",
    "artifact_store_for_uri",
]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")  # two letters at least: C:\ is a path


def artifact_store_for_root(root: str) -> BaseArtifactStore:
    """The artifact store rooted at `root` (a local path or an fsspec URL), as a stack or a
    step envelope records it."""
    if "://" in root and not root.startswith("file://"):
        return FsspecArtifactStore(root)
    return LocalArtifactStore(root)


def artifact_store_for_uri(uri: str) -> BaseArtifactStore:
    """A store that can read the artifact at `uri`, rooted at its parent folder.

    Artifacts are loaded from the metadata store, where only their URI is recorded.
    """
    match = _SCHEME.match(uri)
    if match is None or match.group(1).lower() == "file":
        return LocalArtifactStore(os.path.dirname(os.path.abspath(local_path(uri))))
    scheme, _, path = uri.partition("://")
    return _fsspec_store(f"{scheme}://{posixpath.dirname(path.rstrip('/'))}")


@lru_cache(maxsize=64)  # building an fsspec filesystem is slow; loads repeat the same roots
def _fsspec_store(root: str) -> FsspecArtifactStore:
    return FsspecArtifactStore(root)
