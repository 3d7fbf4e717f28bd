"""The registry of stacks and stack components, kept in the metadata store.

A *component* is a named, validated configuration of one kind: an orchestrator (a flavor
from `orchestrators.flavors` plus its settings) or an artifact store (flavor "local" with a
path, or "fsspec" with a URL). A *stack* names one of each. Which stack is active is the
`setting` row "active_stack"; `stack.get_active_stack()` reads it when no
`with active_stack(...)` block is in force.

Validation happens at registration, by building the thing: an orchestrator's settings are
passed to its class exactly as a run will (`orchestrator_from_config`), so an unknown or
malformed setting fails now, with the key named, instead of at the next run. A local path is
made absolute now, since a run may start from another folder.

The built-in "default" stack (the local orchestrator, artifacts under the branchwork home)
always exists without being registered and cannot be deleted; so do its two components, both
called "default", which other stacks may use (`register_stack("s", "lp")` takes the default
artifact store). A stored row stands for a default component only once a stack refers to it
(the stack table's foreign keys need one); its empty config means "resolved at use time", so
the default artifact store follows the home. "default" is reserved for these.

SQLAlchemy Core on `metadata.schema`; this module is imported lazily, so `import branchwork`
stays free of SQLAlchemy.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.exc import IntegrityError

from branchwork.exceptions import BranchworkError, ConfigurationError
from branchwork.ids import new_id
from branchwork.metadata import schema
from branchwork.metadata.recorder import utc
from branchwork.metadata.retries import retrying
from branchwork.metadata.store import get_engine, write_transaction
from branchwork.metadata.upsert import insert_ignore

if TYPE_CHECKING:
    from branchwork.artifact_stores import BaseArtifactStore
    from branchwork.orchestrators.base import BaseOrchestrator
    from branchwork.stack.stack import Stack

DEFAULT = "default"
ACTIVE_STACK_KEY = "active_stack"
ORCHESTRATOR = "orchestrator"
ARTIFACT_STORE = "artifact_store"
ARTIFACT_STORE_FLAVORS = ("local", "fsspec")

_KIND_LABEL = {ORCHESTRATOR: "orchestrator", ARTIFACT_STORE: "artifact store"}


@dataclass(frozen=True)
class ComponentRecord:
    """A registered (or the built-in default) orchestrator or artifact store."""

    name: str
    kind: str
    flavor: str
    config: dict[str, Any]
    created: datetime | None = None
    builtin: bool = False

    @property
    def label(self) -> str:
        return f"{_KIND_LABEL[self.kind]} '{self.name}'"

    @property
    def location(self) -> str | None:
        """Where an artifact store keeps its files (resolved for the default one)."""
        if self.kind != ARTIFACT_STORE:
            return None
        if self.builtin or not self.config:
            from branchwork.config.home import artifacts_dir

            return str(artifacts_dir())
        return str(self.config.get("path") or self.config.get("url"))


@dataclass(frozen=True)
class StackRecord:
    """A registered (or the built-in default) stack, with its components."""

    name: str
    orchestrator: ComponentRecord
    artifact_store: ComponentRecord
    active: bool = False
    created: datetime | None = None
    builtin: bool = False


def _default_component(kind: str) -> ComponentRecord:
    return ComponentRecord(DEFAULT, kind, "local", {}, builtin=True)


def _engine(engine: Engine | None) -> Engine:
    return engine or get_engine()


def _reserved(name: str, what: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"A {what} needs a non-empty name.")
    if name == DEFAULT:
        raise ConfigurationError(
            f"The name 'default' is reserved for the built-in {what}; choose another name."
        )


# ---- validation ----------------------------------------------------------------------------


def _accepted_settings(cls: type[Any]) -> list[str] | None:
    """The keyword settings `cls(name, **config)` accepts; None when it takes **kwargs."""
    try:
        parameters = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return None
    names: list[str] = []
    for parameter in parameters:
        if parameter.kind is parameter.VAR_KEYWORD:
            return None
        positional = parameter.kind is parameter.VAR_POSITIONAL
        if parameter.name not in ("self", "name") and not positional:
            names.append(parameter.name)
    return names


def build_orchestrator(name: str, flavor: str, config: dict[str, Any]) -> BaseOrchestrator:
    """The orchestrator these settings describe, built as a run builds it; errors name the
    offending setting."""
    from branchwork.orchestrators.flavors import orchestrator_class, orchestrator_from_config

    cls = orchestrator_class(flavor)  # an unknown flavor lists the available ones
    where = f"Orchestrator '{name}' (flavor {flavor!r})"
    accepted = _accepted_settings(cls)
    if accepted is not None:
        for key in config:
            if key not in accepted:
                raise ConfigurationError(
                    f"{where}: unknown setting {key!r}; flavor {flavor!r} accepts: "
                    f"{', '.join(accepted) or 'no settings'}."
                )
    try:
        json.dumps(config)
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"{where}: its settings must be JSON values ({error}).") from None
    try:
        orchestrator: BaseOrchestrator = orchestrator_from_config(
            {"flavor": flavor}, name, dict(config)
        )
        return orchestrator
    except Exception as error:
        culprit = _culprit(flavor, name, config)
        what = (
            f"setting {culprit!r} = {config[culprit]!r} is invalid"
            if culprit
            else "invalid settings"
        )
        raise ConfigurationError(f"{where}: {what}: {_first_line(error)}") from None


def _culprit(flavor: str, name: str, config: dict[str, Any]) -> str | None:
    """The one setting that fails on its own, to name it in the error."""
    from branchwork.orchestrators.flavors import orchestrator_from_config

    for key, value in config.items():
        try:
            orchestrator_from_config({"flavor": flavor}, name, {key: value})
        except Exception:
            return key
    return None


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    prefix = "cannot be rebuilt: "  # orchestrator_from_config's wording, redundant here
    if prefix in text:
        text = text.split(prefix, 1)[1]
    return text or type(error).__name__


def build_artifact_store(record: ComponentRecord) -> BaseArtifactStore:
    """The artifact store a component describes."""
    from branchwork.artifact_stores import FsspecArtifactStore, LocalArtifactStore

    if record.flavor == "local":
        return LocalArtifactStore(record.location or "")
    try:
        return FsspecArtifactStore(str(record.config["url"]))
    except Exception as error:
        raise ConfigurationError(
            f"Artifact store '{record.name}': cannot open {record.config.get('url')!r}: "
            f"{_first_line(error)}"
        ) from None


# ---- components ----------------------------------------------------------------------------


def _record(row: Any) -> ComponentRecord:
    return ComponentRecord(
        row.name, row.kind, row.flavor, json.loads(row.config), row.created, row.name == DEFAULT
    )


def _insert_component(
    engine: Engine, name: str, kind: str, flavor: str, config: dict[str, Any]
) -> ComponentRecord:
    created = utc(time.time())
    try:
        with write_transaction(engine) as conn:
            conn.execute(
                schema.stack_component.insert().values(
                    id=new_id(),
                    name=name,
                    kind=kind,
                    flavor=flavor,
                    config=json.dumps(config),
                    created=created,
                )
            )
    except IntegrityError:
        raise BranchworkError(
            f"An {_KIND_LABEL[kind]} named '{name}' is already registered; delete it first or "
            "choose another name."
        ) from None
    return ComponentRecord(name, kind, flavor, config, created)


def register_orchestrator(
    name: str, flavor: str, config: dict[str, Any] | None = None, engine: Engine | None = None
) -> ComponentRecord:
    """Register an orchestrator component; its settings are checked by building it."""
    _reserved(name, "orchestrator")
    config = dict(config or {})
    build_orchestrator(name, flavor, config)
    return _insert_component(_engine(engine), name, ORCHESTRATOR, flavor, config)


def register_artifact_store(
    name: str,
    *,
    path: str | Path | None = None,
    url: str | None = None,
    engine: Engine | None = None,
) -> ComponentRecord:
    """Register an artifact store: flavor "local" with a `path` (made absolute now), or
    "fsspec" with a `url` (s3://..., gs://..., memory://...), checked by opening it."""
    _reserved(name, "artifact store")
    if (path is None) == (url is None):
        raise ConfigurationError(
            f"Artifact store '{name}' needs exactly one of a path (local) or a URL (fsspec)."
        )
    if path is not None:
        text = str(path)
        if "://" in text and not text.startswith("file://"):
            raise ConfigurationError(
                f"Artifact store '{name}': {text!r} is a URL; register it with a URL instead."
            )
        resolved = str(Path(text.removeprefix("file://")).expanduser().resolve())
        record = ComponentRecord(name, ARTIFACT_STORE, "local", {"path": resolved})
    else:
        assert url is not None
        if "://" not in url:
            raise ConfigurationError(
                f"Artifact store '{name}': {url!r} is not a URL (scheme://...); use a path for "
                "a local folder."
            )
        record = ComponentRecord(name, ARTIFACT_STORE, "fsspec", {"url": url.rstrip("/")})
    build_artifact_store(record)
    return _insert_component(_engine(engine), name, ARTIFACT_STORE, record.flavor, record.config)


def list_components(kind: str | None = None, engine: Engine | None = None) -> list[ComponentRecord]:
    """Components by kind then name, the built-in defaults first."""
    kinds = [kind] if kind else [ORCHESTRATOR, ARTIFACT_STORE]
    for known in kinds:
        _check_kind(known)
    query = select(schema.stack_component).where(
        schema.stack_component.c.kind.in_(kinds), schema.stack_component.c.name != DEFAULT
    )
    with _engine(engine).connect() as conn:
        rows = conn.execute(query.order_by(schema.stack_component.c.name)).all()
    found: list[ComponentRecord] = []
    for known in kinds:
        found.append(_default_component(known))
        found.extend(_record(row) for row in rows if row.kind == known)
    return found


def _check_kind(kind: str) -> None:
    if kind not in _KIND_LABEL:
        raise ConfigurationError(
            f"Unknown component kind {kind!r}; use orchestrator or artifact_store."
        )


def _component_row(conn: Connection, kind: str, name: str) -> Any:
    return conn.execute(
        select(schema.stack_component).where(
            schema.stack_component.c.kind == kind, schema.stack_component.c.name == name
        )
    ).one_or_none()


def get_component(kind: str, name: str, engine: Engine | None = None) -> ComponentRecord:
    """One component by kind and name."""
    _check_kind(kind)
    if name == DEFAULT:
        return _default_component(kind)
    with _engine(engine).connect() as conn:
        row = _component_row(conn, kind, name)
    if row is None:
        raise BranchworkError(_missing_component(kind, name, engine))
    return _record(row)


def _missing_component(kind: str, name: str, engine: Engine | None) -> str:
    names = [c.name for c in list_components(kind, engine)]
    command = "orchestrator" if kind == ORCHESTRATOR else "artifact-store"
    return (
        f"No {_KIND_LABEL[kind]} named '{name}'; registered: {', '.join(names)} "
        f"(`branchwork {command} register` adds one)."
    )


def delete_component(kind: str, name: str, engine: Engine | None = None) -> None:
    """Delete a component; refused for the built-in default and for one a stack uses."""
    _check_kind(kind)
    if name == DEFAULT:
        raise BranchworkError(f"The built-in default {_KIND_LABEL[kind]} cannot be deleted.")
    engine = _engine(engine)
    stacks = schema.stack.c
    column = stacks.orchestrator_id if kind == ORCHESTRATOR else stacks.artifact_store_id
    users: list[str] = []
    with write_transaction(engine) as conn:
        row = _component_row(conn, kind, name)
        if row is not None:
            users = list(
                conn.execute(
                    select(stacks.name).where(column == row.id).order_by(stacks.name)
                ).scalars()
            )
            if not users:
                conn.execute(
                    delete(schema.stack_component).where(schema.stack_component.c.id == row.id)
                )
    # Errors are built once the transaction has ended: listing names needs a connection.
    if row is None:
        raise BranchworkError(_missing_component(kind, name, engine))
    if users:
        quoted = ", ".join(f"'{user}'" for user in users)
        plural = "stacks" if len(users) > 1 else "stack"
        raise BranchworkError(
            f"The {_KIND_LABEL[kind]} '{name}' is used by {plural} {quoted}; delete "
            f"{'those stacks' if len(users) > 1 else 'that stack'} first."
        )


# ---- stacks --------------------------------------------------------------------------------


class _Missing(Exception):
    """A component a transaction needs is not registered (reported once it has ended: the
    message lists the registered ones, which needs a connection of its own)."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(kind, name)
        self.kind = kind
        self.name = name


def _component_id(conn: Connection, engine: Engine, kind: str, name: str) -> str:
    """The row id of a component; the default one gets its row now (see module docstring)."""
    if name == DEFAULT:
        conn.execute(
            insert_ignore(engine, schema.stack_component).values(
                id=new_id(),
                name=DEFAULT,
                kind=kind,
                flavor="local",
                config="{}",
                created=utc(time.time()),
            )
        )
    row = _component_row(conn, kind, name)
    if row is None:
        raise _Missing(kind, name)
    return str(row.id)


def register_stack(
    name: str,
    orchestrator: str,
    artifact_store: str = DEFAULT,
    engine: Engine | None = None,
) -> StackRecord:
    """Register a stack of two registered components (or the built-in defaults)."""
    _reserved(name, "stack")
    engine = _engine(engine)
    created = utc(time.time())
    try:
        with write_transaction(engine) as conn:
            orchestrator_id = _component_id(conn, engine, ORCHESTRATOR, orchestrator)
            store_id = _component_id(conn, engine, ARTIFACT_STORE, artifact_store)
            conn.execute(
                schema.stack.insert().values(
                    id=new_id(),
                    name=name,
                    orchestrator_id=orchestrator_id,
                    artifact_store_id=store_id,
                    created=created,
                )
            )
    except IntegrityError:
        raise BranchworkError(
            f"A stack named '{name}' is already registered; delete it first or choose another name."
        ) from None
    except _Missing as missing:
        raise BranchworkError(_missing_component(missing.kind, missing.name, engine)) from None
    return describe_stack(name, engine)


def _default_stack_record(active: bool) -> StackRecord:
    return StackRecord(
        DEFAULT,
        _default_component(ORCHESTRATOR),
        _default_component(ARTIFACT_STORE),
        active=active,
        builtin=True,
    )


def _stack_rows(conn: Connection, name: str | None = None) -> list[Any]:
    orchestrators = schema.stack_component.alias("o")
    stores = schema.stack_component.alias("a")
    query = (
        select(
            schema.stack.c.name,
            schema.stack.c.created,
            orchestrators.c.name.label("o_name"),
            orchestrators.c.flavor.label("o_flavor"),
            orchestrators.c.config.label("o_config"),
            orchestrators.c.created.label("o_created"),
            stores.c.name.label("a_name"),
            stores.c.flavor.label("a_flavor"),
            stores.c.config.label("a_config"),
            stores.c.created.label("a_created"),
        )
        .join(orchestrators, orchestrators.c.id == schema.stack.c.orchestrator_id)
        .join(stores, stores.c.id == schema.stack.c.artifact_store_id)
        .order_by(schema.stack.c.name)
    )
    if name is not None:
        query = query.where(schema.stack.c.name == name)
    return list(conn.execute(query).all())


def _stack_record(row: Any, active: str) -> StackRecord:
    def component(prefix: str, kind: str) -> ComponentRecord:
        name = getattr(row, f"{prefix}_name")
        if name == DEFAULT:
            return _default_component(kind)
        return ComponentRecord(
            name,
            kind,
            getattr(row, f"{prefix}_flavor"),
            json.loads(getattr(row, f"{prefix}_config")),
            getattr(row, f"{prefix}_created"),
        )

    return StackRecord(
        row.name,
        component("o", ORCHESTRATOR),
        component("a", ARTIFACT_STORE),
        active=row.name == active,
        created=row.created,
    )


def _active_name(conn: Connection) -> str:
    value = conn.execute(
        select(schema.setting.c.value).where(schema.setting.c.key == ACTIVE_STACK_KEY)
    ).scalar_one_or_none()
    return str(value) if value else DEFAULT


def list_stacks(engine: Engine | None = None) -> list[StackRecord]:
    """Every stack, the built-in default first, then by name."""
    with _engine(engine).connect() as conn:
        active = _active_name(conn)
        rows = _stack_rows(conn)
    return [_default_stack_record(active == DEFAULT)] + [_stack_record(r, active) for r in rows]


def describe_stack(name: str | None = None, engine: Engine | None = None) -> StackRecord:
    """A stack by name, or the active one."""
    engine = _engine(engine)
    with engine.connect() as conn:
        active = _active_name(conn)
        name = name or active
        if name == DEFAULT:
            return _default_stack_record(active == DEFAULT)
        rows = _stack_rows(conn, name)
    if not rows:
        if name == active:
            raise ConfigurationError(
                f"The active stack '{name}' is no longer registered; `branchwork stack set "
                "default` (or set another stack) to continue."
            )
        raise BranchworkError(_missing_stack(name, engine))
    return _stack_record(rows[0], active)


def _missing_stack(name: str, engine: Engine) -> str:
    names = [stack.name for stack in list_stacks(engine)]
    return f"No stack named '{name}'; registered: {', '.join(names)}."


def get_active_stack_name(engine: Engine | None = None) -> str:
    """The name of the stack set active in the store ("default" when none is)."""
    with _engine(engine).connect() as conn:
        return _active_name(conn)


def set_active_stack(name: str, engine: Engine | None = None) -> StackRecord:
    """Make a stack the active one (for runs outside any `with active_stack(...)` block)."""
    engine = _engine(engine)
    record = describe_stack(name, engine)
    with write_transaction(engine) as conn:
        conn.execute(delete(schema.setting).where(schema.setting.c.key == ACTIVE_STACK_KEY))
        if name != DEFAULT:
            conn.execute(schema.setting.insert().values(key=ACTIVE_STACK_KEY, value=name))
    return StackRecord(
        record.name,
        record.orchestrator,
        record.artifact_store,
        active=True,
        created=record.created,
        builtin=record.builtin,
    )


def delete_stack(name: str, engine: Engine | None = None) -> None:
    """Delete a stack (its components stay); refused for the default and the active stack."""
    if name == DEFAULT:
        raise BranchworkError("The built-in default stack cannot be deleted.")
    engine = _engine(engine)
    with write_transaction(engine) as conn:
        if _active_name(conn) == name:
            raise BranchworkError(
                f"Stack '{name}' is the active stack; `branchwork stack set default` (or another "
                "stack) first."
            )
        deleted = conn.execute(delete(schema.stack).where(schema.stack.c.name == name))
    if not deleted.rowcount:
        raise BranchworkError(_missing_stack(name, engine))


def build_stack(record: StackRecord) -> Stack:
    """The runnable `Stack` a record describes."""
    from branchwork.stack.stack import Stack, default_stack

    if record.builtin:
        return default_stack()
    orchestrator = record.orchestrator
    if orchestrator.builtin:
        built = default_stack().orchestrator
    else:
        built = build_orchestrator(orchestrator.name, orchestrator.flavor, orchestrator.config)
    return Stack(record.name, built, build_artifact_store(record.artifact_store))


def get_stack(name: str | None = None, engine: Engine | None = None) -> Stack:
    """The runnable stack called `name` (default: the active one in the store)."""
    return build_stack(describe_stack(name, engine))


def registered_active_stack() -> Stack | None:
    """The stack set active in the store, or None when that is the built-in default."""
    return _registered_active_stack(get_engine())


@retrying("reading the active stack")
def _registered_active_stack(engine: Engine) -> Stack | None:
    if get_active_stack_name(engine) == DEFAULT:
        return None
    return build_stack(describe_stack(None, engine))
