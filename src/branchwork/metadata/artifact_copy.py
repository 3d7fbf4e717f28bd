"""Copying a store's local artifact files to another artifact store (`branchwork db
migrate-to --artifacts-to`), after `store_copy` copied the rows: a team's runs must not
point at files on one laptop.

The files of each artifact version still pointing at the source's local files are copied
first, then the target's URIs rewritten, batch by batch: a target row never points at files
not there yet, and a rerun copies what an interruption left. The source store and the local
files are never changed. Each folder keeps its last two levels (`<step_output>/<id>`, as
`BaseArtifactStore.new_artifact_uri` made it) under the new root: unique, and readable.
Versions kept inline (`inline://`, see `artifact_stores.inline`) have no files: their data
came with their rows, so they are only counted: the summary accounts for every version.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, bindparam, select

from branchwork.artifact_stores.inline import is_inline
from branchwork.metadata import schema
from branchwork.metadata.chunking import CHUNK
from branchwork.metadata.store import get_engine, write_transaction
from branchwork.metadata.store_copy import BATCH, CopyPlan

if TYPE_CHECKING:
    from branchwork.artifact_stores import BaseArtifactStore

_COPY_BUFFER = 1 << 20


@dataclass
class ArtifactCopy:
    """Artifact versions whose files were copied to `destination` (their URIs rewritten in
    the target), already there before, whose files are missing (left as they were), or kept
    inline in the metadata store (no files: copied with their rows)."""

    destination: str
    copied: int = 0
    already_there: int = 0
    missing: list[str] = field(default_factory=list)
    kept_inline: int = 0


def artifact_destination(folder_or_url: str) -> str:
    """Where `--artifacts-to` points: a URL as given, a folder as an absolute path."""
    if "://" in folder_or_url and not folder_or_url.startswith("file://"):
        return folder_or_url.rstrip("/")
    return str(Path(folder_or_url.removeprefix("file://")).expanduser().resolve())


def copy_artifact_files(plan: CopyPlan, destination: str, store: BaseArtifactStore) -> ArtifactCopy:
    """Copy the files of the target's artifact versions that still point at the source's
    local files to `destination` (through `store`, which can write there), and point the
    target's rows at the copies. Run after `copy_rows`."""
    source, target = get_engine(plan.source_url), get_engine(plan.target_url)
    result = ArtifactCopy(destination)
    versions = schema.artifact_version
    with source.connect() as reading:
        rows = reading.execute(select(versions.c.id, versions.c.uri).order_by(versions.c.id))
        recorded = [(row.id, row.uri) for row in rows]
    result.kept_inline = sum(is_inline(uri) for _, uri in recorded)
    local = [(version_id, uri) for version_id, uri in recorded if _is_local(uri)]
    copied: set[str] = set()  # URIs done in this call (versions may share one)
    for start in range(0, len(local), BATCH):
        batch = dict(local[start : start + BATCH])
        with target.connect() as conn:
            pending = _still_pointing_at(conn, batch)
        result.already_there += len(batch) - len(pending)
        moves: list[dict[str, str]] = []
        for version_id, uri in pending.items():
            new_uri = store.join(destination, *_artifact_folder(uri))
            if uri not in copied and not _copy_folder(uri, new_uri, store):
                result.missing.append(uri)
                continue
            copied.add(uri)
            moves.append({"b_id": version_id, "b_old": uri, "b_new": new_uri})
        _rewrite_uris(target, moves)
        result.copied += len(moves)
    return result


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _still_pointing_at(conn: Connection, uris: dict[str, str]) -> dict[str, str]:
    """The versions (id -> URI) whose target row still has the source's URI."""
    table = schema.artifact_version
    pending: dict[str, str] = {}
    ids = list(uris)
    for start in range(0, len(ids), CHUNK):
        query = select(table.c.id, table.c.uri).where(table.c.id.in_(ids[start : start + CHUNK]))
        pending.update({row.id: row.uri for row in conn.execute(query) if row.uri == uris[row.id]})
    return pending


def _artifact_folder(uri: str) -> tuple[str, str]:
    """The last two levels of a local artifact URI (`<step_output>/<id>`, as
    `new_artifact_uri` made it): unique, and readable in the new store."""
    path = Path(uri.removeprefix("file://"))
    return path.parent.name, path.name


def _copy_folder(uri: str, new_uri: str, store: BaseArtifactStore) -> bool:
    """Copy every file under the artifact folder `uri` to `new_uri` in `store`; False if
    the folder is gone."""
    from branchwork.artifact_stores import artifact_store_for_uri

    source = artifact_store_for_uri(uri)
    if not source.isdir(uri):
        return False
    folders: set[str] = set()
    for name in source.walk_files(uri):
        *parents, filename = name.split("/")
        folder = store.join(new_uri, *parents)
        if folder not in folders:
            store.makedirs(folder)
            folders.add(folder)
        with (
            source.open(source.join(uri, *name.split("/")), "rb") as reading,
            store.open(store.join(folder, filename), "wb") as writing,
        ):
            shutil.copyfileobj(reading, writing, _COPY_BUFFER)
    return True


def _rewrite_uris(engine: Engine, moves: list[dict[str, str]]) -> None:
    if not moves:
        return
    table = schema.artifact_version
    update = (
        table.update()
        .where(table.c.id == bindparam("b_id"), table.c.uri == bindparam("b_old"))
        .values(uri=bindparam("b_new"))
    )
    with write_transaction(engine) as conn:
        conn.execute(update, moves)
