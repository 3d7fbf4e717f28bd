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
import types
import typing
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


def names_files(hint: Any) -> bool:
    """Whether a parameter annotated `hint` takes paths as files: `FileInput`, optional
    (`FileInput | None`), or inside a list, tuple, set or dict (`list[FileInput]`)."""
    if hint is FileInput or (isinstance(hint, str) and hint == "FileInput"):
        return True
    if typing.get_origin(hint) is typing.Literal:
        return False
    return any(names_files(argument) for argument in typing.get_args(hint))


def as_file_inputs(hint: Any, value: Any) -> Any:
    """`value` with the paths in it that a parameter annotated `hint` takes as files made
    `FileInput`s: a plain path passed for `list[FileInput]` or `FileInput | None` was keyed
    by its text alone, and a changed file was served the stale result."""
    if isinstance(value, FileInput) or not names_files(hint):
        return value
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(value, (str, os.PathLike)):
        takes_path = names_files(hint) and (
            hint is FileInput or isinstance(hint, str) or FileInput in arguments
        )
        return FileInput(value) if takes_path else value
    if origin is typing.Annotated:
        return as_file_inputs(arguments[0], value)
    if origin in (typing.Union, types.UnionType):
        for argument in arguments:
            converted = as_file_inputs(argument, value)
            if converted is not value:
                return converted
        return value
    if type(value) is dict and len(arguments) == 2:
        return {key: as_file_inputs(arguments[1], item) for key, item in value.items()}
    if type(value) in (list, tuple, set, frozenset) and arguments:
        if origin is tuple and arguments[-1] is not Ellipsis:  # tuple[FileInput, int]
            converted = [as_file_inputs(h, item) for h, item in zip(arguments, value)]
            converted += list(value)[len(arguments) :]
        else:
            converted = [as_file_inputs(arguments[0], item) for item in value]
        return type(value)(converted)
    return value


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
