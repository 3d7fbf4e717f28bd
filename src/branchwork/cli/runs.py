"""`branchwork runs list|show|logs|graph|diff|resume|answer|replay|delete`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from branchwork.cli import render
from branchwork.cli.graph_formats import GraphFormat
from branchwork.cli.graph_view import GraphView
from branchwork.cli.render import OutputFormat
from branchwork.cli.run import ProgressOption, StackOption, split_pairs
from branchwork.cli.run_family import show_family
from branchwork.cli.run_view import (
    SHOWN_IN_FULL,
    print_run_json,
    read_summary,
    show_cache,
    show_run_table,
)
from branchwork.exceptions import ArtifactError, BranchworkError
from branchwork.models.responses import RUN_STATUSES

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse

app = typer.Typer(no_args_is_help=True, help="List, inspect, draw and delete pipeline runs.")

RUN_HELP = "A run: its name or id, a unique prefix of either, latest, or latest:PIPELINE."
RunArgument = Annotated[str, typer.Argument(help=RUN_HELP, show_default=False, metavar="RUN")]
OutputOption = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="table for people, json for scripts.")
]


def parse_statuses(values: list[str]) -> list[str]:
    """The statuses `--status` names (each value may list several, comma-separated)."""
    statuses = [part.strip().lower() for value in values for part in value.split(",")]
    unknown = [status for status in statuses if status not in RUN_STATUSES]
    if unknown:
        raise typer.BadParameter(
            f"{unknown[0]!r} is not a run status; use one of {', '.join(RUN_STATUSES)}.",
            param_hint="--status",
        )
    return list(dict.fromkeys(statuses))


def no_runs_message(pipeline: str | None, statuses: list[str]) -> str:
    if pipeline is None and not statuses:
        return "No runs yet."
    of = f" of pipeline {pipeline!r}" if pipeline is not None else ""
    status = f" with status {' or '.join(statuses)}" if statuses else ""
    return f"No runs{of}{status}."


@app.command("list")
def list_runs(
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only runs of this pipeline.")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help=f"Only runs in this status ({', '.join(RUN_STATUSES)}); repeatable, or "
            "comma-separated.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 20,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Runs, newest first."""
    from branchwork.metadata.run_pages import RunFilter, recorded, run_counts, run_page
    from branchwork.metadata.store import get_engine

    statuses = parse_statuses(status or [])
    engine = get_engine()
    runs = run_page(engine, RunFilter(pipeline, tuple(statuses)), 1, limit).items
    counts = run_counts(engine, runs)
    step_counts = {run_id: recorded(by_state) for run_id, by_state in counts.items()}
    if output is OutputFormat.json:
        render.print_json(
            [
                {**render.run_dict(r), "step_count": step_counts[r.id], "counts": counts[r.id]}
                for r in runs
            ]
        )
    elif runs:
        render.show_runs_table(runs, step_counts)
    else:
        typer.echo(no_runs_message(pipeline, statuses))


@app.command("show")
def show(
    run: RunArgument,
    output: OutputOption = OutputFormat.table,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache",
            help="Why each step was a cache hit or miss, as recorded when it ran (for a run of "
            f"more than {SHOWN_IN_FULL} invocations, counted per step and verdict, unless --all).",
        ),
    ] = False,
    all_steps: Annotated[
        bool,
        typer.Option(
            "--all",
            help=f"Every step run, one per attempt, also for a run of more than "
            f"{SHOWN_IN_FULL} invocations (which is otherwise shown grouped by step).",
        ),
    ] = False,
) -> None:
    """A run's fields, parameters and every step run (one row per attempt); a run of more
    than 100 invocations grouped by step: counts, durations, failed invocations first."""
    from branchwork.metadata.run_pages import find_run
    from branchwork.metadata.store import get_engine
    from branchwork.metadata.waits import run_waits

    engine = get_engine()
    if cache:
        show_cache(engine, find_run(engine, run), output, all_steps)
        return
    summary = read_summary(engine, find_run(engine, run))
    waits = run_waits(engine, summary.run.id)
    if output is OutputFormat.json:
        print_run_json(engine, summary, waits, all_steps)
    else:
        show_run_table(engine, summary, all_steps, _replay_text(summary.run))
        show_family(engine, summary.run)
        render.show_waits(waits)


