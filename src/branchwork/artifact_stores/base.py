"""The interface every artifact store implements: a folder tree addressed by URI strings.

Materializers only talk to this interface, so one materializer works on a local disk, S3 or
in memory alike.
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from typing import IO, Any

from branchwork.ids import new_id

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@functools.lru_cache(maxsize=1024)
def safe_folder_name(hint: str) -> str:
    """`hint` reduced to characters that are safe in a folder name on every store."""
    return _UNSAFE.sub("_", hint).strip("._")[:64] or "artifact"


class BaseArtifactStore(ABC):
    """A tree of folders and files under `root`; URIs are strings that `join` builds."""

    root: str

    @abstractmethod
    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        """Open the file at `uri` (binary or text mode, as `builtins.open`)."""

    @abstractmethod
    def makedirs(self, uri: str) -> None:
        """Create the folder `uri` and its parents; no error if it exists."""

    @abstractmethod
    def exists(self, uri: str) -> bool:
        """Whether a file or folder exists at `uri`."""

    @abstractmethod
    def isdir(self, uri: str) -> bool:
        """Whether `uri` is a folder (needed to walk an artifact's files)."""

    @abstractmethod
    def listdir(self, uri: str) -> list[str]:
        """The names (not URIs) of the entries of folder `uri`."""

    @abstractmethod
    def rmtree(self, uri: str) -> None:
        """Delete the folder `uri` and everything under it."""

    @abstractmethod
    def remove(self, uri: str) -> None:
        """Delete the file `uri` (a write that failed half-way must leave nothing to load)."""

    @abstractmethod
    def join(self, *parts: str) -> str:
        """One URI from a base URI and names below it."""

    def spec(self) -> dict[str, str]:
        """What another process needs to build this store again (`artifact_store_from_spec`):
        JSON, never a secret."""
        return {"root": self.root}

    def local_path(self, uri: str) -> str | None:
        """`uri` as a path on this machine when the store is a local folder, else None.

        Given a path, a library reads a big file itself (or maps it into memory) with no copy
        in between; artifact files are written once and never changed in place, so mapping
        them is safe."""
        return None

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write `data` as the whole file at `uri`; stores override it when they can do better."""
        with self.open(uri, "wb") as file:
            file.write(data)

    def read_bytes(self, uri: str) -> bytes:
        """The whole content of the file at `uri`."""
        with self.open(uri, "rb") as file:
            data: bytes = file.read()
        return data

    def read_range(self, uri: str, start: int, end: int) -> bytes:
        """Bytes `start` to `end` (excluded) of the file at `uri`: one item of a mapped
        output, read without the rest (one request on an object store)."""
        with self.open(uri, "rb") as file:
            file.seek(start)
            data: bytes = file.read(end - start)
        return data

    def walk_files(self, uri: str) -> list[str]:
        """Every file under folder `uri`, as '/'-separated paths relative to it."""
        found: list[str] = []
        for name in self.listdir(uri):
            child = self.join(uri, name)
            if self.isdir(child):
                found.extend(f"{name}/{sub}" for sub in self.walk_files(child))
            else:
                found.append(name)
        return found

    def new_artifact_uri(self, name_hint: str) -> str:
        """A fresh folder URI `root/<hint>/<uuid>` that no other artifact uses (not created)."""
        return self.join(self.root, safe_folder_name(name_hint), new_id())
