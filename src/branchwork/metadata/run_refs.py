"""Finding a run, or one output of one of its steps, from what a person types.

A run reference is, in this order of precedence: a run's exact id or name; `latest` (the
newest run) or `latest:PIPELINE` (the newest run of that pipeline); a prefix of exactly one
run's name or id. Names carry the pipeline and a timestamp (`train-2026_11_23-20_33_22_…`),
so `train-2026_11_23` is usually enough. A prefix is matched with LIKE (its `%` and `_`
escaped, since run names are full of underscores) and checked again with an exact substring
comparison, because SQLite's LIKE ignores case and PostgreSQL's does not: a reference must
find the same run on either store. At most `CANDIDATES + 1` rows are read.

An artifact reference is an artifact version id, an artifact's name (its latest version),
`NAME:VERSION` (version VERSION of it), or the address `RUN/INVOCATION[/OUTPUT]`: the output
of the latest attempt of an invocation of a run (OUTPUT is needed only when that step has
several). Names chosen in code cannot contain ':' or '/' (`steps.outputs`); a default name
(`pipeline::step::output`) can hold ':' but never ends in `:DIGITS`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select

from branchwork.exceptions import BranchworkError
from branchwork.metadata.artifact_listing import (
    artifact_version_by_name_or_id,
    get_artifact_version,
)
from branchwork.metadata.schema import pipeline, pipeline_run, step_run, step_run_output_artifact
from branchwork.models.responses import ArtifactVersionResponse

LATEST = "latest"
CANDIDATES = 5  # runs an ambiguity error lists
_LIST_HINT = "`branchwork runs list` shows the runs"
_RUN_COLUMNS = (
    pipeline_run.c.id,
    pipeline_run.c.name,
    pipeline_run.c.status,
    pipeline.c.name.label("pipeline_name"),
)


def _runs() -> Any:
    """Runs with their pipeline's name, newest first."""
    return (
        select(*_RUN_COLUMNS)
        .join(pipeline, pipeline.c.id == pipeline_run.c.pipeline_id)
        .order_by(pipeline_run.c.created.desc())
    )


def _starts_with(column: Any, prefix: str) -> Any:
    """`column` starts with `prefix`, literally and with case, on every store."""
    return column.startswith(prefix, autoescape=True) & (
        func.substr(column, 1, len(prefix)) == prefix
    )


def _latest(conn: Connection, pipeline_name: str | None) -> Any:
    query = _runs().limit(1)
    if pipeline_name is not None:
        query = query.where(pipeline.c.name == pipeline_name)
    row = conn.execute(query).first()
    if row is None:
        if pipeline_name is None:
            raise BranchworkError("There are no pipeline runs yet.")
        raise BranchworkError(f"No runs of pipeline {pipeline_name!r}; {_LIST_HINT}.")
    return row


def _by_prefix(conn: Connection, ref: str) -> Any:
    rows = conn.execute(
        _runs()
        .where(or_(_starts_with(pipeline_run.c.name, ref), _starts_with(pipeline_run.c.id, ref)))
        .limit(CANDIDATES + 1)
    ).all()
    if not rows:
        raise BranchworkError(
            f"No pipeline run with id or name {ref!r}, nor one starting with it; {_LIST_HINT}."
        )
    if len(rows) > 1:
        count = f"more than {CANDIDATES}" if len(rows) > CANDIDATES else str(len(rows))
        listed = ", ".join(
            f"{row.name} ({row.pipeline_name}, {row.status})" for row in rows[:CANDIDATES]
        )
        raise BranchworkError(
            f"Run reference {ref!r} is ambiguous: {count} runs start with it, newest first: "
            f"{listed}. Give more of the name or id."
        )
    return rows[0]


