"""The class users subclass to teach branchwork how to store a type of value."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from branchwork.artifact_stores.base import BaseArtifactStore
from branchwork.materializers.preview import Preview, short_repr


def type_name(data_type: type) -> str:
    """`data_type` as users write it in messages: `int`, `mypkg.models.Model`."""
    if data_type.__module__ == "builtins":
        return data_type.__qualname__
    return f"{data_type.__module__}.{data_type.__qualname__}"


class BaseMaterializer:
    """Saves one value as files in the folder `uri` and loads it back.

    Subclasses set `ASSOCIATED_TYPES` and implement `save` and `load`, ideally with
    `_write_bytes` / `_read_bytes`: files written that way are hashed as they are written.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = ()
    # True when `save` writes every file through `_write_bytes`: `content_hash` then trusts the
    # remembered digests without listing the folder (a syscall on the hot path). The built-ins
    # set it; a subclass of one that writes files another way must set it back to False.
    HASH_FROM_WRITES: ClassVar[bool] = False

    def __init__(self, uri: str, artifact_store: BaseArtifactStore) -> None:
        self.uri = uri
        self.artifact_store = artifact_store
        self._digests: dict[str, bytes] = {}  # file name -> sha256 of what _write_bytes wrote

    def load(self, data_type: type) -> Any:
        """The value stored under `uri`; `data_type` is the annotation asking for it."""
        raise NotImplementedError(f"{type(self).__qualname__} does not implement load()")

    def save(self, data: Any) -> None:
        """Store `data` as files under `uri`."""
        raise NotImplementedError(f"{type(self).__qualname__} does not implement save()")

    def preview(self, data: Any) -> Preview:
        """What to show of `data` without loading it (made when it is saved): its shortened
        repr here; subclasses add metadata (shape, dtypes) or a thumbnail."""
        return Preview(text=short_repr(data))

    def content_hash(self) -> str:
        """sha256 over every file under `uri`: its relative name and the sha256 of its bytes,
        in name order.

        Hashing per-file digests lets files written through `_write_bytes` be hashed without
        reading them back, and gives the same hash as reading them, so artifacts compare by it.
        """
        store, digests = self.artifact_store, self._digests
        if not digests or not (
            self.HASH_FROM_WRITES or digests.keys() == set(store.listdir(self.uri))
        ):
            digests = {
                name: hashlib.sha256(store.read_bytes(store.join(self.uri, name))).digest()
                for name in store.walk_files(self.uri)
            }
        total = hashlib.sha256()
        for name in sorted(digests):
            total.update(name.encode("utf-8", "surrogateescape") + b"\0" + digests[name])
        return total.hexdigest()

    def _write_bytes(self, filename: str, data: bytes) -> None:
        """Write the file `filename` (a plain name) under `uri`, creating the folder."""
        if "/" in filename or "\\" in filename:
            raise ValueError(f"_write_bytes takes a plain file name, not a path: {filename!r}")
        store = self.artifact_store
        if not self._digests:
            store.makedirs(self.uri)
        store.write_bytes(store.join(self.uri, filename), data)
        self._digests[filename] = hashlib.sha256(data).digest()

    def _read_bytes(self, filename: str) -> bytes:
        """The content of the file `filename` under `uri`."""
        return self.artifact_store.read_bytes(self.artifact_store.join(self.uri, filename))

    def _read_first(self, *filenames: str) -> tuple[str, bytes]:
        """The first of `filenames` present under `uri` and its content.

        Built-ins pick a file name per format, so loading finds the format without a listing.
        """
        for filename in filenames[:-1]:
            try:
                return filename, self._read_bytes(filename)
            except FileNotFoundError:
                continue
        return filenames[-1], self._read_bytes(filenames[-1])
