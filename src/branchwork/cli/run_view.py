"""What `branchwork runs show` prints of a run of any size.

A run of at most `SHOWN_IN_FULL` invocations is listed whole, one row per step run (as it
always was). A bigger one is shown grouped by step name, with the queries the dashboard uses
(`metadata.run_groups`, `run_pages`): its failed invocations first with their error line (at
most `FAILED_SHOWN`), then per step name its counts by state and duration p50 / p95 / max (at
most `GROUPS_SHOWN` step names), and the hint that `--all` lists every step run. Reading a
group is a walk over an index, so a million step runs read in a fraction of a second.

`--all` on a big run prints every step run as they are read, a chunk at a time
(`metadata.run_attempts`): a plain table whose first columns are padded to the run's longest
names, which keeps memory flat whatever the size (a million lines take a while to print).

The JSON (`-o json`) has the same shape for every run: the run's fields, "counts" by state,
"groups" (per step name: counts, start, end, and "duration" p50 / p95 / max, as the
dashboard's graph answers), "failed" (the first page of failed invocations, as the
dashboard's `/failed`), "steps" (every step run; null for a run of more than
`SHOWN_IN_FULL` invocations unless `--all`) and "waits".
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from branchwork.cli import render
from branchwork.cli.run_family import family_dict
from branchwork.exceptions import BranchworkError
from branchwork.models import shapes

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from branchwork.metadata.run_figures import Durations, StepGroup
    from branchwork.metadata.run_listing import StepRunOrigin
    from branchwork.metadata.run_pages import InvocationRow, Page
    from branchwork.models import PipelineRunResponse, StepRunResponse, WaitResponse

SHOWN_IN_FULL = 100  # a run of at most this many invocations is listed one step run a row
FAILED_SHOWN = 20  # failed invocations a summary lists
GROUPS_SHOWN = 30  # step names a summary lists
STATUS_ORDER = (  # the count columns of a summary, when some group has that state
    "completed",
    "cached",
    "failed",
    "running",
    "retried",
    "stopped",
    "paused",
    "initializing",
    "not_started",
)
_STEPS_MARK = "__branchwork_steps__"


@dataclass(frozen=True)
class RunSummary:
    """A run (without its step runs) and its figures per step name."""

    run: PipelineRunResponse
    groups: list[StepGroup]
    durations: dict[str, Durations]
    failed: Page[InvocationRow]

    @property
    def invocations(self) -> int:
        from branchwork.metadata.run_pages import counts_of, recorded

        return recorded(counts_of(self.groups))

    @property
    def in_full(self) -> bool:
        """Whether the run is small enough to list every step run by default."""
        return self.invocations <= SHOWN_IN_FULL


def read_summary(engine: Engine, run: PipelineRunResponse) -> RunSummary:
    from branchwork.metadata.run_groups import group_durations, step_groups
    from branchwork.metadata.run_pages import invocation_page

    groups = step_groups(engine, run)
    durations = group_durations(engine, run, groups)
    failed = invocation_page(engine, run, 1, FAILED_SHOWN, status="failed")
    return RunSummary(run, groups, durations, failed)


# ---- JSON ----------------------------------------------------------------------------------


def print_run_json(
    engine: Engine, summary: RunSummary, waits: list[WaitResponse], all_steps: bool
) -> None:
    """`runs show -o json`: see the module docstring (and `run_family` for "parent" and
    "children")."""
    data = {**summary_dict(summary, waits), **family_dict(engine, summary.run)}
    steps = _step_dicts(engine, summary, all_steps)
    if steps is None:
        render.print_json(data)
    else:
        print_with_steps(data, steps)


def summary_dict(summary: RunSummary, waits: list[WaitResponse]) -> dict[str, Any]:
    """The JSON of `runs show`, with "steps" left null (see `print_with_steps`)."""
    from branchwork.metadata.run_pages import counts_of

    run = summary.run
    return {
        **shapes.run_dict(run),
        "traceback": run.traceback,
        "counts": counts_of(summary.groups),
        "groups": [
            {
                **shapes.group_dict(group),
                "duration": shapes.durations_dict(summary.durations.get(group.step_name)),
            }
            for group in summary.groups
        ],
        "failed": shapes.paged(summary.failed, [shapes.item_dict(r) for r in summary.failed.items]),
        "steps": None,
        "waits": [shapes.wait_dict(wait) for wait in waits],
    }


def print_with_steps(data: dict[str, Any], steps: Iterable[dict[str, Any]]) -> None:
    """Print `data` as `render.print_json` would with "steps" set to the list of `steps`,
    writing the steps as they come instead of holding them all."""
    head, tail = render.json_text({**data, "steps": _STEPS_MARK}).split(json.dumps(_STEPS_MARK))
    write = sys.stdout.write
    write(head + "[")
    written = False
    for step in steps:
        text = textwrap.indent(render.json_text(step), "    ")
        write(("," if written else "") + "\n" + text)
        written = True
    write(("\n  ]" if written else "]") + tail + "\n")


def streamed_step_dicts(engine: Engine, run: PipelineRunResponse) -> Iterator[dict[str, Any]]:
    """Every step run of `run` as `runs show -o json` prints one, read a chunk at a time."""
    from branchwork.metadata.run_attempts import attempt_chunks

    for chunk in attempt_chunks(engine, run):
        origins = _origins(engine, chunk.attempts)
        for attempt in chunk.attempts:
            yield shapes.step_dict(attempt, chunk.names, origins)


def _step_dicts(
    engine: Engine, summary: RunSummary, all_steps: bool
) -> Iterable[dict[str, Any]] | None:
    """What "steps" of `runs show -o json` lists: every step run of a small run (or with
    --all), read whole or a chunk at a time; None (null) for a big run otherwise."""
    from branchwork.client import Client

    if summary.in_full:
        record = Client().get_pipeline_run(summary.run.id)
        origins = _origins(engine, record.attempts)
        names = render.invocation_names(record)
        return [render.step_dict(step, names, origins) for step in record.attempts]
    return streamed_step_dicts(engine, summary.run) if all_steps else None


def _origins(engine: Engine, attempts: Iterable[StepRunResponse]) -> dict[str, StepRunOrigin]:
    """Where the step runs these cache hits reused live (for "cached from")."""
    from branchwork.metadata.run_listing import step_run_origins

    return step_run_origins(
        engine, [step.original_step_run_id for step in attempts if step.original_step_run_id]
    )


def _failed_attempt(engine: Engine, run: PipelineRunResponse) -> StepRunResponse | None:
    """The latest attempt of the step that failed the run, if one did."""
    from branchwork.metadata.step_pages import invocation_attempts

    if run.failed_step is None:
        return None
    try:
        return invocation_attempts(engine, run, run.failed_step).latest
    except BranchworkError:  # the body failed it, with an invocation it never recorded
        return None


def show_cache(
    engine: Engine, run: PipelineRunResponse, output: render.OutputFormat, all_steps: bool
) -> None:
    """`runs show --cache`: every invocation's cache decision, or for a run of more than
    SHOWN_IN_FULL invocations, without --all, their counts per step and verdict. The JSON
    has both: "groups" always, "steps" null for such a run (as `runs show -o json`: a
    million decisions took 16 s and 1.5 GB)."""
    from branchwork.metadata.run_cache import cache_decisions, cache_groups
    from branchwork.metadata.run_pages import recorded, run_counts

    in_full = all_steps or recorded(run_counts(engine, [run])[run.id]) <= SHOWN_IN_FULL
    if output is render.OutputFormat.json:
        decisions = cache_decisions(engine, run) if in_full else None
        render.print_json(
            {
                "run": run.name,
                "groups": [shapes.cache_group_dict(g) for g in cache_groups(engine, run)],
                "steps": None if decisions is None else [vars(d) for d in decisions],
            }
        )
    elif in_full:
        render.show_cache_decisions(run, cache_decisions(engine, run))
    else:
        render.show_cache_groups(run, cache_groups(engine, run), GROUPS_SHOWN)


# ---- tables --------------------------------------------------------------------------------


def show_run_table(
    engine: Engine, summary: RunSummary, all_steps: bool, replay_of: str | None
) -> None:
    """`runs show`: every step run of a small run (or with --all), else the summary."""
    from branchwork.client import Client

    if summary.in_full:
        record = Client().get_pipeline_run(summary.run.id)
        render.show_run(record, _origins(engine, record.attempts), replay_of)
    elif all_steps:
        show_every_step(engine, summary.run, replay_of)
    else:
        show_summary(summary, replay_of, _failed_attempt(engine, summary.run))


def show_summary(
    summary: RunSummary, replay_of: str | None, failed: StepRunResponse | None
) -> None:
    """The run's fields, its failed invocations, its step names with their counts and
    durations, what failed the run, and how to list every step run."""
    out = render.console()
    out.print(render.run_fields(summary.run, replay_of))
    if summary.failed.total:
        out.print()
        out.print(_failed_table(summary.failed))
    out.print()
    out.print(_groups_table(summary))
    hidden = summary.groups[GROUPS_SHOWN:]
    if hidden:
        others = sum(group.total for group in hidden)
        out.print(Text(f"... and {len(hidden)} more steps with {others} invocations", "dim"))
    render.show_failure(summary.run, failed)
    out.print()
    steps = len(summary.groups)
    out.print(
        Text(
            f"{summary.invocations} invocations of {steps} step{'' if steps == 1 else 's'}, "
            f"grouped by step; `branchwork runs show {summary.run.name} --all` lists every "
            "step run."
        )
    )


def _failed_table(failed: Page[InvocationRow]) -> Table:
    title = f"Failed: {failed.total} invocation{'' if failed.total == 1 else 's'}"
    if failed.total > len(failed.items):
        title += f" (the first {len(failed.items)})"
    table = render.new_table("INVOCATION", "STEP", "ATTEMPT", "ERROR", title=title)
    for row in failed.items:
        error = (row.exception_type, shapes.item_dict(row)["error"])  # its first line
        table.add_row(
            Text(row.invocation),
            Text(row.step_name),
            str(row.attempt),
            Text(": ".join(part for part in error if part) or "-"),
        )
    return table


def _groups_table(summary: RunSummary) -> Table:
    shown = summary.groups[:GROUPS_SHOWN]
    statuses = [s for s in STATUS_ORDER if any(group.counts[s] for group in summary.groups)]
    counts = ["INVOCATIONS", *(status.replace("_", " ").upper() for status in statuses)]
    numeric = [*counts, "P50", "P95", "MAX"]
    table = render.new_table("STEP", *numeric, right=numeric)
    for group in shown:
        spread = summary.durations.get(group.step_name)
        figures = (spread.p50, spread.p95, spread.max) if spread else (None, None, None)
        table.add_row(
            Text(group.step_name),
            str(group.total),
            *(
                Text(str(group.counts[s]), render.STATUS_STYLES.get(s, ""))
                if group.counts[s]
                else ""
                for s in statuses
            ),
            *(render.duration_text(figure) for figure in figures),
        )
    return table


def show_every_step(engine: Engine, run: PipelineRunResponse, replay_of: str | None) -> None:
    """The run's fields and every step run, one row per attempt, printed a chunk at a time;
    then what failed the run and the step runs' metadata."""
    from branchwork.metadata.run_attempts import attempt_chunks, name_widths

    out = render.console()
    out.print(render.run_fields(run, replay_of))
    out.print()
    widths = tuple(
        max(longest, len(title))
        for longest, title in zip(name_widths(engine, run), render.STEP_RUN_COLUMNS)
    )
    write = sys.stdout.write
    write(_row(widths, render.STEP_RUN_COLUMNS))
    failed: StepRunResponse | None = None
    with_metadata: list[StepRunResponse] = []
    for chunk in attempt_chunks(engine, run, links=False):
        origins = _origins(engine, chunk.attempts)
        lines = []
        for step in chunk.attempts:
            cells = (
                step.name,
                step.step_name,
                str(step.status),
                str(step.attempt),
                render.duration(step.start_time, step.end_time),
                render.cached_from(step, origins),
            )
            lines.append(_row(widths, cells))
            failed = step if step.name == run.failed_step else failed
            with_metadata += [step] if step.run_metadata else []
        write("".join(lines))
    sys.stdout.flush()
    render.show_failure(run, failed)
    render.show_metadata(with_metadata)


def _row(widths: tuple[int, ...], cells: tuple[str, ...]) -> str:
    """A line of the plain step run table: the first columns padded to `widths`, the
    status, attempt and duration to their widest values, two spaces between columns."""
    padded = (*widths, 12, 7, 8)
    line = "  ".join(cell.ljust(width) for cell, width in zip(cells, padded))
    return (line + "  " + cells[-1]).rstrip() + "\n"
