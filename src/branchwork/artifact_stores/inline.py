"""Small outputs kept in the metadata store instead of the artifact store.

A folder and a file per output cost a `mkdir` and a write per step and a few KB of disk each,
more than the step's bookkeeping when its value is an int. So when a materializer that allows
it (`BaseMaterializer.INLINE`) saves one file of at most `INLINE_LIMIT` bytes, the file goes
into its artifact version row (`inline_data`: the file name, a NUL, the content) under the
content-addressed URI `inline://<content hash>`, and loads read it from there through an
`InlineStore`. Everything else about the artifact (materializer, hash, preview, versions) is
as for any other.
"""

from __future__ import annotations

import io
from typing import IO, Any

from branchwork.artifact_stores.base import BaseArtifactStore

INLINE_LIMIT = 1024  # bytes of the one file; a bigger value is written to the artifact store
INLINE_SCHEME = "inline://"


def inline_uri(content_hash: str) -> str:
    return f"{INLINE_SCHEME}{content_hash}"


def is_inline(uri: str) -> bool:
    return uri.startswith(INLINE_SCHEME)


def pack(filename: str, data: bytes) -> bytes:
    """The `inline_data` of an artifact whose one file is `filename` holding `data`."""
    return filename.encode("utf-8", "surrogateescape") + b"\0" + data


class InlineStore(BaseArtifactStore):
    """The read-only folder `uri` of one inline artifact, holding its one file: what its
    materializer loads it from, as from any store."""

    def __init__(self, uri: str, packed: bytes) -> None:
        name, _, self._data = packed.partition(b"\0")
        self.root = uri
        self._name = name.decode("utf-8", "surrogateescape")
        self._file = self.join(uri, self._name)

    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        if mode != "rb":
            raise PermissionError(f"{self.root} is stored inline and cannot be written")
        return io.BytesIO(self.read_bytes(uri))

    def read_bytes(self, uri: str) -> bytes:
        if uri != self._file:
            raise FileNotFoundError(f"No file {uri} in the inline artifact {self.root}")
        return self._data

    def makedirs(self, uri: str) -> None:
        raise PermissionError(f"{self.root} is stored inline and cannot be written")

    def exists(self, uri: str) -> bool:
        return uri in (self.root, self._file)

    def isdir(self, uri: str) -> bool:
        return uri == self.root

    def listdir(self, uri: str) -> list[str]:
        if uri != self.root:
            raise FileNotFoundError(f"No folder {uri} in the inline artifact {self.root}")
        return [self._name]

    def rmtree(self, uri: str) -> None:
        raise PermissionError(f"{self.root} is stored inline: it goes with its version's row")

    def remove(self, uri: str) -> None:
        raise PermissionError(f"{self.root} is stored inline: it goes with its version's row")

    def join(self, *parts: str) -> str:
        return "/".join(part.rstrip("/") for part in parts)
