"""`pathlib.Path` outputs: the file or folder a step wrote, copied into the artifact store.

Saving copies the file, or the folder's tree, under `files/` in the artifact's folder through
the store's API (so it works on S3 as on a local disk) and writes `path.json`: the name, the
kind, each file's '/'-separated path, sha256 and permission bits (in octal, `"755"`), and each
folder (so empty ones come back). Symbolic links to files are copied as files (with the
target's mode); links to folders are not followed.

A file's permission bits (read, write, execute for owner, group and others) come back on the
copy, as `shutil.copymode` keeps them: a tool a command step built with `chmod +x` can be run
by the next step. They are kept in `path.json`, since an object store has no modes, so they
enter the content hash: the same bytes with another mode are new content, because a step may
behave differently with them (running the file), and the cache of copies, keyed by
`path.json`, never hands out a copy with another artifact's modes. (So the same files written
under another umask hash differently.) Folders come back with the default mode (a read-only
one would keep its copy from being replaced), and so do the files of artifacts saved before
modes were kept.

Loading gives back a local copy, never the artifact store's own files, so a step cannot
change an artifact by writing to the path it loaded. The copies live in a cache keyed by the
content's hash (`BRANCHWORK_HOME/cache/paths/`, safe to delete when no run is going on), so
loading the same content again, in any process (every step process of a fan-out), copies it
once. Treat a loaded path as read-only: a copy found changed since it was made (its files'
sizes, modification times and modes are recorded) is replaced by a fresh one on the next load.
The cache is shared rather than per process because step processes are forked and end with
`os._exit`, which runs no cleanup: per-process copies would pile up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from branchwork.config.home import home_dir
from branchwork.materializers.base import BaseMaterializer
from branchwork.materializers.preview import Preview

MANIFEST_FILE = "path.json"
FILES_FOLDER = "files"
CHUNK_SIZE = 1 << 20
PREVIEW_LINES = 20  # lines of a text file, or paths of a folder's files, shown
PREVIEW_BYTES = 4096  # bytes of a file read for its first lines
# A cache entry: the copy under COPY_FOLDER, and the stats of its files when it was made.
COPY_FOLDER = "copy"
STATS_FILE = "stats.json"

PERMISSIONS = 0o777  # the mode bits kept: not setuid, setgid or sticky
Stats = dict[str, list[int]]  # '/'-separated path under the copy -> [size, mtime in ns, mode]


class PathMaterializer(BaseMaterializer):
    """`pathlib.Path` naming an existing file or folder."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (Path,)
    HASH_FROM_WRITES = True

    def save(self, data: Any) -> None:
        source = os.path.abspath(data)
        name = os.path.basename(source)
        if os.path.isdir(source):
            files, folders = _walk(source, name)
        elif os.path.isfile(source):
            files, folders = [name], []
        else:
            raise FileNotFoundError(
                f"The Path output {str(data)!r} names no file or folder: return the path of "
                "a file or folder the step wrote."
            )
        store, parent = self.artifact_store, os.path.dirname(source)
        for folder in ["", *folders]:
            store.makedirs(store.join(self.uri, FILES_FOLDER, *folder.split("/")))
        hashes: dict[str, str] = {}
        modes: dict[str, str] = {}
        for relative in files:
            hashes[relative], mode = self._copy_in(parent, relative)
            modes[relative] = f"{mode:o}"
        manifest = {
            "name": name,
            "kind": "folder" if folders else "file",
            "files": hashes,
            "modes": modes,
            "folders": folders,
        }
        self._write_bytes(MANIFEST_FILE, json.dumps(manifest, sort_keys=True).encode())

    def load(self, data_type: type) -> Any:
        stored = self._read_bytes(MANIFEST_FILE)
        manifest = json.loads(stored)
        entry = home_dir() / "cache" / "paths" / hashlib.sha256(stored).hexdigest()
        if not _unchanged(entry):
            self._cache(manifest, entry)
        return entry / COPY_FOLDER / manifest["name"]

    def preview(self, data: Any) -> Preview:
        """Name, kind and size; the first lines of a file, the first paths of a folder."""
        source = os.path.abspath(data)
        name = os.path.basename(source)
        if not os.path.isdir(source):
            metadata = {"name": name, "kind": "file", "size": os.path.getsize(source)}
            return Preview(text=_first_lines(source), metadata=metadata)
        files = _walk(source, name)[0]
        parent = os.path.dirname(source)
        size = sum(os.path.getsize(os.path.join(parent, file)) for file in files)
        metadata = {"name": name, "kind": "folder", "files": len(files), "size": size}
        return Preview(text="\n".join(files[:PREVIEW_LINES]), metadata=metadata)

    def _copy_in(self, parent: str, relative: str) -> tuple[str, int]:
        """Copy the local file `parent/relative` into the artifact; its sha256 (hex) and
        permission bits."""
        store = self.artifact_store
        digest = hashlib.sha256()
        target = store.join(self.uri, FILES_FOLDER, *relative.split("/"))
        with (
            open(os.path.join(parent, relative), "rb") as reader,
            store.open(target, "wb") as writer,
        ):
            mode = stat.S_IMODE(os.fstat(reader.fileno()).st_mode) & PERMISSIONS
            while chunk := reader.read(CHUNK_SIZE):
                digest.update(chunk)
                writer.write(chunk)
        self._digests[f"{FILES_FOLDER}/{relative}"] = digest.digest()  # hashed as it is written
        return digest.hexdigest(), mode

    def _cache(self, manifest: dict[str, Any], entry: Path) -> None:
        """Copy the artifact's files into the cache `entry`, replacing a changed copy.

        The copy is made aside and renamed into place, so no process sees half of it.
        """
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=entry.parent))
        self._copy_out(manifest, staging / COPY_FOLDER)
        stats = _stats(staging / COPY_FOLDER)
        (staging / STATS_FILE).write_text(json.dumps(stats))
        if _unchanged(entry):  # another process cached it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
            return
        if entry.exists():  # changed since it was copied
            stale = Path(tempfile.mkdtemp(prefix=".stale-", dir=entry.parent))
            with contextlib.suppress(FileNotFoundError):  # another process moved it first
                entry.rename(stale / "entry")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            staging.rename(entry)
        except OSError:  # another process put its copy there first
            shutil.rmtree(staging, ignore_errors=True)

    def _copy_out(self, manifest: dict[str, Any], target: Path) -> None:
        """Copy the artifact's files and folders, with the files' modes, into the local
        folder `target`."""
        store = self.artifact_store
        modes = manifest.get("modes", {})  # none in artifacts saved before modes were kept
        target.mkdir()
        for folder in manifest["folders"]:
            (target / folder).mkdir(parents=True, exist_ok=True)
        for relative in manifest["files"]:
            source = store.join(self.uri, FILES_FOLDER, *relative.split("/"))
            with store.open(source, "rb") as reader, open(target / relative, "wb") as writer:
                shutil.copyfileobj(reader, writer, CHUNK_SIZE)
            if relative in modes:  # once written: the mode may forbid writing
                os.chmod(target / relative, int(modes[relative], 8) & PERMISSIONS)