FormatOption = Annotated[
    GraphFormat | None,
    typer.Option(
        "--format",
        "-f",
        help="text for the terminal; mermaid, dot or svg for files. Default: from the --output "
        "file's extension (.txt, .mmd/.mermaid, .dot/.gv, .svg), else text.",
        show_default=False,
    ),
]
FileOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        help="Write the graph to this file instead of printing it.",
        show_default=False,
        dir_okay=False,
    ),
]


def emit_graph(view: GraphView, fmt: GraphFormat | None, output: Path | None) -> None:
    """Print a graph view (the text format as a tree), or write it to `output`; without
    `fmt`, the format is the one `output`'s extension names (text when printing)."""
    from branchwork.cli.graph_formats import format_for, tree
    from branchwork.cli.graph_formats import render as render_graph

    if fmt is None:
        fmt = GraphFormat.text if output is None else format_for(output)
    if output is not None:
        try:
            output.write_text(render_graph(view, fmt), encoding="utf-8")
        except OSError as error:
            raise BranchworkError(f"Cannot write {output}: {error.strerror}.") from None
        typer.echo(f"Wrote the {fmt.value} graph of {view.title} to {output}.")
        if view.note:
            typer.echo(view.note)
    elif fmt is GraphFormat.text:
        out = render.console()
        out.print(tree(view, out.width))
        if view.note:
            out.print(Text(view.note, style="dim"))
    else:
        typer.echo(render_graph(view, fmt), nl=False)
        if view.note:
            typer.echo(view.note, err=True)


GRAPHED_IN_FULL = 1000  # a run of more invocations is drawn grouped by step name


@app.command("graph")
def graph(run: RunArgument, fmt: FormatOption = None, output: FileOption = None) -> None:
    """The run's DAG as it ran; fan-outs of one step show as one node, `step ×N`; a run of
    more than 1000 invocations is drawn one node per step name."""
    from branchwork.cli.graph import group_steps, step_name_groups
    from branchwork.client import Client
    from branchwork.metadata.run_groups import group_edges, step_groups
    from branchwork.metadata.run_pages import counts_of, find_run, recorded
    from branchwork.metadata.store import get_engine

    engine = get_engine()
    record = find_run(engine, run)
    title = f"{record.name} ({render.kind(record)}, {record.status})"
    groups = step_groups(engine, record)
    invocations = recorded(counts_of(groups))
    if invocations <= GRAPHED_IN_FULL:
        view = GraphView(title, group_steps(Client().get_pipeline_run(record.id)))
    else:
        note = (
            f"{invocations} invocations, drawn one node per step name (a run of more than "
            f"{GRAPHED_IN_FULL} is)."
        )
        view = GraphView(title, step_name_groups(groups, group_edges(engine, record)), note)
    emit_graph(view, fmt, output)
    if output is None and fmt in (None, GraphFormat.text):
        show_family(engine, record)  # the tree of runs: the parent, the child runs


