"""Entrypoint of an isolated step: `python -m branchwork.orchestrators.step_runner`.

Reads one step request envelope (JSON) from stdin, runs the step, and writes the result
envelope to stdout. It needs the artifact store, never the metadata store. The step's own
prints go to stderr so that stdout carries only the envelope.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    envelope_out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # user prints must not corrupt stdout
    from branchwork.runtime.envelopes import request_from_json, result_to_json
    from branchwork.runtime.step_execution import execute_step

    request = request_from_json(sys.stdin.read())
    result = execute_step(request)
    envelope_out.write(result_to_json(result))
    envelope_out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
