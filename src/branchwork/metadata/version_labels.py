"""The tags and logged metadata of artifact versions, read for many versions in one query.

They live in tables of their own (`artifact_version_tag`, `artifact_version_metadata`);
most versions have neither, so these queries return few rows.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, NamedTuple

from sqlalchemy import Connection, literal, null, select, union, union_all
from sqlalchemy.sql import Select

from branchwork.metadata import schema as s


class Labels(NamedTuple):
    """An artifact version's tags and logged metadata."""

    tags: tuple[str, ...]
    metadata: dict[str, Any]


NO_LABELS = Labels((), {})  # shared: `queries._version` copies the metadata it hands out


def labels_of(conn: Connection, version_ids: Select[Any]) -> dict[str, Labels]:
    """Tags and metadata of the versions `version_ids` selects, in one query; versions
    with neither are absent."""
    tag, meta = s.artifact_version_tag, s.artifact_version_metadata
    rows = conn.execute(
        union_all(
            select(
                tag.c.artifact_version_id, literal(True).label("is_tag"), tag.c.tag, null()
            ).where(tag.c.artifact_version_id.in_(version_ids)),
            select(meta.c.artifact_version_id, literal(False), meta.c.key, meta.c.value).where(
                meta.c.artifact_version_id.in_(version_ids)
            ),
        )
    ).all()
    tags: dict[str, list[str]] = defaultdict(list)
    metadata: dict[str, dict[str, Any]] = defaultdict(dict)
    for version_id, is_tag, key, value in rows:
        if is_tag:
            tags[version_id].append(key)
        else:
            metadata[version_id][key] = json.loads(value)
    return {
        version_id: Labels(tuple(sorted(tags.get(version_id, ()))), metadata.get(version_id, {}))
        for version_id in tags.keys() | metadata.keys()
    }


def run_labels(conn: Connection, run_id: str, include_steps: bool) -> dict[str, Labels]:
    """Labels of the versions a run links: its outputs and (if asked) its steps' inputs
    and outputs."""
    steps = select(s.step_run.c.id).where(s.step_run.c.run_id == run_id)
    step_links = (
        select(table.c.artifact_version_id).where(table.c.step_run_id.in_(steps))
        for table in (s.step_run_output_artifact, s.step_run_input_artifact)
    )
    linked = union(
        select(s.pipeline_run_output.c.artifact_version_id).where(
            s.pipeline_run_output.c.run_id == run_id
        ),
        *(step_links if include_steps else ()),
    ).subquery()
    return labels_of(conn, select(linked.c.artifact_version_id))
