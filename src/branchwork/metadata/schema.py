"""The metadata store's tables, as SQLAlchemy Core (no ORM: the recorder writes in bulk).

Ids are made by the writer (`branchwork.ids`), so a batch of related rows (a step run, its
configuration, its artifacts and links) can be inserted in one transaction without
round-trips. Rows whose identity is a name (`pipeline`, `artifact`) get a uuid5 of that name,
so concurrent writers converge on one row with INSERT ... ON CONFLICT DO NOTHING.

A pipeline snapshot carries `is_dynamic`. Step configurations link either to the snapshot
(static: every step known before the run) or to the step run (dynamic: discovered while
running); a CHECK keeps exactly one of the two set.

Deleting a run relies on the ON DELETE CASCADE foreign keys, so every column that refers to a
step run or an artifact version is indexed: a cascade (or the check that nothing refers to a
deleted row) then looks rows up instead of scanning the table once per deleted row.

A run of a million step runs is read grouped (`run_pages`, `run_groups`), from indexes on
`step_run` that answer each figure without reading the rows: later attempts (run, attempt),
counts by state and duration percentiles (run, status, step name, seconds), and when a step
first started and last ended (run, step name, start / end time). See `seconds`. The edges
between its step names are rows of their own (`step_edge`), a few per run, and a big run's
figures per step name are kept in one row when it ends (`run_summary`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from branchwork.metadata.seconds import seconds_between

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(32)
STATUS = String(16)


def _id() -> Column[str]:
    return Column("id", ID, primary_key=True)


pipeline = Table(
    "pipeline",
    metadata,
    _id(),
    Column("name", String(255), nullable=False, unique=True),
    Column("created", DateTime, nullable=False),
)

pipeline_snapshot = Table(
    "pipeline_snapshot",
    metadata,
    _id(),
    Column("pipeline_id", ID, ForeignKey("pipeline.id", ondelete="CASCADE"), nullable=False),
    Column("is_dynamic", Boolean, nullable=False),
    Column("source", Text, nullable=False),
    Column("source_file", Text, nullable=True),
    Column("parameters", Text, nullable=False),
    Column("spec", Text, nullable=False),
    Column("created", DateTime, nullable=False),
    Column("import_path", Text, nullable=True),  # JSON: folders to put on sys.path
    Column("working_dir", Text, nullable=True),
    Column("argv", Text, nullable=True),  # JSON: the script's command-line arguments
    Index(None, "pipeline_id"),
)

pipeline_run = Table(
    "pipeline_run",
    metadata,
    _id(),
    Column("name", String(255), nullable=False, unique=True),
    Column("pipeline_id", ID, ForeignKey("pipeline.id", ondelete="CASCADE"), nullable=False),
    Column(
        "snapshot_id", ID, ForeignKey("pipeline_snapshot.id", ondelete="CASCADE"), nullable=False
    ),
    Column("status", STATUS, nullable=False),
    Column("orchestrator", String(64), nullable=False),
    Column("orchestrator_run_id", String(255), nullable=True),
    Column("parameters", Text, nullable=False),
    Column("created", DateTime, nullable=False),
    Column("start_time", DateTime, nullable=True),
    Column("end_time", DateTime, nullable=True),
    Column("heartbeat", Float, nullable=True),
    Column("heartbeat_seconds", Float, nullable=True),  # its loop's interval (`lost`)
    Column("failed_step", String(255), nullable=True),
    Column("exception_type", String(255), nullable=True),
    Column("exception_message", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    Column("output_structure", Text, nullable=True),
    Column("stop_requested", STATUS, nullable=True),  # "graceful" | "abandon"
    Column("exception_data", Text, nullable=True),  # JSON: how to rebuild the exception
    Column("hook_errors", Text, nullable=True),  # JSON: what its pipeline's hooks raised
    # The run this one replays (`Client().replay`). No foreign key: SQLite adds the column
    # in place (migration 0008), and a replay outlives the deletion of its original.
    Column("replay_of", ID, nullable=True),
    Column("stack", String(255), nullable=True),  # the stack that started it; NULL: before 0009
    # Seconds it was running in the sessions before its latest (a resume folds the session
    # that ended into it); NULL: no earlier session. See PipelineRunResponse.duration_seconds.
    Column("earlier_sessions_seconds", Float, nullable=True),
    # A child run (a pipeline called in a running pipeline): its parent run, and the parent's
    # invocation that called it. No foreign key, as for replay_of (added in place: 0011).
    Column("parent_run_id", ID, nullable=True),
    Column("parent_invocation_id", String(255), nullable=True),
    Index(None, "pipeline_id", "created"),
    Index(None, "parent_run_id"),
)

run_wait = Table(  # a question a run asked with `branchwork.wait`, and its answer
    "run_wait",
    metadata,
    Column("run_id", ID, ForeignKey("pipeline_run.id", ondelete="CASCADE"), primary_key=True),
    Column("wait_id", String(255), primary_key=True),
    Column("position", Integer, nullable=False),  # 1, 2, ... in the order first asked
    Column("question", Text, nullable=False),
    Column("answer_schema", Text, nullable=True),  # JSON schema; NULL: any JSON value
    Column("timeout", Float, nullable=True),  # seconds from `asked`
    Column("default_value", Text, nullable=True),  # JSON; NULL: no default
    Column("asked", DateTime, nullable=False),
    Column("answer", Text, nullable=True),  # JSON; NULL until answered
    Column("answered", DateTime, nullable=True),
    Column("answered_by", STATUS, nullable=True),  # "answer" | "default"
)

step_run = Table(
    "step_run",
    metadata,
    _id(),
    Column("run_id", ID, ForeignKey("pipeline_run.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("step_name", String(255), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", STATUS, nullable=False),
    Column("start_time", DateTime, nullable=True),
    Column("end_time", DateTime, nullable=True),
    Column("cache_key", String(64), nullable=True),
    Column("code_hash", String(64), nullable=False),
    Column("original_step_run_id", ID, nullable=True),
    Column("exception_type", String(255), nullable=True),
    Column("exception_message", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    Column("run_metadata", Text, nullable=True),
    Column("cache_parts", Text, nullable=True),  # JSON: graph.cache_key.KeyParts
    Column("cache_verdict", STATUS, nullable=True),  # graph.cache_reasons: hit, miss, off...
    Column("cache_reason", Text, nullable=True),
    Column("cache_invalidated", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("run_id", "name", "attempt"),
    Index(None, "cache_key", "status"),
    Index(None, "run_id", "attempt"),  # a run's later attempts: attempt > 1
    Index(None, "run_id", "step_name", "start_time"),
    Index(None, "run_id", "step_name", "end_time"),
)
Index(
    "ix_step_run_run_id_status_step_name_seconds",
    step_run.c.run_id,
    step_run.c.status,
    step_run.c.step_name,
    seconds_between(step_run.c.start_time, step_run.c.end_time),
)

step_configuration = Table(
    "step_configuration",
    metadata,
    _id(),
    Column("name", String(255), nullable=False),
    Column("step_name", String(255), nullable=False),
    Column("config", Text, nullable=False),
    Column(
        "snapshot_id", ID, ForeignKey("pipeline_snapshot.id", ondelete="CASCADE"), nullable=True
    ),
    Column("step_run_id", ID, ForeignKey("step_run.id", ondelete="CASCADE"), nullable=True),
    CheckConstraint("(snapshot_id IS NULL) <> (step_run_id IS NULL)", name="snapshot_xor_step_run"),
    Index(None, "snapshot_id"),
    Index(None, "step_run_id"),
)

artifact = Table(
    "artifact",
    metadata,
    _id(),
    Column("name", String(255), nullable=False, unique=True),
    Column("created", DateTime, nullable=False),
    # Versions ever numbered (the last number given): see `recorder`. Never decreases, so a
    # deleted version's number is not given again.
    Column("version_count", Integer, nullable=False, server_default="0"),
)

artifact_version = Table(
    "artifact_version",
    metadata,
    _id(),
    Column("artifact_id", ID, ForeignKey("artifact.id", ondelete="CASCADE"), nullable=False),
    Column("uri", Text, nullable=False),
    Column("data_type", String(255), nullable=False),
    Column("materializer", String(255), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("producer_step_run_id", ID, nullable=True),
    Column("created", DateTime, nullable=False),
    # 1, 2, 3 ... per artifact. The default only lets SQLite add the column in place (see
    # migration 0006); the recorder always numbers a version.
    Column("version", Integer, nullable=False, server_default="0"),
    Column("preview", Text, nullable=True),  # JSON: materializers.preview
    # Items of a list, array or table value (what `step.map` fans out over); else NULL.
    Column("item_count", BigInteger, nullable=True),
    # The one small file of a value kept in the row, not the artifact store (URI
    # `inline://<content hash>/<file name>`, see materializers.inline); else NULL.
    Column("inline_data", LargeBinary, nullable=True),
    # A unique index, not a constraint: SQLite adds one without rebuilding the table. It
    # also serves lookups by artifact_id alone.
    Index(None, "artifact_id", "version", unique=True),
)

artifact_version_tag = Table(
    "artifact_version_tag",
    metadata,
    Column(
        "artifact_version_id",
        ID,
        ForeignKey("artifact_version.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag", String(255), primary_key=True),
    Index(None, "tag"),
)

artifact_version_metadata = Table(  # what a step logged with `log_artifact_metadata`
    "artifact_version_metadata",
    metadata,
    Column(
        "artifact_version_id",
        ID,
        ForeignKey("artifact_version.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
    Index(None, "key"),
)

step_run_input_artifact = Table(
    "step_run_input_artifact",
    metadata,
    Column("step_run_id", ID, ForeignKey("step_run.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column(
        "artifact_version_id",
        ID,
        ForeignKey("artifact_version.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Index(None, "artifact_version_id"),
)

step_run_output_artifact = Table(
    "step_run_output_artifact",
    metadata,
    Column("step_run_id", ID, ForeignKey("step_run.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column(
        "artifact_version_id",
        ID,
        ForeignKey("artifact_version.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Index(None, "artifact_version_id"),
)

step_run_parent = Table(
    "step_run_parent",
    metadata,
    Column("child_id", ID, ForeignKey("step_run.id", ondelete="CASCADE"), primary_key=True),
    Column("parent_id", ID, ForeignKey("step_run.id", ondelete="CASCADE"), primary_key=True),
    Index(None, "parent_id"),
)

# The edges between a run's step names that its graph draws (`run_groups.group_edges`):
# (parent's step name, child's, "data") for a recorded parent link, (read step's, reader's,
# "value") for a value a dynamic body read before the call. The recorder writes each once per
# run as it first appears, so a run of a million step runs reads its few edges by run id.
step_edge = Table(
    "step_edge",
    metadata,
    Column("run_id", ID, ForeignKey("pipeline_run.id", ondelete="CASCADE"), primary_key=True),
    Column("from_name", String(255), primary_key=True),
    Column("to_name", String(255), primary_key=True),
    Column("kind", STATUS, primary_key=True),  # "data" | "value"
)

# A finished run's figures per step name (`run_figures`), kept when a big run ends so that
# reading them is one row rather than a walk of its step runs' indexes. `status` and
# `end_time` are the run's as summarized: a run that has changed since (resumed, ended again)
# no longer matches them, and is read from its step runs.
run_summary = Table(
    "run_summary",
    metadata,
    Column("run_id", ID, ForeignKey("pipeline_run.id", ondelete="CASCADE"), primary_key=True),
    Column("status", STATUS, nullable=False),
    Column("end_time", DateTime, nullable=False),
    Column("figures", Text, nullable=False),
)

pipeline_run_output = Table(
    "pipeline_run_output",
    metadata,
    Column("run_id", ID, ForeignKey("pipeline_run.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column(
        "artifact_version_id",
        ID,
        ForeignKey("artifact_version.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Index(None, "artifact_version_id"),
)

# What a step run printed and logged, with the run it belongs to: a run's few logs are found
# by run id, not by walking its step runs and looking each up here (a million of them).
step_log = Table(
    "step_log",
    metadata,
    Column("step_run_id", ID, ForeignKey("step_run.id", ondelete="CASCADE"), primary_key=True),
    Column("text", Text, nullable=False),
    Column("run_id", ID),  # the step run's; every writer sets it (null only before 0016)
    Index(None, "run_id"),
)

stack_component = Table(
    "stack_component",
    metadata,
    _id(),
    Column("name", String(255), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("flavor", String(64), nullable=False),
    Column("config", Text, nullable=False),
    Column("created", DateTime, nullable=False),
    UniqueConstraint("kind", "name"),
)

stack = Table(
    "stack",
    metadata,
    _id(),
    Column("name", String(255), nullable=False, unique=True),
    Column(
        "orchestrator_id",
        ID,
        ForeignKey("stack_component.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column(
        "artifact_store_id",
        ID,
        ForeignKey("stack_component.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("created", DateTime, nullable=False),
)

code_fingerprint = Table(  # what a code digest is made of, for cache reasons (graph.code_hash)
    "code_fingerprint",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("parts", Text, nullable=False),
)

setting = Table(
    "setting",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
