"""sha256 of what a library writes, computed beside the writing rather than after it.

hashlib releases the GIL while it hashes a buffer (of 2 KiB or more), so a thread of its own
hashes on the other core while the library encodes and writes: a big artifact's content hash
then adds little wall time where a core is free (its CPU time still counts). The hash is the
same sha256 of the file's bytes, fed in order; only where it is computed changes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

# Immutable chunks smaller than this are hashed in batches of about this many bytes: handing
# one over to the thread costs tens of µs, and pyarrow writes 100 MB of Parquet as some
# 1 300 chunks, most under 200 KB. Bigger ones, and buffers a library may change once `write`
# returns, are hashed while they are written and never kept past it.
BATCH_SIZE = 4 << 20


class BackgroundSha256:
    """A sha256 fed in order, each buffer hashed on a thread of its own while the caller goes
    on. It holds at most the batch being hashed and one being collected (BATCH_SIZE bytes
    each) beyond what the caller holds."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._thread: ThreadPoolExecutor | None = None  # started on the first hand-over
        self._hashing: Future[None] | None = None
        self._batch: list[Any] = []
        self._batch_size = 0

    def add(self, chunk: bytes | bytearray) -> None:
        """Hash `chunk`, which nobody changes any more (bytes), after what came before: kept
        until it is hashed, with others in a batch."""
        self._batch.append(chunk)
        self._batch_size += len(chunk)
        if self._batch_size >= BATCH_SIZE:
            self._hand_over()

    def start(self, *buffers: Any) -> None:
        """Start hashing `buffers` after what came before; they must stay unchanged until
        `wait` or `digest` returns (or `close`, when the writing failed)."""
        self._batch.extend(buffers)
        self._hand_over()

    def wait(self) -> None:
        """Return once every buffer handed over is hashed."""
        if self._hashing is not None:
            self._hashing.result()
            self._hashing = None

    def digest(self) -> bytes:
        """The sha256 of everything given."""
        self._hand_over()
        self.wait()
        return self._sha256.digest()

    def close(self) -> None:
        """Stop the thread once it has hashed what it was given: the buffers are no longer
        read after this returns."""
        if self._thread is not None:
            self._thread.shutdown()

    def _hand_over(self) -> None:
        self.wait()
        if self._thread is None:
            from concurrent.futures import ThreadPoolExecutor  # imports logging: only when used

            self._thread = ThreadPoolExecutor(1, thread_name_prefix="branchwork-sha256")
        batch, self._batch, self._batch_size = self._batch, [], 0
        self._hashing = self._thread.submit(self._hash, batch)

    def _hash(self, batch: list[Any]) -> None:
        for buffer in batch:
            self._sha256.update(buffer)


class ExpectedContent:
    """What a library is about to write to a file, known beforehand (its first bytes, then
    buffers it writes as they are, e.g. a header and a tensor's memory), hashed while the
    library writes it."""

    def __init__(self, parts: Sequence[Any]) -> None:
        self._start = bytes(parts[0])
        self._size = sum(memoryview(part).nbytes for part in parts)
        self._sha256 = BackgroundSha256()
        self._sha256.start(*parts)

    def digest_if_written(self, path: str) -> bytes | None:
        """The sha256 of the parts if the file at `path` holds them (its size and its start
        match), else None: the library wrote something else, the file must be hashed."""
        try:
            digest = self._sha256.digest()
        finally:
            self._sha256.close()
        with open(path, "rb") as file:
            written = os.fstat(file.fileno()).st_size == self._size
            return digest if written and file.read(len(self._start)) == self._start else None

    def close(self) -> None:
        """Stop hashing (the library failed): the parts are no longer read after this."""
        self._sha256.close()
