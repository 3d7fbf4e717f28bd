"""An artifact store on any fsspec filesystem (s3://, gs://, memory://, file://, ...)."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

from branchwork.artifact_stores.base import BaseArtifactStore

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


class FsspecArtifactStore(BaseArtifactStore):
    """Artifacts under an fsspec URL `root`; URIs stay full URLs so they can be read back later."""

    def __init__(self, root: str) -> None:
        from fsspec.core import url_to_fs  # fsspec is only imported when a remote store is used

        self.root = root
        self.fs: AbstractFileSystem = url_to_fs(root)[0]

    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        file: IO[Any] = self.fs.open(uri, mode)
        return file

    def makedirs(self, uri: str) -> None:
        self.fs.makedirs(uri, exist_ok=True)

    def exists(self, uri: str) -> bool:
        return bool(self.fs.exists(uri))

    def isdir(self, uri: str) -> bool:
        return bool(self.fs.isdir(uri))

    def listdir(self, uri: str) -> list[str]:
        return [path.rstrip("/").rsplit("/", 1)[-1] for path in self.fs.ls(uri, detail=False)]

    def rmtree(self, uri: str) -> None:
        self.fs.rm(uri, recursive=True)

    def join(self, *parts: str) -> str:
        head, tail = parts[0], "/".join(part.strip("/") for part in parts[1:] if part)
        if not tail:
            return head
        return head + tail if head.endswith("/") else f"{head}/{tail}"
