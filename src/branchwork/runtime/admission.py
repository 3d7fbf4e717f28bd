"""Admission: which ready step starts next, and what it holds while it runs (part of the
pure engine: no I/O, no clock, no threads).

A step starts once everything it needs is free:
- a worker (one of the launcher's `max_workers` threads or processes), unless it awaits on
  the launcher's event loop: an `async def` step run inline waits on I/O without a thread,
  so thousands of them can run at once;
- its resources, first-come first-served against the capacity; a step asking for more than
  the whole capacity waits until nothing else holds resources, then runs alone;
- a slot of every concurrency limit it counts against: its step's `max_concurrency=`, or a
  named limit several steps share (`concurrency_limit=`, sized by the run).

Ready steps wait in three FIFO queues — those that need a worker, those that await, those
with resources — and the oldest admissible head goes first. A step whose limit is full is
parked on that limit, so that it holds up no one else, and goes back to its queue when a
slot frees. Slots are taken when a step is admitted and given back when it ends, so never
more steps than a limit allows run at once.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import NamedTuple

from branchwork.runtime.events import Request


def _add(a: Request, b: Request, sign: int = 1) -> Request:
    return Request(a.cpu + sign * b.cpu, a.memory + sign * b.memory, a.gpu + sign * b.gpu)


class Ticket(NamedTuple):
    """What one ready step needs to start."""

    seq: int  # discovery order: the older step goes first
    request: Request
    oversized: bool  # it asks for more than the whole capacity
    holds_worker: bool
    limits: tuple[tuple[str, int], ...] = ()  # (limit, how many may run at once)


class Admission:
    """See the module docstring. `is_ready(invocation_id)` tells whether a queued step
    still waits to start (the engine may have given it up meanwhile)."""

    def __init__(self, capacity: Request, max_workers: int, is_ready: Callable[[str], bool]):
        self.capacity = capacity
        self.max_workers = max_workers
        self.free = capacity
        self.running = 0
        self._is_ready = is_ready
        self._workers = 0
        self._resourced_running = 0
        self._exclusive = False  # an oversized step runs
        self._plain: deque[str] = deque()
        self._awaited: deque[str] = deque()
        self._resourced: deque[str] = deque()
        self._tickets: dict[str, Ticket] = {}  # of queued, parked and running steps
        self._in_limit: Counter[str] = Counter()  # running steps per limit
        self._parked: dict[str, deque[str]] = {}  # per limit, steps waiting for a slot

    def enter(self, invocation_id: str, ticket: Ticket) -> None:
        """The step is ready to start."""
        self._tickets[invocation_id] = ticket
        self._queue_of(ticket).append(invocation_id)

    def next(self) -> str | None:
        """The next step to start, with its worker, resources and limit slots taken; None
        when no ready step can start now."""
        while True:
            queue = self._oldest_admissible()
            if queue is None:
                return None
            invocation_id = queue.popleft()
            ticket = self._tickets[invocation_id]
            full = next(
                (name for name, size in ticket.limits if self._in_limit[name] >= size), None
            )
            if full is None:
                self._take(ticket)
                return invocation_id
            self._parked.setdefault(full, deque()).append(invocation_id)

    def release(self, invocation_id: str) -> None:
        """The step stopped running: give back what it held; a step parked on one of its
        limits goes back to its queue."""
        ticket = self._tickets.pop(invocation_id)
        self.running -= 1
        self._workers -= ticket.holds_worker
        for name, _ in ticket.limits:
            self._in_limit[name] -= 1
            self._unpark(name)
        if not ticket.request:
            return
        self._resourced_running -= 1
        if ticket.oversized:
            self._exclusive = False
        # Reset rather than add back when nothing holds resources: no float drift.
        self.free = (
            self.capacity if self._resourced_running == 0 else _add(self.free, ticket.request)
        )

    def _queue_of(self, ticket: Ticket) -> deque[str]:
        if ticket.request:
            return self._resourced
        return self._plain if ticket.holds_worker else self._awaited

    def _unpark(self, limit: str) -> None:
        parked = self._parked.get(limit)
        while parked:
            invocation_id = parked.popleft()
            if self._is_ready(invocation_id):
                self._queue_of(self._tickets[invocation_id]).append(invocation_id)
                return
            del self._tickets[invocation_id]

    def _oldest_admissible(self) -> deque[str] | None:
        for queue in (self._plain, self._awaited, self._resourced):
            while queue and not self._is_ready(queue[0]):
                del self._tickets[queue.popleft()]
        candidates = [queue for queue in (self._plain, self._awaited, self._resourced) if queue]
        admissible = [queue for queue in candidates if self._admissible(self._tickets[queue[0]])]
        return min(admissible, key=lambda queue: self._tickets[queue[0]].seq, default=None)

    def _admissible(self, ticket: Ticket) -> bool:
        if ticket.holds_worker and self._workers >= self.max_workers:
            return False
        if not ticket.request:
            return True
        if self._exclusive:
            return False
        if ticket.oversized:
            return self._resourced_running == 0
        return ticket.request.fits(self.free)

    def _take(self, ticket: Ticket) -> None:
        self.running += 1
        self._workers += ticket.holds_worker
        for name, _ in ticket.limits:
            self._in_limit[name] += 1
        if not ticket.request:
            return
        self._resourced_running += 1
        if ticket.oversized:
            self._exclusive = True
            self.free = Request(0.0, 0, 0.0)
        else:
            self.free = _add(self.free, ticket.request, -1)
