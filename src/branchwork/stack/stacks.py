"""Registered stacks and the active one, kept in the metadata store.

A *stack* names one orchestrator and one artifact store (see `components`). Which stack is
active is the `setting` row "active_stack"; `stack.get_active_stack()` builds it when no
`with active_stack(...)` block is in force. The built-in "default" stack, its components and
the setting pointing at it are rows seeded by migration 0004, so everything here reads them
like any other; the name is only reserved, and the default stack cannot be deleted.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.exc import IntegrityError

from branchwork.exceptions import BranchworkError, ConfigurationError
from branchwork.ids import new_id
from branchwork.metadata import schema
from branchwork.metadata.recorder import utc
from branchwork.metadata.retries import retrying
from branchwork.metadata.store import get_engine, write_transaction
from branchwork.stack.building import build_stack
from branchwork.stack.components import (
    component_record,
    component_row,
    missing_component,
    remember_registered_stores,
)
from branchwork.stack.records import (
    ARTIFACT_STORE,
    DEFAULT,
    ORCHESTRATOR,
    StackRecord,
    builtins_first,
    check_new_name,
)

if TYPE_CHECKING:
    from branchwork.stack.stack import Stack

ACTIVE_STACK_KEY = "active_stack"


class _Missing(Exception):
    """A component a transaction needs is not registered (reported once it has ended: the
    message lists the registered ones, which needs a connection of its own)."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(kind, name)
        self.kind = kind
        self.name = name


def _component_id(conn: Connection, kind: str, name: str) -> str:
    row = component_row(conn, kind, name)
    if row is None:
        raise _Missing(kind, name)
    return str(row.id)


def register_stack(
    name: str,
    orchestrator: str,
    artifact_store: str = DEFAULT,
    engine: Engine | None = None,
) -> StackRecord:
    """Register a stack of two registered components (the built-in defaults included)."""
    check_new_name(name, "stack")
    engine = engine or get_engine()
    try:
        with write_transaction(engine) as conn:
            conn.execute(
                schema.stack.insert().values(
                    id=new_id(),
                    name=name,
                    orchestrator_id=_component_id(conn, ORCHESTRATOR, orchestrator),
                    artifact_store_id=_component_id(conn, ARTIFACT_STORE, artifact_store),
                    created=utc(time.time()),
                )
            )
    except IntegrityError:
        raise BranchworkError(
            f"A stack named '{name}' is already registered; delete it first or choose another name."
        ) from None
    except _Missing as missing:
        raise BranchworkError(missing_component(missing.kind, missing.name, engine)) from None
    return describe_stack(name, engine)


def _stack_records(conn: Connection, active: str, name: str | None = None) -> list[StackRecord]:
    """Stacks by name (or the one called `name`), with their components; `active` names the
    active one."""
    orchestrators = schema.stack_component.alias("o")
    stores = schema.stack_component.alias("a")
    query = (
        select(
            schema.stack.c.name.label("stack_name"),
            schema.stack.c.created.label("stack_created"),
            *(column.label(f"o_{column.name}") for column in orchestrators.c),
            *(column.label(f"a_{column.name}") for column in stores.c),
        )
        .join(orchestrators, orchestrators.c.id == schema.stack.c.orchestrator_id)
        .join(stores, stores.c.id == schema.stack.c.artifact_store_id)
        .order_by(schema.stack.c.name)
    )
    if name is not None:
        query = query.where(schema.stack.c.name == name)
    return [
        StackRecord(
            row.stack_name,
            component_record(row, "o_"),
            component_record(row, "a_"),
            active=row.stack_name == active,
            created=row.stack_created,
        )
        for row in conn.execute(query)
    ]


def _active_name(conn: Connection) -> str:
    return str(
        conn.execute(
            select(schema.setting.c.value).where(schema.setting.c.key == ACTIVE_STACK_KEY)
        ).scalar_one()
    )


def list_stacks(engine: Engine | None = None) -> list[StackRecord]:
    """Every stack, the built-in default first, then by name."""
    with (engine or get_engine()).connect() as conn:
        return builtins_first(_stack_records(conn, _active_name(conn)))


def describe_stack(name: str | None = None, engine: Engine | None = None) -> StackRecord:
    """A stack by name, or the active one."""
    engine = engine or get_engine()
    with engine.connect() as conn:
        active = _active_name(conn)
        name = name or active
        records = _stack_records(conn, active, name)
    if not records:
        if name == active:
            raise ConfigurationError(
                f"The active stack '{name}' is no longer registered; `branchwork stack set "
                "default` (or set another stack) to continue."
            )
        raise BranchworkError(_missing_stack(name, engine))
    return records[0]


def _missing_stack(name: str, engine: Engine) -> str:
    names = [stack.name for stack in list_stacks(engine)]
    return f"No stack named '{name}'; registered: {', '.join(names)}."


def get_active_stack_name(engine: Engine | None = None) -> str:
    """The name of the stack set active in the store."""
    with (engine or get_engine()).connect() as conn:
        return _active_name(conn)


def set_active_stack(name: str, engine: Engine | None = None) -> StackRecord:
    """Make a stack the active one (for runs outside any `with active_stack(...)` block)."""
    engine = engine or get_engine()
    record = describe_stack(name, engine)
    with write_transaction(engine) as conn:
        conn.execute(delete(schema.setting).where(schema.setting.c.key == ACTIVE_STACK_KEY))
        conn.execute(schema.setting.insert().values(key=ACTIVE_STACK_KEY, value=name))
    return dataclasses.replace(record, active=True)


def delete_stack(name: str, engine: Engine | None = None) -> None:
    """Delete a stack (its components stay); refused for the default and the active stack."""
    if name == DEFAULT:
        raise BranchworkError("The built-in default stack cannot be deleted.")
    engine = engine or get_engine()
    with write_transaction(engine) as conn:
        if _active_name(conn) == name:
            raise BranchworkError(
                f"Stack '{name}' is the active stack; `branchwork stack set default` (or another "
                "stack) first."
            )
        deleted = conn.execute(delete(schema.stack).where(schema.stack.c.name == name))
    if not deleted.rowcount:
        raise BranchworkError(_missing_stack(name, engine))


def get_stack(name: str | None = None, engine: Engine | None = None) -> Stack:
    """The runnable stack called `name` (default: the active one in the store), with every
    registered artifact store made known to this process: a cache hit or an ExternalArtifact
    may be held by another one, read with its endpoint and credentials (without them, a run
    on another stack failed with NoCredentialsError where `Client()` had read it)."""
    engine = engine or get_engine()
    remember_registered_stores(engine)
    return build_stack(describe_stack(name, engine))


def stored_active_stack() -> Stack:
    """The runnable stack set active in the store."""
    return _stored_active_stack(get_engine())


@retrying("reading the active stack")
def _stored_active_stack(engine: Engine) -> Stack:
    return get_stack(None, engine)
