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
    in sorted order); OSError when it cannot be read."""
    target = Path(path)
    digest = hashlib.sha256()
    if target.is_dir():
        for file in sorted(p for p in target.rglob("*") if p.is_file()):
            digest.update(file.relative_to(target).as_posix().encode() + b"\0")
            _feed(digest, file)
    else:
        _feed(digest, target)
    return digest.hexdigest()


def _feed(digest: Any, file: Path) -> None:
    with open(file, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
