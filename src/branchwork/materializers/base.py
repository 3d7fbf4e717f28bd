"""The class users subclass to teach branchwork how to store a type of value.

Big values go between a library and the artifact store with no copy in memory: a library
writes into `_open_write`'s file (or `_write_path`'s path when it only writes to paths), which
hashes what passes through it, and reads from `_find_first`'s local path when the store is a
local folder, or from the file's content fetched in one request from a remote store.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import hashlib
import io
import mmap
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, ClassVar

from branchwork.artifact_stores.base import BaseArtifactStore
from branchwork.artifact_stores.inline import INLINE_LIMIT, pack
from branchwork.materializers.hashing import BATCH_SIZE, BackgroundSha256, ExpectedContent
from branchwork.materializers.preview import Preview, short_repr
from branchwork.user_code import recorded_module

CHUNK_SIZE = 1 << 20  # bytes copied at a time from a temporary file into a remote store
# From this size on a file is big: a library writes it straight into the store and reads it
# from its local path. A smaller one is built, and read, in memory in one call each, which
# costs less than opening (or mapping) a file.
BIG_FILE_SIZE = 1 << 20


def type_name(data_type: type) -> str:
    """`data_type` as users write it in messages: `int`, `mypkg.models.Model`."""
    if data_type.__module__ == "builtins":
        return data_type.__qualname__
    return f"{recorded_module(data_type.__module__)}.{data_type.__qualname__}"


class BaseMaterializer:
    """Saves one value as files in the folder `uri` and loads it back.

    Subclasses set `ASSOCIATED_TYPES` and implement `save` and `load`, ideally with
    `_write_bytes` / `_read_bytes`, or for big values `_open_write` (or `_write_path`) /
    `_find_first`: files written that way are hashed as they are written.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = ()
    # True when `save` writes every file through the helpers (`_write_bytes`, `_open_write`,
    # `_write_path`): `content_hash` then trusts the remembered digests without listing the
    # folder (a syscall on the hot path). The built-ins set it; a subclass of one that writes
    # files another way must set it back to False.
    HASH_FROM_WRITES: ClassVar[bool] = False
    # Built-in containers (dict) some of whose values this materializer stores better than the
    # built-ins do, picked per value by `claims` (a dict of tensors is a PyTorch state_dict).
    # Read for branchwork's lazily loaded materializers; a registration of the value's type wins.
    CLAIMED_TYPES: ClassVar[tuple[type, ...]] = ()
    # True when a value saved as one small file through `_write_bytes` may be kept in the
    # metadata store (`artifact_stores.inline`): its `load` must then read only through
    # `_read_bytes`, `_read_first`, `_find_first` or `self.artifact_store`. The built-ins set it.
    INLINE: ClassVar[bool] = False

    @classmethod
    def claims(cls, value: Any) -> bool:
        """Whether to store `value`, of one of CLAIMED_TYPES, with this materializer."""
        return False

    def __init__(self, uri: str, artifact_store: BaseArtifactStore) -> None:
        self.uri = uri
        self.artifact_store = artifact_store
        self._digests: dict[str, bytes] = {}  # file name -> sha256 of what the helpers wrote
        # Set by a caller that records `inline_data()` (a step storing its outputs)
        self.keeps_inline = False
        self._held: tuple[str, bytes] | None = None  # a small file not written (yet)

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

    def item_count(self, data: Any) -> int | None:
        """How many items `step.map` fans out over when this output is mapped, recorded when
        it is saved so the orchestration loop never loads it to count them; None when the
        value has none (the loop then loads it to find out, and fails clearly)."""
        return None

    def load_item(self, data_type: type, index: int, stop: int | None = None) -> Any:
        """Item `index` of the stored value, or its items `index` to `stop` (excluded) as a
        value of its own kind (a mapped step's chunk). This fallback loads the whole value
        once per process and `select`s a copy; materializers of big values read only what
        is asked."""
        return copy.deepcopy(self.select(_WHOLE_VALUES.get(self, data_type), index, stop))

    @staticmethod
    def select(value: Any, index: int, stop: int | None) -> Any:
        """Item `index` (or items `index` to `stop`) of a loaded value, as `load_item` gives it
        and as the pipeline body sees `output[index]` of a mapped output."""
        return value[index] if stop is None else value[index:stop]

    def content_hash(self) -> str:
        """sha256 over every file under `uri`: its relative name and the sha256 of its bytes,
        in name order.

        Hashing per-file digests lets files written through `_write_bytes` be hashed without
        reading them back, and gives the same hash as reading them, so artifacts compare by it.
        """
        store, digests = self.artifact_store, self._digests
        trusted = self.HASH_FROM_WRITES or self._held is not None
        if not digests or not (trusted or digests.keys() == set(store.listdir(self.uri))):
            digests = {
                name: hashlib.sha256(store.read_bytes(store.join(self.uri, name))).digest()
                for name in store.walk_files(self.uri)
            }
        total = hashlib.sha256()
        for name in sorted(digests):
            total.update(name.encode("utf-8", "surrogateescape") + b"\0" + digests[name])
        return total.hexdigest()

    def wrote(self, filename: str) -> bool:
        """Whether `save` wrote the file `filename` (or holds it, to keep inline)."""
        return filename in self._digests or (self._held is not None and self._held[0] == filename)

    def inline_data(self) -> bytes | None:
        """What to keep in the metadata store instead of the artifact store, once `save`
        returned: its one file when it wrote a single small one (see `INLINE`), else None."""
        return None if self._held is None else pack(*self._held)

    def _write_bytes(self, filename: str, data: bytes) -> None:
        """Write the file `filename` (a plain name) under `uri`, creating the folder; or hold
        it, when it may be the value's only file and is small enough to keep inline."""
        if self.keeps_inline and not self._digests and len(data) <= INLINE_LIMIT:
            _check_plain(filename)
            self._held = (filename, data)
        else:
            self.artifact_store.write_bytes(self._new_file(filename), data)
        self._digests[filename] = hashlib.sha256(data).digest()

    @contextlib.contextmanager
    def _open_write(self, filename: str) -> Iterator[HashingWriter]:
        """A binary file for a library to write the file `filename` under `uri` into
        (`frame.to_parquet(file)`), hashed on its way: a big value goes straight into the
        store, never built in memory first. If the block raises, nothing is left behind for
        a load to find half of."""
        writer = HashingWriter(self.artifact_store, self._new_file(filename))
        try:
            yield writer
        except BaseException:
            writer.discard()
            raise
        self._digests[filename] = writer.finish()

    @contextlib.contextmanager
    def _write_path(self, filename: str, content: Sequence[Any] = ()) -> Iterator[str]:
        """A local path for a library that writes only to paths (safetensors' `save_file`)
        to write the file `filename` at: the artifact's own file on a local store, hashed once
        written; else a temporary file, then copied into the store.

        `content` is what the library will write, when the caller knows it beforehand: the
        file's first bytes, then buffers the library writes as they are (a tensor's memory).
        On a local store it is hashed while the library writes, instead of the file after;
        a file that turns out not to start with those bytes or to have another size is
        hashed after all."""
        path = self.artifact_store.local_path(self._new_file(filename))
        if path is None:
            with tempfile.TemporaryDirectory(prefix="branchwork-") as folder:
                path = os.path.join(folder, filename)
                yield path
                with open(path, "rb") as written, self._open_write(filename) as file:
                    shutil.copyfileobj(written, file, CHUNK_SIZE)
            return
        expected = ExpectedContent(content) if content else None
        try:
            yield path
            self._digests[filename] = _file_sha256(path, expected)
        except BaseException:
            if expected is not None:
                expected.close()
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            raise

    def _new_file(self, filename: str) -> str:
        """The URI of the file `filename` (a plain name) under `uri`, creating the folder with
        the first file (a held one is written first: it is not the only file after all)."""
        _check_plain(filename)
        store = self.artifact_store
        if self._held is not None:
            (held_name, held_data), self._held = self._held, None
            store.makedirs(self.uri)
            store.write_bytes(store.join(self.uri, held_name), held_data)
        elif not self._digests:
            store.makedirs(self.uri)
        return store.join(self.uri, filename)

    def _read_bytes(self, filename: str) -> bytes:
        """The content of the file `filename` under `uri`."""
        return self.artifact_store.read_bytes(self.artifact_store.join(self.uri, filename))

    def _find_first(self, *filenames: str) -> StoredFile:
        """The first of `filenames` present under `uri`, where a library reads it from: its
        path when the store is a local folder and the file is big, else its content (one
        request to a remote store, where reading a file piece by piece costs a request per
        piece)."""
        folder = self.artifact_store.local_path(self.uri)
        if folder is None:
            return StoredFile(*self._read_first(*filenames))
        for filename in filenames:
            path = os.path.join(folder, filename)
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                continue
            if size < BIG_FILE_SIZE:
                return StoredFile(filename, content=self._read_bytes(filename))
            return StoredFile(filename, path=path)
        raise FileNotFoundError(
            errno.ENOENT, f"No file {' or '.join(filenames)} in the artifact folder", self.uri
        )

    def _read_first(self, *filenames: str) -> tuple[str, bytes]:
        """The first of `filenames` present under `uri` and its content.

        Built-ins pick a file name per format, so loading finds the format without a listing.
        """
        for filename in filenames:
            try:
                return filename, self._read_bytes(filename)
            except FileNotFoundError:
                continue
        raise FileNotFoundError(  # each it looked for: the last alone named data.pkl
            errno.ENOENT, f"No file {' or '.join(filenames)} in the artifact folder", self.uri
        )