@app.command("logs")
def logs(
    run: RunArgument,
    step: Annotated[
        str | None,
        typer.Argument(
            help="Only this invocation (e.g. train, process_2).",
            metavar="STEP",
            show_default=False,
        ),
    ] = None,
    attempt: Annotated[
        int | None,
        typer.Option(
            "--attempt",
            min=1,
            help="This attempt of STEP (default: its latest).",
            show_default=False,
        ),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """What the run's steps printed and logged: every invocation under a header line, or
    just the text of one (its latest attempt, or --attempt)."""
    from branchwork.client import Client
    from branchwork.metadata.queries import child_run_of
    from branchwork.metadata.run_logs import step_logs
    from branchwork.metadata.run_pages import recorded, run_counts
    from branchwork.metadata.step_pages import require_invocation
    from branchwork.metadata.store import get_engine

    if attempt is not None and step is None:
        raise typer.BadParameter("--attempt needs the STEP whose attempt it is.")
    client = Client()
    record = client.get_pipeline_run(run, include_steps=False)
    if output is OutputFormat.json:
        render.print_json(client.get_step_logs(record, step, attempt))
        return
    engine = get_engine()
    if step is not None:
        require_invocation(engine, record, step)
    logs = step_logs(engine, record, step, attempt)
    if step is not None:
        typer.echo(logs[0].text if logs else "", nl=False)
        child = None if logs else child_run_of(engine, record.id, step)
        if child is not None:  # its steps logged in the child run: it printed nothing here
            typer.echo(
                f"Invocation '{step}' ran as child run '{child}': `branchwork runs logs "
                f"{child}` shows what its steps printed.",
                err=True,
            )
        return
    for log in logs:
        typer.echo(f"==> {log.invocation} ({log.status}) <==")
        typer.echo(log.text if log.text.endswith("\n") else log.text + "\n", nl=False)
    silent = recorded(run_counts(engine, [record])[record.id]) - len(logs)
    if not logs:
        typer.echo(f"No step of run '{record.name}' printed or logged anything.")
    elif silent:
        typer.echo(f"({silent} other invocations printed nothing.)")


@app.command("diff")
def diff(
    run_a: Annotated[str, typer.Argument(help=RUN_HELP, metavar="RUN_A")],
    run_b: Annotated[str, typer.Argument(help=RUN_HELP, metavar="RUN_B")],
    output: OutputOption = OutputFormat.table,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit with 1 when the graphs differ.")
    ] = False,
) -> None:
    """Where two runs' graphs differ: invocations only in one, another step under the same
    id, another cache key (code or inputs), other parents; and the parameters they were
    given differently."""
    from branchwork.cli.diff import describe, diff_runs, parameter_differences
    from branchwork.metadata.run_comparison import compared_invocations
    from branchwork.metadata.run_pages import find_run
    from branchwork.metadata.store import get_engine

    engine = get_engine()
    a, b = find_run(engine, run_a), find_run(engine, run_b)
    found = diff_runs(
        a.name, b.name, compared_invocations(engine, a), compared_invocations(engine, b)
    )
    found.parameters = parameter_differences(a.parameters, b.parameters)
    if output is OutputFormat.json:
        render.print_json(found.to_dict())
    elif found.same and not found.parameters:
        typer.echo(f"same graph: {found.run_a} and {found.run_b}")
    else:
        render.show_diff(found.run_a, found.run_b, describe(found))
    if exit_code and not found.same:
        raise typer.Exit(1)


@app.command("resume")
def resume(
    run: RunArgument,
    accept_new_graph: Annotated[
        bool,
        typer.Option(
            "--accept-new-graph",
            help="Run the new graph where an invocation no longer matches its record.",
        ),
    ] = False,
    stack: StackOption = None,
    progress: ProgressOption = True,
) -> None:
    """Finish a failed or stopped run as the same run: completed invocations are reused,
    failed and never-started ones run."""
    from branchwork.cli.run import run_and_report
    from branchwork.client import Client
    from branchwork.exceptions import PipelineRunFailedError, ReplayDivergenceError

    client = Client()
    record = client.get_pipeline_run(run, include_steps=False)
    _work_in_run_folder(record)
    try:
        run_and_report(
            lambda: client.resume_run(record.id, accept_new_graph),
            record.pipeline_name,
            stack=stack,
            progress=progress,
        )
    except PipelineRunFailedError as error:
        cause = error.__cause__
        if isinstance(cause, ReplayDivergenceError):
            raise BranchworkError(_cli_divergence(str(cause))) from error
        raise


@app.command("stop")
def stop(
    run: RunArgument,
    abandon: Annotated[
        bool,
        typer.Option("--abandon", help="Give up the running steps too, rather than wait."),
    ] = False,
) -> None:
    """Stop a running run, wherever its loop runs, as Ctrl-C where it was started would:
    nothing new starts, and it is recorded stopped once its running steps finish."""
    from branchwork.client import Client

    client = Client()
    record = client.get_pipeline_run(run, include_steps=False)
    client.stop_run(record.id, abandon)
    then = "giving up its running steps" if abandon else "once its running steps finish"
    typer.echo(
        f"Asked run '{record.name}' to stop: it starts no new step and is recorded stopped "
        f"{then}. `branchwork runs resume {record.name}` finishes it later."
    )


@app.command("answer")
def answer(
    run: RunArgument,
    value: Annotated[
        str,
        typer.Option(
            "--value",
            help='The answer: JSON when it parses as JSON (true, 3, {"ok": true}), else the '
            "text itself; checked against the question's schema.",
            show_default=False,
        ),
    ],
    stack: StackOption = None,
    progress: ProgressOption = True,
) -> None:
    """Answer the question a paused run waits on (branchwork.wait) and resume it: the body
    runs again, what finished is reused, and the wait returns the answer. A run paused with
    its child run takes the child's question; either run's answer resumes the parent."""
    from branchwork.cli.run import run_and_report
    from branchwork.client import Client
    from branchwork.metadata.store import get_engine
    from branchwork.metadata.waits import paused_root, waiting_run
    from branchwork.pipelines.answering import answer_from_text

    client, engine = Client(), get_engine()
    record = client.get_pipeline_run(run, include_steps=False)
    waits = client.get_run_waits(waiting_run(engine, record).id)
    answer_value = answer_from_text(value, waits[-1].schema if waits else None)
    root = paused_root(engine, record)
    _work_in_run_folder(root)
    run_and_report(
        lambda: client.answer_run(record.id, answer_value),
        root.pipeline_name,
        stack=stack,
        progress=progress,
    )


@app.command("replay")
def replay(
    run: RunArgument,
    skip_successful: Annotated[
        bool,
        typer.Option(
            "--skip-successful",
            help="Reuse what the run finished, by invocation id, except the overridden "
            "invocations and everything after them.",
        ),
    ] = False,
    override: Annotated[
        list[str] | None,
        typer.Option(
            "--override",
            metavar="STEP.ARG=VALUE",
            help="Replace an argument of every invocation of a step (or of one invocation, by "
            "id); repeatable. VALUE is JSON when it parses as JSON, else text.",
            show_default=False,
        ),
    ] = None,
    stack: StackOption = None,
    progress: ProgressOption = True,
) -> None:
    """Run a run's pipeline again as a new run, with its parameters and some step arguments
    overridden."""
    from branchwork.cli.run import run_and_report
    from branchwork.client import Client

    overrides = parse_overrides(override or [])
    client = Client()
    record = client.get_pipeline_run(run, include_steps=False)
    _work_in_run_folder(record)
    run_and_report(
        lambda: client.replay(record.id, skip_successful, overrides),
        record.pipeline_name,
        stack=stack,
        progress=progress,
    )


def parse_overrides(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """`STEP.ARG=VALUE` pairs by step (or invocation id), then argument."""
    from branchwork.pipelines.parameters import json_or_text

    overrides: dict[str, dict[str, Any]] = {}
    for key, text in split_pairs(pairs, "--override").items():
        target, _, argument = key.rpartition(".")
        if not target or not argument:
            raise typer.BadParameter(
                f"{key!r} is not STEP.ARG (e.g. train.lr=0.1).", param_hint="--override"
            )
        overrides.setdefault(target, {})[argument] = json_or_text(text)
    return overrides


def _replay_text(record: PipelineRunResponse) -> str | None:
    """`original-run (overrides train.lr=0.1; finished steps reused)` for `runs show`; a
    replay of a replay names the overrides it inherited too (`...; inherited evaluate.score=1`)."""
    if record.replay_of is None:
        return None
    from branchwork.metadata.run_pages import find_run
    from branchwork.metadata.store import get_engine
    from branchwork.pipelines.replay import plan_of

    try:
        original = find_run(get_engine(), record.replay_of).name
    except BranchworkError:
        original = f"{record.replay_of} (deleted)"
    plan = plan_of(record)
    if plan is None:
        return original
    overridden = plan.overrides.describe()
    inherited = ", ".join(filter(None, (layer.describe() for layer in plan.inherited)))
    details = [f"overrides {overridden}"] if overridden else []
    if inherited:
        details.append(f"inherited {inherited}")
    if plan.skip_successful:
        details.append("finished steps reused")
    return f"{original} ({'; '.join(details)})" if details else original


@app.command("reap")
def reap() -> None:
    """Record FAILED the runs whose orchestration was lost (running, but their loop stopped
    heartbeating), and their attempts in flight. Readers already show them so; the next run
    and a resume record them too."""
    from branchwork.metadata.lost import reap_lost_runs
    from branchwork.metadata.store import get_engine, write_transaction

    with write_transaction(get_engine()) as conn:
        count = reap_lost_runs(conn)
    typer.echo(f"Recorded {count} lost run{'' if count == 1 else 's'} as failed.")


@app.command("delete")
def delete(
    run: RunArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    purge_artifacts: Annotated[
        bool,
        typer.Option(
            "--purge-artifacts",
            help="Also remove the files of the artifact versions deleted with the run.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even a run that is still marked running.")
    ] = False,
) -> None:
    """Delete a run's records. Artifact versions other runs use (e.g. through the cache) stay;
    artifact files stay unless --purge-artifacts."""
    from branchwork.client import Client
    from branchwork.metadata.queries import step_run_count
    from branchwork.metadata.run_deletion import delete_run, purge_files
    from branchwork.metadata.store import get_engine

    record = Client().get_pipeline_run(run, include_steps=False)
    engine = get_engine()
    if not yes:
        count = step_run_count(engine, record.id)
        typer.confirm(f"Delete run '{record.name}' ({count} step runs)?", abort=True)
    deleted = delete_run(engine, record.id, force=force)
    typer.echo(
        f"Deleted run '{deleted.run_name}': {deleted.step_runs} step runs, "
        f"{len(deleted.deleted_versions)} artifact versions."
    )
    if deleted.kept_versions:
        typer.echo(
            f"Kept {len(deleted.kept_versions)} artifact versions it produced that other runs use."
        )
    if deleted.child_runs:
        typer.echo(
            f"Its {deleted.child_runs} child runs stay (`branchwork runs delete` each to remove "
            "them too)."
        )
    if purge_artifacts:
        removed, failed = purge_files(engine, deleted.deleted_versions)
        typer.echo(f"Removed {len(removed)} artifact folders.")
        if failed:  # their records are gone: say every one, to remove by hand
            for uri, reason in failed:
                typer.echo(f"  not removed: {uri} ({reason})", err=True)
            raise ArtifactError(
                f"Could not remove {len(failed)} artifact folders (listed above); their "
                "records are deleted: remove them by hand."
            )
    elif deleted.deleted_versions:
        typer.echo("Artifact files were left in place (--purge-artifacts removes them).")


def _work_in_run_folder(run: PipelineRunResponse) -> None:
    """Carry on from the folder the run was started in, where it still exists, as the
    dashboard's resume and a local_process run do: the body and steps run again in this
    process, and a relative path they read (`FileInput("data.csv")`) was looked for where
    the command was typed. The home stays the one this command found."""
    import os

    from sqlalchemy import make_url

    from branchwork.config.home import home_dir, store_url

    folder = run.snapshot.working_dir
    if folder and os.path.isdir(folder):
        url = make_url(store_url())  # a relative SQLite path is this folder's
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            url = url.set(database=os.path.abspath(url.database))
            os.environ["BRANCHWORK_STORE_URL"] = url.render_as_string(hide_password=False)
        os.environ["BRANCHWORK_HOME"] = str(home_dir())  # resolved, as the home found here
        os.chdir(folder)


def _cli_divergence(message: str) -> str:
    """The divergence message with its Python advice (accept_new_graph=True) replaced by the
    command's flag."""
    import re

    first_line = message.strip().splitlines()[0] if message.strip() else message
    sentences = re.split(r"(?<=\.)\s+", first_line)
    kept = [s for s in sentences if "accept_new_graph" not in s]
    return " ".join(kept + ["Resume with --accept-new-graph to run the new graph instead."])
