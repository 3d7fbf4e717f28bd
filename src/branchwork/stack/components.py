"""Registering, listing and deleting stack components, kept in the metadata store.

A *component* is a named, validated configuration of one kind: an orchestrator (a flavor
from `orchestrators.flavors` plus its settings) or an artifact store (flavor "local" with a
path, or "fsspec" with a URL and, for S3, an endpoint, a region, an access key id and where
its secret is: an environment variable or a file, never the secret itself). Validation
happens at registration, by building the thing (`orchestrator_settings`), so a bad setting
fails now, naming its key, instead of at the next run. A local path is made absolute now,
since a run may start from another folder.

The built-in "default" components are rows like the others (migration 0004); their name is
reserved and they cannot be deleted. SQLAlchemy Core on `metadata.schema`; the registry
modules are imported lazily, so `import branchwork` stays free of SQLAlchemy.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.exc import IntegrityError

from branchwork.artifact_stores.fsspec_store import OPTIONS
from branchwork.exceptions import BranchworkError, ConfigurationError
from branchwork.ids import new_id
from branchwork.metadata import schema
from branchwork.metadata.recorder import utc
from branchwork.metadata.store import get_engine, write_transaction
from branchwork.stack.building import build_artifact_store, fsspec_store_spec
from branchwork.stack.orchestrator_settings import check_orchestrator_settings
from branchwork.stack.records import (
    ARTIFACT_STORE,
    DEFAULT,
    KIND_LABEL,
    ORCHESTRATOR,
    ComponentRecord,
    builtins_first,
    check_kind,
    check_new_name,
)

_components = schema.stack_component


def component_record(row: Any, prefix: str = "") -> ComponentRecord:
    """The component in `row`'s columns whose labels start with `prefix`."""

    def column(name: str) -> Any:
        return getattr(row, prefix + name)

    return ComponentRecord(
        column("name"),
        column("kind"),
        column("flavor"),
        json.loads(column("config")),
        column("created"),
    )


def register_orchestrator(
    name: str, flavor: str, config: dict[str, Any] | None = None, engine: Engine | None = None
) -> ComponentRecord:
    """Register an orchestrator component; its settings are checked by building it."""
    check_new_name(name, "orchestrator")
    config = dict(config or {})
    check_orchestrator_settings(name, flavor, config)
    return _insert(ComponentRecord(name, ORCHESTRATOR, flavor, config), engine or get_engine())


def register_artifact_store(
    name: str,
    *,
    path: str | Path | None = None,
    url: str | None = None,
    engine: Engine | None = None,
    **settings: str | None,
) -> ComponentRecord:
    """Register an artifact store: flavor "local" with a `path` (made absolute now), or
    "fsspec" with a `url` (s3://..., gs://..., memory://...), checked by building it.

    An s3:// store takes the settings `endpoint_url`, `region`, `access_key_id` and
    `secret_env` (the name of the environment variable that holds the secret) or
    `secret_file` (a file that holds it): the secret is read where the store is used.
    """
    check_new_name(name, "artifact store")
    given = {key: value for key, value in settings.items() if value is not None}
    if (path is None) == (url is None):
        raise ConfigurationError(
            f"Artifact store '{name}' needs exactly one of a path (local) or a URL (fsspec)."
        )
    if path is not None:
        _check_settings(name, given, ())
        record = _local_store(name, str(path))
    else:
        _check_settings(name, given, OPTIONS)
        record = _fsspec_store(name, url or "", given)
    build_artifact_store(record)
    return _insert(record, engine or get_engine())


def _local_store(name: str, path: str) -> ComponentRecord:
    if "://" in path and not path.startswith("file://"):
        raise ConfigurationError(
            f"Artifact store '{name}': {path!r} is a URL; register it with a URL instead."
        )
    resolved = str(Path(path.removeprefix("file://")).expanduser().resolve())
    return ComponentRecord(name, ARTIFACT_STORE, "local", {"path": resolved})


def _check_settings(name: str, settings: dict[str, str], known: tuple[str, ...]) -> None:
    """Refuse unknown settings, naming them only: a misplaced secret is never echoed."""
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ConfigurationError(
            f"Artifact store '{name}': unknown setting {', '.join(map(repr, unknown))}; "
            f"settings: {', '.join(known) or 'none for a local folder'}. A secret is never "
            "stored: name the environment variable (secret_env) or file (secret_file) that "
            "holds it."
        )


