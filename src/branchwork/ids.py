"""Unique ids for rows and artifact folders: a random per-process prefix plus a counter.

Unique across processes and machines, and far cheaper than uuid4 (one urandom call each) on
paths that make several ids per step. The prefix is drawn again in a forked child.

An id is 20 characters of lowercase base32 (digits, then a-v): 60 random bits, then a counter
of 40 bits, both fixed width, so a process's ids sort in the order they were made and are
safe as folder names on case-insensitive file systems. A step's ids are repeated in its rows,
links and their indexes (about 30 times): 20 characters instead of 32 hex keep the store
about 13 % smaller. Ids of older stores (32 hex characters) stay valid beside them.
"""

from __future__ import annotations

import itertools
import os
import secrets

_DIGITS = "0123456789abcdefghijklmnopqrstuv"
_PREFIX_CHARS, _COUNTER_CHARS = 12, 8


def _base32(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 32)
        digits.append(_DIGITS[digit])
    return "".join(reversed(digits))


_PAIRS = [a + b for a in _DIGITS for b in _DIGITS]  # the counter's last two digits


class _Ids:
    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = _base32(secrets.randbits(5 * _PREFIX_CHARS), _PREFIX_CHARS)
        self._counter = itertools.count()
        self._head: tuple[int, str] = (-1, "")  # (counter // 1024, the id's text before _PAIRS)

    def __call__(self) -> str:
        high, low = divmod(next(self._counter), len(_PAIRS))
        head = self._head  # one read: other threads may replace it
        if head[0] != high:
            head = self._head = (high, self._prefix + _base32(high, _COUNTER_CHARS - 2))
        return head[1] + _PAIRS[low]


new_id = _Ids()
