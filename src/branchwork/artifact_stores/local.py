"""An artifact store on the local filesystem, with plain `os` calls (this is the hot path)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import IO, Any

from branchwork.artifact_stores.base import BaseArtifactStore

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)


def local_path(uri: str) -> str:
    """`uri` as a filesystem path: `file://` URLs are accepted as well as plain paths."""
    return uri[7:] if uri.startswith("file://") else uri


class LocalArtifactStore(BaseArtifactStore):
    """Artifacts as folders under a local `root`, which is created with the first artifact."""

    def __init__(self, root: str | Path) -> None:
        self.root = os.path.abspath(local_path(os.fspath(root)))

    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        return open(local_path(uri), mode)

    def makedirs(self, uri: str) -> None:
        path = local_path(uri)
        try:
            os.mkdir(path)  # one syscall in the usual case: only the last level is new
        except FileNotFoundError:
            os.makedirs(path, exist_ok=True)
        except FileExistsError:
            if not os.path.isdir(path):
                raise

    def exists(self, uri: str) -> bool:
        return os.path.exists(local_path(uri))

    def isdir(self, uri: str) -> bool:
        return os.path.isdir(local_path(uri))

    def listdir(self, uri: str) -> list[str]:
        return os.listdir(local_path(uri))

    def rmtree(self, uri: str) -> None:
        shutil.rmtree(local_path(uri))

    def remove(self, uri: str) -> None:
        os.remove(local_path(uri))

    def local_path(self, uri: str) -> str:
        return local_path(uri)

    def join(self, *parts: str) -> str:
        return os.path.join(*parts)

    def write_bytes(self, uri: str, data: bytes) -> None:
        fd = os.open(local_path(uri), _WRITE_FLAGS, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