def _fsspec_store(name: str, url: str, settings: dict[str, str]) -> ComponentRecord:
    if "://" not in url:
        raise ConfigurationError(
            f"Artifact store '{name}': {url!r} is not a URL (scheme://...); use a path for "
            "a local folder."
        )
    return ComponentRecord(name, ARTIFACT_STORE, "fsspec", {"url": url.rstrip("/"), **settings})


def remember_registered_stores(engine: Engine | None = None) -> None:
    """Make every registered fsspec store known to this process (unbuilt), so that artifacts
    written through one are read back with its endpoint and credentials."""
    from branchwork.artifact_stores import remember_store_spec

    for record in list_components(ARTIFACT_STORE, engine):
        if record.flavor == "fsspec":
            remember_store_spec(fsspec_store_spec(record))


def _insert(record: ComponentRecord, engine: Engine) -> ComponentRecord:
    created = utc(time.time())
    try:
        with write_transaction(engine) as conn:
            conn.execute(
                _components.insert().values(
                    id=new_id(),
                    name=record.name,
                    kind=record.kind,
                    flavor=record.flavor,
                    config=json.dumps(record.config),
                    created=created,
                )
            )
    except IntegrityError:
        raise BranchworkError(
            f"An {KIND_LABEL[record.kind]} named '{record.name}' is already registered; delete "
            "it first or choose another name."
        ) from None
    return ComponentRecord(record.name, record.kind, record.flavor, record.config, created)


def list_components(kind: str | None = None, engine: Engine | None = None) -> list[ComponentRecord]:
    """Components by kind (orchestrators first) then name, the built-in defaults first."""
    kinds = [kind] if kind else [ORCHESTRATOR, ARTIFACT_STORE]
    for known in kinds:
        check_kind(known)
    query = select(_components).where(_components.c.kind.in_(kinds)).order_by(_components.c.name)
    with (engine or get_engine()).connect() as conn:
        records = [component_record(row) for row in conn.execute(query)]
    return [
        record
        for known in kinds
        for record in builtins_first([r for r in records if r.kind == known])
    ]


def component_row(conn: Connection, kind: str, name: str) -> Any:
    return conn.execute(
        select(_components).where(_components.c.kind == kind, _components.c.name == name)
    ).one_or_none()


def missing_component(kind: str, name: str, engine: Engine) -> str:
    names = [c.name for c in list_components(kind, engine)]
    command = "orchestrator" if kind == ORCHESTRATOR else "artifact-store"
    return (
        f"No {KIND_LABEL[kind]} named '{name}'; registered: {', '.join(names)} "
        f"(`branchwork {command} register` adds one)."
    )


def delete_component(kind: str, name: str, engine: Engine | None = None) -> None:
    """Delete a component; refused for the built-in default and for one a stack uses."""
    check_kind(kind)
    if name == DEFAULT:
        raise BranchworkError(f"The built-in default {KIND_LABEL[kind]} cannot be deleted.")
    engine = engine or get_engine()
    stacks = schema.stack.c
    column = stacks.orchestrator_id if kind == ORCHESTRATOR else stacks.artifact_store_id
    users: list[str] = []
    with write_transaction(engine) as conn:
        row = component_row(conn, kind, name)
        if row is not None:
            users = list(
                conn.execute(
                    select(stacks.name).where(column == row.id).order_by(stacks.name)
                ).scalars()
            )
            if not users:
                conn.execute(delete(_components).where(_components.c.id == row.id))
    # Errors are built once the transaction has ended: listing names needs a connection.
    if row is None:
        raise BranchworkError(missing_component(kind, name, engine))
    if users:
        quoted = ", ".join(f"'{user}'" for user in users)
        plural = "stacks" if len(users) > 1 else "stack"
        raise BranchworkError(
            f"The {KIND_LABEL[kind]} '{name}' is used by {plural} {quoted}; delete "
            f"{'those stacks' if len(users) > 1 else 'that stack'} first."
        )
