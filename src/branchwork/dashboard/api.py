"""The JSON API under `/api/` that the dashboard's pages use (OpenAPI at /api/openapi.json).

Every list is paged (`?page=1&page_size=50`, at most 200) and answers `{"items", "page",
"page_size", "total"}`; no answer carries more than one page of step runs, and the graph and
timeline carry at most `answers.MAX_GROUPS` step names. A run is named as the CLI takes it
(name, id, unique prefix, `latest`, `latest:PIPELINE`); an unknown one is a 404 with the CLI's
message.
Runs and step runs have the shapes `branchwork runs ... --output json` prints
(`models.shapes`). Values are raw text in JSON: escaping them is the pages' job. Reads never
write to the store; the two actions are POSTs (see `security` and `actions`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import Engine

from branchwork import __version__
from branchwork.dashboard import actions
from branchwork.dashboard.answers import (
    attempt_dict,
    counts_of,
    durations_dict,
    group_dict,
    item_dict,
    origin_dict,
    paged,
    run_summary,
    shortened,
    shown_groups,
)
from branchwork.dashboard.live import run_changes
from branchwork.dashboard.questions import open_question_dict, questions
from branchwork.exceptions import BranchworkError, OrchestratorError, StoreUnavailableError
from branchwork.metadata import runs
from branchwork.metadata.run_groups import (
    group_durations,
    group_edges,
    has_step_name,
    step_groups,
)
from branchwork.metadata.run_listing import step_run_origins
from branchwork.metadata.run_logs import no_attempt_message
from branchwork.metadata.run_pages import (
    COUNT_KEYS,
    RunFilter,
    find_run,
    invocation_page,
    run_counts,
    run_page,
)
from branchwork.metadata.step_pages import (
    Attempts,
    consumer_page,
    input_page,
    invocation_attempts,
    log_slice,
)
from branchwork.models.responses import RUN_STATUSES, PipelineRunResponse
from branchwork.models.shapes import iso, step_dict, version_dict

router = APIRouter(prefix="/api")

MAX_PAGE_SIZE = 200
CONSUMERS_SHOWN = 20  # consumers of an output on the step page (the rest: /consumers)
INPUTS_SHOWN = 50  # inputs on the step page (the rest: .../inputs)
LOG_LIMIT = 262_144  # characters of a log in one answer
# Past the end of any log a store holds (SQLite's longest text is 2**31 - 1 bytes, PostgreSQL's
# 1 GB), and within the 32 bits their substr takes: SQLite wraps a larger offset round to the
# log's start.
LOG_OFFSET_CLAMP = 2**31 - 2
SEARCH_LIMIT = 255  # characters of a runs search: the longest run or pipeline name


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineArg = Annotated[Engine, Depends(engine_of)]
# Bounded so that a page's offset stays within the store's 64-bit integers (a 500 otherwise).
MAX_PAGE = 1_000_000_000
PageArg = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Which page, from 1.")]
SizeArg = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")]


@contextmanager
def not_found_as_404() -> Iterator[None]:
    """What the store does not hold (a BranchworkError saying so, the CLI's message) answers
    404; an unreachable store stays an outage (503)."""
    try:
        yield
    except StoreUnavailableError:
        raise
    except BranchworkError as error:
        raise HTTPException(404, str(error)) from None


def run_or_404(engine: Engine, ref: str) -> PipelineRunResponse:
    with not_found_as_404():
        return find_run(engine, ref)


# ---- runs ----------------------------------------------------------------------------------


def parse_statuses(values: list[str]) -> tuple[str, ...]:
    """The statuses asked for (each value may list several, comma-separated)."""
    statuses = [part.strip().lower() for value in values for part in value.split(",")]
    statuses = [status for status in statuses if status]
    unknown = [status for status in statuses if status not in RUN_STATUSES]
    if unknown:
        raise HTTPException(
            422, f"{unknown[0]!r} is not a run status; use one of {', '.join(RUN_STATUSES)}."
        )
    return tuple(dict.fromkeys(statuses))


def parse_item_status(value: str | None) -> str | None:
    """The one state of invocations asked for: a step status, or not_started."""
    if value is None:
        return None
    status = value.strip().lower()
    if status not in COUNT_KEYS:
        raise HTTPException(
            422, f"{value!r} is not an invocation state; use one of {', '.join(COUNT_KEYS)}."
        )
    return status


def utc_naive(moment: datetime | None, name: str) -> datetime | None:
    """A time as the store keeps it: UTC without an offset (a time without one is UTC)."""
    if moment is None or moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(timezone.utc).replace(tzinfo=None)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before the first year
        raise HTTPException(422, f"{name}={moment.isoformat()} is out of range.") from None


@router.get("/info")
def info(request: Request) -> dict[str, Any]:
    """The dashboard's version and the store it reads (its password masked)."""
    engine = engine_of(request)
    return {
        "version": __version__,
        "store": engine.url.render_as_string(hide_password=True),
        "token_required": request.app.state.token_required,
    }


@router.get("/runs")
def list_runs(
    engine: EngineArg,
    pipeline: str | None = None,
    status: Annotated[list[str], Query(description="Statuses, repeated or comma-separated.")] = [],  # noqa: B006
    since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Created before (ISO 8601).")] = None,
    q: Annotated[
        str | None,
        Query(max_length=SEARCH_LIMIT, description="Text in the run's name, id or pipeline."),
    ] = None,
    page: PageArg = 1,
    page_size: SizeArg = 50,
) -> dict[str, Any]:
    """Runs, newest first, with their step counts by state."""
    where = RunFilter(
        pipeline, parse_statuses(status), utc_naive(since, "since"), utc_naive(until, "until"), q
    )
    found = run_page(engine, where, page, page_size)
    counts = run_counts(engine, found.items)
    return paged(found, [run_summary(run, counts[run.id]) for run in found.items])


@router.get("/runs/{run}")
def get_run(engine: EngineArg, run: str) -> dict[str, Any]:
    """A run with its parameters, error, counts by state, counts per step name, the
    questions it asked (`branchwork.wait`), the one it waits on while that needs an answer
    (`waiting`, null otherwise: a resume is refused until then), and the token to follow
    it from (`changes`)."""
    record = run_or_404(engine, run)
    changes = run_changes(engine, record)
    every_group = step_groups(engine, record)
    counts = counts_of(every_group)
    groups, more = shown_groups(every_group)
    return {
        "run": {**run_summary(record, counts), "traceback": record.traceback},
        "counts": counts,
        "steps": [group_dict(group) for group in groups],
        **more,
        "waits": questions(engine, record),
        "waiting": open_question_dict(engine, record),
        "changes": changes,
    }


@router.get("/runs/{run}/changes")
def get_changes(
    engine: EngineArg,
    run: str,
    since: Annotated[str | None, Query(description="The token of what the page shows.")] = None,
) -> dict[str, Any]:
    """Whether the run changed since the token `since` (from an earlier answer, or the
    `changes` of a run's or a step's answer), its token now, and whether it is still live
    (running, or paused: it can change without the dashboard). Answers at once, cheaply
    whatever the run's size: pages poll it instead of holding a connection open."""
    record = run_or_404(engine, run)
    changes = run_changes(engine, record)
    return {**changes, "changed": changes["token"] != since}


@router.get("/runs/{run}/graph")
def get_graph(engine: EngineArg, run: str) -> dict[str, Any]:
    """One node per step name (a fan-out is one node) with counts and durations; edges by
    data and by value (a value the pipeline read before the call)."""
    record = run_or_404(engine, run)
    groups, more = shown_groups(step_groups(engine, record))
    durations = group_durations(engine, record)
    edges = group_edges(engine, record)
    names = {group.step_name for group in groups}
    return {
        "groups": [
            {
                "id": group.step_name,
                **group_dict(group),
                "duration": durations_dict(durations.get(group.step_name)),
                "feeds_itself": (group.step_name, group.step_name, "data") in edges,
            }
            for group in groups
        ],
        "edges": [
            {"from": a, "to": b, "kind": kind}
            for a, b, kind in sorted(edges)
            if a != b and a in names and b in names
        ],
        **more,
    }


@router.get("/runs/{run}/groups/{step_name}/items")
def get_group_items(
    engine: EngineArg,
    run: str,
    step_name: str,
    status: str | None = None,
    page: PageArg = 1,
    page_size: SizeArg = 50,
) -> dict[str, Any]:
    """The invocations of one step name (latest attempts), in the order they started."""
    state = parse_item_status(status)
    record = run_or_404(engine, run)
    if not has_step_name(engine, record, step_name):
        names = ", ".join(group.step_name for group in step_groups(engine, record)[:20])
        raise HTTPException(
            404, f"Run '{record.name}' has no step '{step_name}'; its steps: {names or 'none'}."
        )
    found = invocation_page(engine, record, page, page_size, step_name, state)
    return paged(found, [item_dict(row) for row in found.items])


@router.get("/runs/{run}/timeline")
def get_timeline(
    engine: EngineArg, run: str, page: PageArg = 1, page_size: SizeArg = 50
) -> dict[str, Any]:
    """Invocations in the order they started, one page, and per step name its span,
    p50 / p95 / max and stragglers (slower than p95 x 1.5, at most 10)."""
    record = run_or_404(engine, run)
    found = invocation_page(engine, record, page, page_size)
    groups, more = shown_groups(step_groups(engine, record))
    durations = group_durations(engine, record)
    timeline_groups = []
    for group in groups:
        spread = durations.get(group.step_name)
        stragglers = spread.stragglers if spread else []
        timeline_groups.append(
            {
                **group_dict(group),
                **durations_dict(spread),
                "stragglers": [
                    {"invocation": name, "duration_s": round(taken, 6)}
                    for name, taken in stragglers
                ],
            }
        )
    return {
        **paged(found, [item_dict(row) for row in found.items]),
        "start": iso(record.start_time),
        "end": iso(record.end_time),
        "groups": timeline_groups,
        **more,
    }


@router.get("/runs/{run}/failed")
def get_failed(
    engine: EngineArg, run: str, page: PageArg = 1, page_size: SizeArg = 50
) -> dict[str, Any]:
    """The failed invocations (latest attempts), with their error line."""
    record = run_or_404(engine, run)
    found = invocation_page(engine, record, page, page_size, status="failed")
    return paged(found, [item_dict(row) for row in found.items])


# ---- one invocation ------------------------------------------------------------------------


def attempts_or_404(engine: Engine, run: PipelineRunResponse, invocation: str) -> Attempts:
    with not_found_as_404():
        return invocation_attempts(engine, run, invocation)


def inputs_page(engine: Engine, step_run_id: str, page: int, page_size: int) -> dict[str, Any]:
    """A page of a step run's inputs, each with the step run (of any run) that made it."""
    found = input_page(engine, step_run_id, page, page_size)
    producers = step_run_origins(
        engine, [v.producer_step_run_id for _, v in found.items if v.producer_step_run_id]
    )
    return paged(
        found,
        [
            {
                "name": name,
                "artifact": version_dict(version),
                "producer": origin_dict(producers.get(version.producer_step_run_id or "")),
            }
            for name, version in found.items
        ],
    )


@router.get("/runs/{run}/steps/{invocation}")
def get_step(engine: EngineArg, run: str, invocation: str) -> dict[str, Any]:
    """One invocation: its latest attempt (as `runs show -o json` prints a step run, with
    its first 50 parents of "parents_total"), its configuration, cache verdict, every
    attempt, the first page of its inputs with their producers (the rest:
    `.../inputs?page=`), its outputs with their first consumers (of any run; the rest:
    `/api/artifacts/{id}/consumers`), its metadata, and the token to follow its run from
    (`changes`). Artifacts are shown by their stored previews; nothing is loaded."""
    record = run_or_404(engine, run)
    changes = run_changes(engine, record)
    found = attempts_or_404(engine, record, invocation)
    latest = found.latest
    related = [
        *latest.parent_step_run_ids,
        *(a.original_step_run_id for a in found.attempts if a.original_step_run_id),
    ]
    origins = step_run_origins(engine, related)
    names = {origin.step_run_id: origin.invocation_id for origin in origins.values()}
    inputs = inputs_page(engine, latest.id, 1, INPUTS_SHOWN)
    outputs = []
    for name, version in latest.outputs.items():
        consumers = consumer_page(engine, version.id, 1, CONSUMERS_SHOWN)
        outputs.append(
            {
                "name": name,
                "artifact": version_dict(version),
                "consumers": paged(consumers, [origin_dict(c) for c in consumers.items]),
            }
        )
    return {
        "step": {
            **step_dict(latest, names, origins),
            "parents_total": found.parents,
            "run": record.name,
        },
        "config": shortened(latest.configuration.config if latest.configuration else {}),
        "cache_verdict": latest.cache_verdict,
        "cache_reason": latest.cache_reason,
        "attempts": [attempt_dict(attempt) for attempt in found.attempts],
        "inputs": inputs["items"],
        "inputs_total": inputs["total"],
        "outputs": outputs,
        "metadata": shortened(latest.run_metadata),
        "changes": changes,
    }


@router.get("/runs/{run}/steps/{invocation}/inputs")
def get_inputs(
    engine: EngineArg, run: str, invocation: str, page: PageArg = 1, page_size: SizeArg = 50
) -> dict[str, Any]:
    """The inputs of an invocation's latest attempt, by name, with their producers."""
    record = run_or_404(engine, run)
    latest = attempts_or_404(engine, record, invocation).latest
    return inputs_page(engine, latest.id, page, page_size)


@router.get("/runs/{run}/steps/{invocation}/logs")
def get_logs(
    engine: EngineArg,
    run: str,
    invocation: str,
    offset: Annotated[int, Query(ge=0, le=2**62, description="First character.")] = 0,
    limit: Annotated[int, Query(ge=1, le=LOG_LIMIT, description="Characters.")] = 65_536,
    attempt: Annotated[int | None, Query(ge=1, description="Default: the latest.")] = None,
) -> dict[str, Any]:
    """What the invocation printed and logged, `limit` characters from `offset` (past its
    end: no text, at the end)."""
    record = run_or_404(engine, run)
    attempts = attempts_or_404(engine, record, invocation).attempts
    chosen = [a for a in attempts if attempt is None or a.attempt == attempt]
    if not chosen:
        raise HTTPException(
            404, no_attempt_message(record.name, invocation, attempt or 0, len(attempts))
        )
    found = log_slice(engine, chosen[-1].id, min(offset, LOG_OFFSET_CLAMP), limit)
    end = found.offset + len(found.text)
    return {
        "text": found.text,
        "offset": found.offset,
        "next_offset": end if end < found.total else None,
        "total": found.total,
    }


@router.get("/artifacts/{version_id}/consumers")
def get_consumers(
    engine: EngineArg, version_id: str, page: PageArg = 1, page_size: SizeArg = 50
) -> dict[str, Any]:
    """The invocations (of any run) that took this artifact version as an input."""
    with not_found_as_404():
        found = consumer_page(engine, version_id, page, page_size)
    return paged(found, [origin_dict(origin) for origin in found.items])


# ---- actions -------------------------------------------------------------------------------


@router.post("/runs/{run}/resume", status_code=202)
def resume_run(engine: EngineArg, run: str) -> dict[str, Any]:
    """Resume a failed or stopped run, as `branchwork runs resume` does, in a process of its
    own; answers once that process has reopened the run."""
    record = run_or_404(engine, run)
    try:
        status = actions.resume(engine, record)
    except OrchestratorError as error:
        raise HTTPException(409, str(error)) from None
    return {"run": record.name, "status": status}


@router.post("/runs/{run}/stop", status_code=202)
def stop_run(
    engine: EngineArg,
    run: str,
    mode: Annotated[
        Literal["graceful", "abandon"],
        Query(description="graceful: start nothing new; abandon: also give up running steps."),
    ] = "graceful",
) -> dict[str, Any]:
    """Ask a running run to stop (its loop reads the request from the store)."""
    record = run_or_404(engine, run)
    try:
        runs.stop_run(engine, record, abandon=mode == "abandon")
    except OrchestratorError as error:
        raise HTTPException(409, str(error)) from None
    return {"run": record.name, "stop": mode}
