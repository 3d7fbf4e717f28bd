"""The code and module-level values a pipeline reaches, as the process that submits a run
sees them, compared in the process that runs its loop (local_process, a container job).

That process imports the script afresh: a global the script set at run time (a sweep's
`FACTOR = v` before each call) is not seen there, and the run would silently use the value
the module defines. It warns, naming what differs. A pipeline defined in a notebook travels
by value, with what it reaches: nothing to compare.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from branchwork.graph.code_hash import changed_parts, fingerprint
from branchwork.user_code import defined_interactively

if TYPE_CHECKING:
    from branchwork.pipelines.pipeline import Pipeline

logger = logging.getLogger("branchwork")

CODE_SEEN_ENV = "BRANCHWORK_CODE_SEEN"
MAX_NAMED = 16_000  # bytes of parts carried to name what differs (an environment is small)


def code_seen(pipeline: Pipeline[Any, Any]) -> dict[str, str]:
    """The environment that carries what the submitting process sees of the pipeline's code:
    its digest, and its parts when they are few enough to carry."""
    if defined_interactively(pipeline.func):
        return {}
    found = fingerprint(pipeline.func)
    parts = json.dumps(found.parts)
    seen = {"digest": found.digest, "parts": found.parts if len(parts) <= MAX_NAMED else None}
    return {CODE_SEEN_ENV: json.dumps(seen)}


def warn_if_code_differs(pipeline: Pipeline[Any, Any], environment: Mapping[str, str]) -> None:
    """Warn when this process sees the pipeline's code or values otherwise than the
    process that submitted the run did (`code_seen`)."""
    seen = environment.get(CODE_SEEN_ENV)
    if not seen:
        return
    submitted, here = json.loads(seen), fingerprint(pipeline.func)
    if submitted["digest"] == here.digest:
        return
    theirs = submitted["parts"]
    differ = (
        ", ".join(changed_parts(here.parts, theirs))
        if theirs is not None
        else "its code or values (too many parts to name)"
    )
    logger.warning(
        "Pipeline '%s' runs in an orchestration process of its own, which imports its "
        "code afresh and sees other code or values there than the process that started "
        "the run: %s (a global set at run time is not seen there). The run uses the "
        "values its modules define: pass such a value as a pipeline parameter.",
        pipeline.name,
        differ,
    )