class HashingWriter(io.RawIOBase):
    """A binary file writing into the store's file `uri` and hashing what it writes (sha256).
    Most values are small: up to BIG_FILE_SIZE bytes it keeps what is written in memory, and
    writes and hashes it in one call when finished (cheaper than opening the file); past
    that it opens the file and writes everything through, hashed on a thread of its own
    while the library goes on."""

    def __init__(self, store: BaseArtifactStore, uri: str) -> None:
        self._store = store
        self._uri = uri
        self._sha256 = BackgroundSha256()
        self._kept = bytearray()  # what is written until the file is opened
        self._file: IO[bytes] | None = None
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._position += len(view)
        if self._file is None and self._position <= BIG_FILE_SIZE:
            self._kept += view
            return len(view)
        if self._file is None:
            self._file = self._store.open(self._uri, "wb")
            self._file.write(self._kept)
            self._sha256.add(self._kept)  # no longer changed: a new one replaces it
            self._kept = bytearray()
        if type(data) is bytes and len(view) < BATCH_SIZE:
            self._sha256.add(data)
            self._file.write(view)
        else:  # a library may change its buffer once `write` returns: hashed while written
            self._sha256.start(view)
            self._file.write(view)
            self._sha256.wait()
        return len(view)

    def tell(self) -> int:
        return self._position

    def finish(self) -> bytes:
        """Write what is kept in memory, or close the file; the sha256 of all written."""
        if self._file is None:
            data = bytes(self._kept)
            self._store.write_bytes(self._uri, data)
            return hashlib.sha256(data).digest()
        try:
            self._file.close()
            return self._sha256.digest()
        finally:
            self._sha256.close()

    def discard(self) -> None:
        """Remove what was written to the store (the library writing failed)."""
        if self._file is not None:
            self._sha256.close()
            self._file.close()
            with contextlib.suppress(FileNotFoundError):
                self._store.remove(self._uri)


