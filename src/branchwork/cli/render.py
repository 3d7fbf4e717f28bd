"""Turning response records into tables, key/value listings and JSON for the CLI.

Tables and listings go through Rich; JSON is printed plainly (no colour, no wrapping) so
scripts can parse it. When stdout is not a terminal, Rich gets a wide console so piped output
is not folded at 80 columns. Every value that comes from the store is wrapped in `Text`, so
brackets in names or parameters are never read as Rich markup.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from branchwork.models import (
    ArtifactVersionResponse,
    CacheDecision,
    ExecutionStatus,
    PipelineRunResponse,
    StepRunResponse,
    WaitResponse,
    shapes,
)
from branchwork.models.shapes import iso, seconds
from branchwork.models.shapes import step_dict as step_dict  # the CLI's, as render.step_dict

if TYPE_CHECKING:  # the store modules load SQLAlchemy; commands import them when they run
    from branchwork.metadata.artifact_listing import ArtifactSummary
    from branchwork.metadata.run_cache import CacheGroup
    from branchwork.metadata.run_listing import StepRunOrigin
    from branchwork.stack.records import ComponentRecord, StackRecord


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


STATUS_STYLES = {
    "completed": "green",
    "cached": "cyan",
    "failed": "red",
    "retried": "yellow",
    "running": "yellow",
    "initializing": "dim",
    "stopped": "magenta",
    "paused": "blue",
}
CACHE_STYLES = {"hit": "cyan", "miss": "yellow", "key_failed": "red", "expired": "magenta"}
_VERDICT_COUNTS = {  # verdict -> (one, many), for "3 hits, 1 miss"
    "hit": ("hit", "hits"),
    "miss": ("miss", "misses"),
    "off": ("with caching off", "with caching off"),
    "refresh": ("refreshed", "refreshed"),
    "key_failed": ("key failed", "keys failed"),
}


def console() -> Console:
    """A console on the current stdout (looked up per call, so test runners can swap it)."""
    probe = Console(highlight=False)
    return probe if probe.is_terminal else Console(highlight=False, width=1000)


def print_json(data: Any) -> None:
    typer.echo(json_text(data))


def json_text(data: Any) -> str:
    """`data` as indented JSON every parser reads: NaN and the infinities (a metric, a
    parameter) are null, as the dashboard's API writes them; Python's `json` writes `NaN`,
    which is not JSON (`jq`, JavaScript's `JSON.parse` refuse it)."""
    return json.dumps(_finite(data), indent=2, default=str)


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(value) for value in data]
    return data


# ---- values --------------------------------------------------------------------------------


def value_repr(value: Any) -> str:
    """`repr(value)`, or what it is where repr refuses (an int longer than Python writes as
    text, a class whose `__repr__` raises): the run completed, and printing its value failed
    the command."""
    try:
        return repr(value)
    except Exception as error:  # noqa: BLE001 - the user's __repr__ may raise anything
        return (
            f"<{type(value).__name__} value that repr() refuses: {type(error).__name__}: {error}>"
        )


