"""Entrypoint of an orchestration process: `python -m branchwork.orchestrators.pipeline_runner`.

The seed page's module name (`zenml.orchestrators.pipeline_runner` there), kept for every
image and command that launches it, and the Ray loop task (`ray_loop`) runs it too. What
the process does lives in `branchwork.pipelines.orchestration_process`, whose docstring says
why: it loads the pipeline and rebuilds the stack, above the orchestrators.
"""

from __future__ import annotations

import sys

from branchwork.pipelines.orchestration_process import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