class _WholeValues:
    """The last few values `load_item`'s fallback loaded whole in this process, by URI
    (artifacts never change once written): the items of one mapped output, run as threads
    of one process, load it once."""

    SIZE = 2

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, materializer: BaseMaterializer, data_type: type) -> Any:
        with self._lock:
            if materializer.uri in self._values:
                return self._values[materializer.uri]
        value = materializer.load(data_type)  # outside the lock: a big load blocks no one
        with self._lock:
            self._values[materializer.uri] = value
            while len(self._values) > self.SIZE:
                del self._values[next(iter(self._values))]
        return value


_WHOLE_VALUES = _WholeValues()


THREADED_READS_FROM = 16 * 2**20  # bytes: see StoredFile.worth_threads


@dataclass(frozen=True)
class StoredFile:
    """A file of an artifact, as `BaseMaterializer._find_first` found it: its name and its
    path on this machine (a local store), or else its content."""

    name: str
    content: bytes = b""
    path: str | None = None

    def source(self) -> str | io.BytesIO:
        """What polars and numpy read: the path, or the content as a file."""
        return self.path if self.path is not None else io.BytesIO(self.content)

    def arrow_source(self) -> Any:
        """What pyarrow's readers (pandas' parquet too) read: the path, or the content as
        pyarrow's own buffer (a Python file object there makes an abort at exit likelier:
        see `worth_threads`)."""
        if self.path is not None:
            return self.path
        import pyarrow as pa

        return pa.BufferReader(self.content)

    @property
    def worth_threads(self) -> bool:
        """Whether pyarrow should decode it on its thread pool: only a big file gains from
        that, and a process whose read used the pool sometimes aborts as it exits
        ("terminate called without an active exception", apache/arrow#34314): about one
        `branchwork artifacts load` of a small table in fifteen did."""
        size = len(self.content) if self.path is None else os.path.getsize(self.path)
        return size >= THREADED_READS_FROM

    def read(self) -> bytes:
        """The content, read from the path if need be."""
        if self.path is None:
            return self.content
        with open(self.path, "rb") as file:
            return file.read()


def _check_plain(filename: str) -> None:
    if "/" in filename or "\\" in filename:
        raise ValueError(f"materializers write plain file names, not paths: {filename!r}")


def _file_sha256(path: str, expected: ExpectedContent | None = None) -> bytes:
    """sha256 of the file at `path`: `expected`'s, hashed while the file was written, when the
    file holds what it expected; else the file's, mapped into memory rather than copied out a
    chunk at a time (the file was just written: its pages are in the page cache)."""
    digest = expected.digest_if_written(path) if expected is not None else None
    if digest is not None:
        return digest
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            return hashlib.sha256().digest()  # an empty file cannot be mapped
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return hashlib.sha256(mapped).digest()