def local_time(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.replace(tzinfo=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(start: datetime | None, end: datetime | None) -> str:
    return duration_text(seconds(start, end))


def duration_text(total: float | None) -> str:
    if total is None:
        return "-"
    if total < 1:
        return f"{total * 1000:.0f}ms"
    if total < 10:
        return f"{total:.2f}s"
    if total < 60:
        return f"{total:.1f}s"
    minutes, secs = divmod(int(total), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def status_text(status: Any) -> Text:
    value = str(status)
    return Text(value, style=STATUS_STYLES.get(value, ""))


def kind(run: PipelineRunResponse) -> str:
    return "dynamic" if run.snapshot.is_dynamic else "static"


def cached_from(step: StepRunResponse, origins: Mapping[str, StepRunOrigin]) -> str:
    """The run (and invocation, when it differs) a cache hit reused."""
    if step.original_step_run_id is None:
        return ""
    origin = origins.get(step.original_step_run_id)
    if origin is None:
        return f"{step.original_step_run_id} (deleted)"
    if origin.invocation_id == step.name:
        return origin.run_name
    return f"{origin.run_name}/{origin.invocation_id}"


def new_table(*columns: str, title: str | None = None, right: Iterable[str] = ()) -> Table:
    """A table whose cells fold onto more lines where the terminal is too narrow: a cell cut
    with "…" loses an id one cannot then type, and columns squeezed to nothing vanished.
    The columns named in `right` are right-aligned (counts, durations)."""
    aligned_right = set(right)
    table = Table(box=None, header_style="bold", pad_edge=False, title=title, title_justify="left")
    for column in columns:
        table.add_column(
            column,
            overflow="fold",
            min_width=len(column),
            justify="right" if column in aligned_right else "left",
        )
    return table


def _fields(rows: Iterable[tuple[str, Any]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for label, value in rows:
        grid.add_row(label, value if isinstance(value, Text) else Text(str(value)))
    return grid


# ---- runs ----------------------------------------------------------------------------------


def run_dict(run: PipelineRunResponse) -> dict[str, Any]:
    return shapes.run_dict(run)


def invocation_names(run: PipelineRunResponse) -> dict[str, str]:
    """Step run id (of any attempt) -> invocation id."""
    return {attempt.id: attempt.name for attempt in run.attempts}


def show_runs_table(runs: list[PipelineRunResponse], counts: Mapping[str, int]) -> None:
    table = new_table("RUN", "PIPELINE", "STATUS", "KIND", "STEPS", "CREATED", "DURATION", "STACK")
    for run in runs:
        table.add_row(
            Text(run.name),
            Text(run.pipeline_name),
            status_text(run.status),
            kind(run),
            str(counts.get(run.id, 0)),
            local_time(run.created),
            duration_text(run.duration_seconds()),
            Text(run.stack or "-"),
        )
    console().print(table)


def show_run(
    run: PipelineRunResponse, origins: Mapping[str, StepRunOrigin], replay_of: str | None = None
) -> None:
    """A run's fields and its step runs; `replay_of` describes the run it replays."""
    out = console()
    out.print(run_fields(run, replay_of))
    out.print()
    table = new_table(*STEP_RUN_COLUMNS)
    for step in run.attempts:
        table.add_row(
            Text(step.name),
            Text(step.step_name),
            status_text(step.status),
            str(step.attempt),
            duration(step.start_time, step.end_time),
            Text(cached_from(step, origins)),
        )
    out.print(table)
    show_failure(run)
    show_metadata([step for step in run.attempts if step.run_metadata])


STEP_RUN_COLUMNS = ("INVOCATION", "STEP", "STATUS", "ATTEMPT", "DURATION", "CACHED FROM")


def run_fields(run: PipelineRunResponse, replay_of: str | None = None) -> Table:
    """A run's fields, parameters, error and outputs, one per line."""
    fields: list[tuple[str, Any]] = [
        ("Run", run.name),
        ("ID", run.id),
        ("Pipeline", run.pipeline_name),
        ("Status", status_text(run.status)),
        ("Dynamic", "yes" if run.snapshot.is_dynamic else "no"),
        ("Stack", run.stack or "-"),
        ("Orchestrator", run.orchestrator),
        ("Created", local_time(run.created)),
        ("Duration", duration_text(run.duration_seconds())),
        ("Parameters", json.dumps(run.parameters, default=str)),
    ]
    if replay_of is not None:
        fields.append(("Replay of", replay_of))
    message = (run.exception_message or "").strip().splitlines()
    if run.paused_with_child:
        fields.append(("Paused with", f"{run.failed_step}: {message[0] if message else ''}"))
    elif run.status == ExecutionStatus.STOPPED:
        fields.append(("Reason", message[0] if message else "stopped on request"))
    elif run.failed_step or run.exception_type:
        fields.append(("Failed step", run.failed_step or "-"))
        fields.append(("Error", f"{run.exception_type}: {message[0] if message else ''}"))
    for hook in run.hook_errors:
        error = f"{hook['exception_type']}: {hook['message']}"
        fields.append(("Hook failed", f"{hook['hook']} {hook['function']}: {error}"))
    for position, version in enumerate(run.outputs):
        label = "Returned" if len(run.outputs) == 1 else f"Returned {position}"
        fields.append((label, f"{version.id}  ({version.data_type})"))
    return _fields(fields)


def show_failure(run: PipelineRunResponse, failed: StepRunResponse | None = None) -> None:
    """The traceback of what failed the run (see `failure_tracebacks`)."""
    out = console()
    for header, text in failure_tracebacks(run, failed):
        out.print()
        out.print(Text(header, style="bold red"))
        out.print(Text(text.rstrip("\n")))


def show_metadata(with_metadata: list[StepRunResponse]) -> None:
    """What these step runs logged as metadata, one line each."""
    if not with_metadata:
        return
    out = console()
    out.print()
    out.print(Text("Metadata", style="bold"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for step in with_metadata:
        label = step.name if step.attempt == 1 else f"{step.name} (attempt {step.attempt})"
        pairs = (
            f"{key}={json.dumps(value, default=str)}" for key, value in step.run_metadata.items()
        )
        grid.add_row(Text(label), Text("  ".join(pairs)))
    out.print(grid)


def show_waits(waits: list[WaitResponse]) -> None:
    """A run's questions (`branchwork.wait`): asked when, answered with what and by whom, or
    still waiting."""
    if not waits:
        return
    out = console()
    out.print()
    table = new_table("WAIT", "QUESTION", "ASKED", "ANSWER", "BY")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    for wait in waits:
        answer = json.dumps(wait.answer) if wait.is_answered else "(waiting)"
        if wait.timed_out(now):
            answer = (
                f"(timed out: a resume takes the default {json.dumps(wait.default)})"
                if wait.has_default
                else "(timed out: no answer, no default)"
            )
        table.add_row(
            Text(wait.wait_id),
            Text(wait.question),
            local_time(wait.asked),
            Text(answer, style="" if wait.is_answered else STATUS_STYLES["paused"]),
            Text(wait.answered_by or ""),
        )
    out.print(table)


def show_cache_decisions(run: PipelineRunResponse, decisions: list[CacheDecision]) -> None:
    """One row per invocation: hit or miss (or why caching did not apply), and why."""
    counts = Counter(decision.verdict or "not recorded" for decision in decisions)
    out = _cache_header(run, counts)
    table = new_table("INVOCATION", "STEP", "CACHE", "REASON")
    for decision in decisions:
        table.add_row(
            Text(decision.invocation_id),
            Text(decision.step_name),
            _verdict(decision.verdict),
            _reason(decision.reason),
        )
    out.print(table)


def show_cache_groups(run: PipelineRunResponse, groups: list[CacheGroup], shown: int) -> None:
    """A big run's decisions: per step name and verdict, how many, and the first one's reason
    (the first `shown` groups, biggest first)."""
    counts: Counter[str] = Counter()
    for group in groups:
        counts[group.verdict or "not recorded"] += group.invocations
    out = _cache_header(run, counts)
    table = new_table("STEP", "CACHE", "INVOCATIONS", "FIRST REASON")
    for group in groups[:shown]:
        example = group.example
        table.add_row(
            Text(group.step_name),
            _verdict(group.verdict),
            Text(str(group.invocations)),
            Text.assemble(f"{example.invocation_id}: ", _reason(example.reason)),
        )
    out.print(table)
    hidden = len(groups) - shown
    more = f"{hidden} more groups; " if hidden > 0 else ""
    out.print(f"({more}--all lists every invocation.)")


def _cache_header(run: PipelineRunResponse, counts: Counter[str]) -> Console:
    """Print the run and its count of each verdict ("3 hits, 1 miss"); the console."""
    summary = ", ".join(
        f"{count} {_VERDICT_COUNTS.get(verdict, (verdict, verdict))[count != 1]}"
        for verdict, count in counts.most_common()
    )
    out = console()
    out.print(Text.assemble(("Run:   ", "bold"), run.name, f" ({run.pipeline_name})"))
    out.print(Text.assemble(("Cache: ", "bold"), summary or "no steps"))
    out.print()
    return out


def _verdict(verdict: str | None) -> Text:
    return Text(verdict or "-", style=CACHE_STYLES.get(verdict or "", ""))


def _reason(reason: str | None) -> Text:
    return Text(reason or "not recorded (the run predates cache reasons)")


def failure_tracebacks(
    run: PipelineRunResponse, failed: StepRunResponse | None = None
) -> list[tuple[str, str]]:
    """(header, traceback) of what failed the run: its failed step's latest attempt (`failed`,
    else read from the run's steps), or the pipeline body when that raised (then no step is
    to blame). A stopped run, or one paused with its child run, failed nowhere: where its
    body was then is branchwork's code, not the user's."""
    if run.paused_with_child or run.status == ExecutionStatus.STOPPED:
        return []
    if run.failed_step is not None:
        step = failed or run.steps.get(run.failed_step)
        text = (step.traceback if step else None) or run.traceback
        if not text:
            return []
        attempt = f" (attempt {step.attempt})" if step and step.attempt > 1 else ""
        return [(f"Traceback of invocation {run.failed_step}{attempt}:", text)]
    if run.traceback:
        return [(f"Traceback of the pipeline body ({run.pipeline_name}):", run.traceback)]
    return []


def show_diff(run_a: str, run_b: str, rows: list[tuple[str, str, str]]) -> None:
    out = console()
    out.print(Text(f"{run_a} and {run_b} differ in {len(rows)} places:"))
    table = new_table("DIFFERENCE", "INVOCATION", "DETAIL")
    for what, invocation, detail in rows:
        table.add_row(Text(what), Text(invocation), Text(detail))
    out.print(table)


# ---- stacks --------------------------------------------------------------------------------


def component_dict(component: ComponentRecord) -> dict[str, Any]:
    return {
        "name": component.name,
        "kind": component.kind,
        "flavor": component.flavor,
        "config": component.config,
        "location": component.location,
        "builtin": component.builtin,
        "created": iso(component.created),
    }


def stack_dict(stack: StackRecord) -> dict[str, Any]:
    return {
        "name": stack.name,
        "active": stack.active,
        "builtin": stack.builtin,
        "orchestrator": component_dict(stack.orchestrator),
        "artifact_store": component_dict(stack.artifact_store),
        "created": iso(stack.created),
    }


def _component_summary(component: ComponentRecord) -> str:
    return f"{component.name} ({component.flavor})"


def show_stacks_table(stacks: list[StackRecord]) -> None:
    table = new_table("ACTIVE", "STACK", "ORCHESTRATOR", "ARTIFACT STORE")
    for stack in stacks:
        table.add_row(
            Text("*" if stack.active else "", style="green"),
            Text(stack.name, style="bold" if stack.active else ""),
            Text(_component_summary(stack.orchestrator)),
            Text(_component_summary(stack.artifact_store)),
        )
    console().print(table)


def _config_text(component: ComponentRecord) -> str:
    if component.location is not None:
        return component.location
    return json.dumps(component.config) if component.config else "-"


def show_components_table(components: list[ComponentRecord]) -> None:
    table = new_table("NAME", "FLAVOR", "SETTINGS")
    for component in components:
        table.add_row(Text(component.name), Text(component.flavor), Text(_config_text(component)))
    console().print(table)


def show_stack(stack: StackRecord) -> None:
    console().print(
        _fields(
            [
                ("Stack", stack.name + (" (built in)" if stack.builtin else "")),
                ("Active", "yes" if stack.active else "no"),
                ("Orchestrator", _component_summary(stack.orchestrator)),
                ("  settings", _config_text(stack.orchestrator)),
                ("Artifact store", _component_summary(stack.artifact_store)),
                ("  location", _config_text(stack.artifact_store)),
                ("Created", local_time(stack.created) if stack.created else "-"),
            ]
        )
    )


# ---- artifacts -----------------------------------------------------------------------------


def artifact_dict(summary: ArtifactSummary) -> dict[str, Any]:
    return {
        "id": summary.id,
        "name": summary.name,
        "versions": summary.version_count,
        "latest_version": summary.latest_version,
        "latest": iso(summary.latest),
    }


def show_artifacts_table(artifacts: list[ArtifactSummary]) -> None:
    table = new_table("ARTIFACT", "VERSIONS", "LATEST", "UPDATED")
    for summary in artifacts:
        table.add_row(
            Text(summary.name),
            str(summary.version_count),
            str(summary.latest_version),
            local_time(summary.latest),
        )
    console().print(table)


def show_versions_table(
    versions: list[ArtifactVersionResponse],
    origins: Mapping[str, StepRunOrigin],
    with_names: bool = True,
) -> None:
    """One row per version; `with_names` adds the artifact's name (versions of several)."""
    columns = ("VERSION", "TAGS", "CREATED", "TYPE", "PRODUCED BY", "ID")
    table = new_table(*(("ARTIFACT", *columns) if with_names else columns))
    for version in versions:
        cells: list[str | Text] = [
            str(version.version),
            Text(", ".join(version.tags) or "-"),
            local_time(version.created),
            Text(version.data_type),
            Text(produced_by(version, origins)),
            version.id,
        ]
        table.add_row(*([Text(version.name), *cells] if with_names else cells))
    console().print(table)


def produced_by(version: ArtifactVersionResponse, origins: Mapping[str, StepRunOrigin]) -> str:
    if version.producer_step_run_id is None:
        return "-"
    origin = origins.get(version.producer_step_run_id)
    return "(deleted run)" if origin is None else f"{origin.run_name}/{origin.invocation_id}"


def show_version(
    version: ArtifactVersionResponse, origins: Mapping[str, StepRunOrigin], used_by: list[str]
) -> None:
    """Its fields, then what its step logged, then its preview (text, metadata)."""
    out = console()
    out.print(
        _fields(
            [
                ("Artifact", version.name),
                ("Version", version.version),
                ("ID", version.id),
                ("Tags", ", ".join(version.tags) or "-"),
                ("URI", version.uri),
                ("Type", version.data_type),
                ("Materializer", version.materializer),
                *_pickled(version),
                ("Content hash", version.content_hash),
                ("Created", local_time(version.created)),
                ("Produced by", produced_by(version, origins)),
                ("Used by runs", ", ".join(used_by) or "-"),
            ]
        )
    )
    _print_section(out, "Metadata", _json_fields(version.metadata))
    preview = version.preview or {}
    if preview.get("text"):
        out.print()
        out.print(Text("Preview", style="bold"))
        out.print(Text(preview["text"]))
    shown = {k: v for k, v in (preview.get("metadata") or {}).items() if k != "pickled"}
    details = _json_fields(shown)
    if preview.get("image_png"):
        size = len(preview["image_png"]) * 3 // 4  # base64: 4 characters per 3 bytes
        details.append(("thumbnail", f"PNG, about {size} bytes"))
    _print_section(out, "Preview metadata", details)


def _pickled(version: ArtifactVersionResponse) -> list[tuple[str, str]]:
    """A field saying so when the value was stored as a pickle (its materializer's fallback):
    it loads only when unpickling is allowed."""
    if not ((version.preview or {}).get("metadata") or {}).get("pickled"):
        return []
    return [("Stored as", "a pickle: `--allow-pickle` loads it, if you trust the store")]


def _json_fields(values: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [(key, json.dumps(value, default=str)) for key, value in values.items()]


def _print_section(out: Console, title: str, rows: list[tuple[str, Any]]) -> None:
    if rows:
        out.print()
        out.print(Text(title, style="bold"))
        out.print(_fields(rows))