def _find_run(conn: Connection, ref: str) -> Any:
    """The row (id, name, status, pipeline_name) of the run `ref` names; see the module
    docstring."""
    if not ref.strip():
        raise BranchworkError(f"A run reference is empty; give a run's name or id ({_LIST_HINT}).")
    exact = conn.execute(
        _runs().where(or_(pipeline_run.c.id == ref, pipeline_run.c.name == ref)).limit(1)
    ).first()
    if exact is not None:
        return exact
    if ref == LATEST:
        return _latest(conn, None)
    if ref.startswith(f"{LATEST}:"):
        name = ref[len(LATEST) + 1 :]
        if not name:
            raise BranchworkError("`latest:` needs a pipeline name, as in latest:PIPELINE.")
        return _latest(conn, name)
    return _by_prefix(conn, ref)


def resolve_run(engine: Engine, ref: str) -> str:
    """The id of the run `ref` names: an exact id or name, `latest`, `latest:PIPELINE`, or
    a unique prefix of a name or id."""
    with engine.connect() as conn:
        return str(_find_run(conn, ref).id)


# ---- artifact references -------------------------------------------------------------------

ADDRESS = "RUN/INVOCATION[/OUTPUT]"


def find_artifact(engine: Engine, ref: str) -> ArtifactVersionResponse:
    """The artifact version `ref` names: see the module docstring."""
    if "/" in ref:
        return get_artifact_version(engine, _resolve_address(engine, ref))
    name, _, number = ref.rpartition(":")
    if name and number.isdigit():
        return artifact_version_by_name_or_id(engine, name, int(number))
    return artifact_version_by_name_or_id(engine, ref)


def _resolve_address(engine: Engine, ref: str) -> str:
    """The version id of the output at the address `RUN/INVOCATION[/OUTPUT]`."""
    parts = ref.split("/")
    if len(parts) > 3 or not all(parts):
        raise BranchworkError(f"{ref!r} is not an artifact address; use a version id or {ADDRESS}.")
    run_ref, invocation = parts[0], parts[1]
    output = parts[2] if len(parts) == 3 else None
    with engine.connect() as conn:
        run = _find_run(conn, run_ref)
        outputs = _outputs(conn, run, invocation)
    return _pick_output(run.name, invocation, outputs, output)


def _outputs(conn: Connection, run: Any, invocation: str) -> dict[str, str]:
    """Output name -> version id of the latest attempt of `invocation` in `run`."""
    attempt = conn.execute(
        select(step_run.c.id, step_run.c.status)
        .where(step_run.c.run_id == run.id, step_run.c.name == invocation)
        .order_by(step_run.c.attempt.desc())
        .limit(1)
    ).first()
    if attempt is None:
        similar = conn.execute(
            select(step_run.c.name)
            .distinct()
            .where(step_run.c.run_id == run.id, _starts_with(step_run.c.name, invocation))
            .order_by(step_run.c.name)
            .limit(10)
        ).scalars()
        like = ", ".join(similar)
        hint = f"; invocations like it: {like}" if like else ""
        raise BranchworkError(
            f"Run '{run.name}' has no invocation {invocation!r}{hint} (`branchwork runs show "
            f"{run.name}` lists them)."
        )
    rows = conn.execute(
        select(step_run_output_artifact.c.name, step_run_output_artifact.c.artifact_version_id)
        .where(step_run_output_artifact.c.step_run_id == attempt.id)
        .order_by(step_run_output_artifact.c.name)
    ).all()
    if not rows:
        raise BranchworkError(
            f"Invocation {invocation!r} of run '{run.name}' has no outputs "
            f"(its latest attempt is {attempt.status})."
        )
    return {name: version_id for name, version_id in rows}


def _pick_output(
    run_name: str, invocation: str, outputs: dict[str, str], wanted: str | None
) -> str:
    if wanted is None and len(outputs) == 1:
        return next(iter(outputs.values()))
    if wanted in outputs:
        return outputs[wanted]
    names = ", ".join(outputs)
    if wanted is None:
        raise BranchworkError(
            f"Invocation {invocation!r} of run '{run_name}' has {len(outputs)} outputs "
            f"({names}); name one, as in {run_name}/{invocation}/{next(iter(outputs))}."
        )
    raise BranchworkError(
        f"Invocation {invocation!r} of run '{run_name}' has no output {wanted!r}; "
        f"its outputs: {names}."
    )
