"""Entrypoint of an isolated step: `python -m branchwork.orchestrators.step_runner`.

Reads one step request envelope (JSON) from stdin, runs the step, and writes the result
envelope to stdout; the step's own prints go to stderr. It needs the artifact store, never
the metadata store. (The process launcher's fast path, a zygote that forks a child per
request, is `python -m branchwork.runtime.zygote`.)
"""

from __future__ import annotations

import os
import sys

from branchwork.runtime.envelopes import run_envelope

__all__ = ["main", "run_envelope"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        print(
            "usage: python -m branchwork.orchestrators.step_runner < request.json",
            file=sys.stderr,
        )
        return 2
    envelope_out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # user prints must not corrupt stdout
    envelope_out.write(run_envelope(sys.stdin.read()))
    envelope_out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
