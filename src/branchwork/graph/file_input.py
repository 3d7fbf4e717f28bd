"""`FileInput`: a path whose contents enter the step's cache key.

A step that reads a file by path depends on something outside its arguments: the path stays
the same when the file changes. Passed as `FileInput("data.csv")` — or as a plain path to a
parameter annotated `FileInput` — the file (or every file under a folder) is hashed by
content when the step's key is computed, so a changed CSV means a new run of the step. It is
a `str`, so the step opens it as any path; a path that cannot be read makes the key fail,
which is a cache miss with that reason, never a hit.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


class FileInput(str):
    """A path (to a file or a folder) whose contents are part of the step's cache key."""

    __slots__ = ()

    def __new__(cls, path: str | os.PathLike[str]) -> FileInput:
        return super().__new__(cls, os.fspath(path))

    def __repr__(self) -> str:
        return f"FileInput({str.__repr__(self)})"


def content_hash(path: str) -> str:
    """The sha256 of a file's bytes, or of a folder's files (relative paths and contents,
    each after its length, in sorted order), through symbolic links as the step reads them;
    OSError when it cannot be read."""
    path = str.__str__(path)  # a plain str: errors name the path, not `FileInput('...')`
    digest = hashlib.sha256()
    if not os.path.isdir(path):
        _feed(digest, path)
        return digest.hexdigest()
    digest.update(b"folder\0")
    for name, file in sorted(_files_under(path)):
        encoded = name.encode()
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        digest.update(os.path.getsize(file).to_bytes(8, "big"))
        _feed(digest, file)
    return digest.hexdigest()


def _files_under(folder: str) -> list[tuple[str, str]]:
    """(path relative to `folder` with "/", path) of every file under it, symbolic links to
    folders followed (`rglob` did not: a `latest -> run_7` folder's files went unhashed) and
    each real folder walked once (a link to a parent would loop)."""
    files, walked = [], set()
    for root, folders, names in os.walk(folder, followlinks=True, onerror=_raise):
        real = os.path.realpath(root)
        if real in walked:
            folders.clear()
            continue
        walked.add(real)
        folders.sort()  # one order everywhere: which path of a folder linked twice is hashed
        for name in names:
            file = os.path.join(root, name)
            if os.path.isfile(file):
                files.append((Path(os.path.relpath(file, folder)).as_posix(), file))
    return files


def _raise(error: OSError) -> None:
    raise error


def _feed(digest: Any, file: str) -> None:
    with open(file, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
