"""Unique ids for rows and artifact folders: a random per-process prefix plus a counter.

Unique across processes and machines, and far cheaper than uuid4 (one urandom call each) on
paths that make several ids per step. The prefix is drawn again in a forked child.
"""

from __future__ import annotations

import itertools
import os
import secrets


class _Ids:
    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = secrets.token_hex(10)
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):012x}"


new_id = _Ids()