def _walk(folder: str, name: str) -> tuple[list[str], list[str]]:
    """The files and folders of the tree `folder` as '/'-separated paths starting with `name`."""
    files: list[str] = []
    folders: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        relative = Path(os.path.relpath(dirpath, folder)).as_posix()
        prefix = posixpath.normpath(posixpath.join(name, relative))
        folders.append(prefix)
        files.extend(f"{prefix}/{filename}" for filename in sorted(filenames))
    return files, folders


def _stats(folder: Path) -> Stats:
    """Size, modification time and mode of everything under `folder`."""
    found: Stats = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            info = os.stat(path)
            found[Path(path).relative_to(folder).as_posix()] = [
                info.st_size,
                info.st_mtime_ns,
                info.st_mode,
            ]
    return found


def _unchanged(entry: Path) -> bool:
    """Whether the cache `entry` holds a copy, unchanged since it was made."""
    try:
        recorded = json.loads((entry / STATS_FILE).read_text())
        return bool(_stats(entry / COPY_FOLDER) == recorded)
    except (OSError, ValueError):  # no copy yet, or one being replaced
        return False


def _first_lines(path: str) -> str:
    """The first lines of a text file; "" for a binary one."""
    with open(path, "rb") as file:
        start = file.read(PREVIEW_BYTES)
    if b"\0" in start:
        return ""
    try:
        text = start.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(start) - 3:  # not just a character cut in two at the end
            return ""
        text = start[: exc.start].decode("utf-8")
    return "\n".join(text.splitlines()[:PREVIEW_LINES])
