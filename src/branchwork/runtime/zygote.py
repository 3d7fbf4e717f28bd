"""A warm process that forks one child per isolated step: `python -m branchwork.runtime.zygote`.

Starting Python and importing branchwork costs a few hundred milliseconds; forking a process
that has already done so costs a few, and those few are spent ahead: the zygote keeps one
spare child forked, waiting on a pipe of its own for the next request, and forks the next
spare while that step runs. It imports only what running a step needs (not the metadata
store: a smaller process forks faster), and after handing a request over it does once per
step what its later children would otherwise each do again (`_Zygote._warm`).

Messages are lines (a JSON envelope never holds a raw newline): on stdin, `<id> <request
envelope>`; on stdout, from the zygote, `<id> pid <pid>` before a child gets the request and
`<id> exit <code>` when it has exited; from the child itself, what its step prints and logs
as it goes (`<id> log <JSON text>`: the loop keeps it for a child that dies without a result)
and its result envelope, in lines of at most PIPE_BUF bytes (`<id> more <part>`...,
`<id> result <last part>`), which a pipe never mixes with other writers' lines. The result
so reaches the loop without waking the zygote, and before the child has exited (a
process's exit, unmapping its memory, takes milliseconds the result need not wait for); an
`exit` after a result means nothing. The zygote is single-threaded (forking is only safe
there), waits with `selectors`, and every child dies with it (PR_SET_PDEATHSIG), as it dies
with the loop.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import select
import selectors
import signal
import sys
from dataclasses import dataclass
from typing import Any


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent (thread) dies."""
    libc = _libc() if sys.platform == "linux" else None
    if libc is not None:
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _send(request_id: bytes, kind: bytes, body: bytes) -> None:
    _write_all(1, b"%s %s %s\n" % (request_id, kind, body))


def _child(request_fd: int, life_fd: int, steps: dict[str, Any]) -> None:  # pragma: no cover
    """A spare: wait for a request, run it, send the result, exit. (The write end of its
    life pipe, `life_fd`, left open, tells the zygote when it has exited.) A process the
    step forks (a multiprocessing pool, a daemon) closes its copies of the life pipe and of
    the channel to the loop: holding them, it kept the run waiting until it exited."""
    from branchwork.runtime.envelopes import request_from_json, run_envelope
    from branchwork.runtime.step_logs import mirror_step_logs

    code = 0
    try:
        die_with_parent()
        line = _read_line(request_fd)
        if line:  # none: the zygote is ending
            request_id, _, envelope = line.partition(b" ")
            loop = os.dup(1)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(2, 1)  # the step's prints go to stderr; stdout is the zygote's channel
            os.register_at_fork(
                after_in_child=functools.partial(_close_in_child_of, os.getpid(), loop, life_fd)
            )
            mirror_step_logs(functools.partial(_send_log, loop, request_id, os.getpid()))
            request = request_from_json(envelope.decode(), steps)
            _send_result(loop, request_id, run_envelope(request).encode())
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _close_in_child_of(step_pid: int, *fds: int) -> None:  # pragma: no cover - forked
    """Close `fds` in a process the step forked; not in the processes that one forks in
    turn (the hook is inherited), where the same numbers may be files of their own."""
    if os.getppid() != step_pid:
        return
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _read_line(fd: int) -> bytes:
    """What `fd` holds up to its first newline (b"" if it closes before one)."""
    chunks: list[bytes] = []
    while not (chunks and chunks[-1].endswith(b"\n")):
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b""
        chunks.append(chunk)
    return b"".join(chunks)[:-1]


_LOG_CHARACTERS = 256  # of text in a `log` line: JSON writes a character in 12 bytes at most


def _send_log(fd: int, request_id: bytes, step_pid: int, text: str) -> None:
    """Text the step printed or logged, in `log` lines of at most PIPE_BUF bytes; from the
    step's process only (one it forked closed `fd`, whose number may be another file there)."""
    if os.getpid() != step_pid:
        return
    with contextlib.suppress(OSError):  # the loop is gone: the step goes on, as it would
        for start in range(0, len(text), _LOG_CHARACTERS):
            piece = json.dumps(text[start : start + _LOG_CHARACTERS]).encode()
            _write_all(fd, b"%s log %s\n" % (request_id, piece))


def _send_result(fd: int, request_id: bytes, envelope: bytes) -> None:
    """The result in lines of at most PIPE_BUF bytes, one write each: a pipe keeps such a
    write whole, whoever else writes to it (other children, the zygote)."""
    size = select.PIPE_BUF - len(b"%s result \n" % request_id)
    *parts, last = [envelope[i : i + size] for i in range(0, len(envelope), size)] or [b""]
    for part in parts:
        os.write(fd, b"%s more %s\n" % (request_id, part))
    os.write(fd, b"%s result %s\n" % (request_id, last))


@dataclass
class _Child:
    pid: int
    request_fd: int  # where the zygote writes its request; -1 once written
    request_id: bytes | None = None  # None: a spare, still waiting for a request


class _Zygote:
    """Keeps one spare child forked ahead, waiting for the next request: the fork is then
    made while a step runs, not between a request and its step."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, _Child] = {}  # by the read end of its life pipe
        self.spare: _Child | None = None
        self.pending = b""
        self.accepting = True
        self.steps: dict[str, Any] = {}  # the steps `_warm` decoded, by their pickle

    def serve(self) -> None:
        self.selector.register(0, selectors.EVENT_READ, None)
        self.spare = self._fork()
        while self.accepting or self.children:
            for key, _ in self.selector.select():
                if key.data is None:
                    self._read_requests()
                else:
                    self._reap(key.data)

    def _fork(self) -> _Child:
        gc.freeze()  # the child's collector then leaves inherited pages unshared
        request_read, request_write = os.pipe()
        life_read, life_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(request_write)
            os.close(life_read)
            _child(request_read, life_write, self.steps)
        os.close(request_read)
        os.close(life_write)
        child = self.children[life_read] = _Child(pid, request_write)
        self.selector.register(life_read, selectors.EVENT_READ, life_read)
        return child

    def _read_requests(self) -> None:
        data = os.read(0, 1 << 16)
        if not data:
            self.accepting = False
            self.selector.unregister(0)
            if self.spare is not None:
                os.close(self.spare.request_fd)  # the spare reads the end and exits
                self.spare = None
            return
        self.pending += data
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            self._start(line)

    def _start(self, line: bytes) -> None:
        """Hand `<id> <envelope>` to the spare (a new one if it was killed while it
        waited), then warm up and fork the next spare while the step runs."""
        request_id, _, envelope = line.partition(b" ")
        child, self.spare = self.spare or self._fork(), None
        _send(request_id, b"pid", b"%d" % child.pid)
        try:
            _write_all(child.request_fd, line + b"\n")
        except BrokenPipeError:
            os.close(child.request_fd)
            child = self._fork()
            _send(request_id, b"pid", b"%d" % child.pid)
            _write_all(child.request_fd, line + b"\n")
        os.close(child.request_fd)
        child.request_fd, child.request_id = -1, request_id
        self._warm(envelope.decode())
        self.spare = self._fork()

    def _warm(self, envelope: str) -> None:
        """Do here, once per step, what its later children would otherwise each do again:
        unpickle the step (kept for them), importing its modules, fingerprint its code (which
        each checks against the loop's: `envelopes`), and look up its outputs'
        materializers (which may import a materializer module or load entry points; the
        registry caches what it found). A None value stands for an output's value: the
        lookup then also loads the materializers of the libraries imported meanwhile.
        Errors are left to the child, which reports them as the step's."""
        from branchwork.materializers.registry import materializer_for
        from branchwork.runtime.envelopes import fingerprint_here, request_from_json, request_step

        with contextlib.suppress(Exception):
            pickled = request_step(envelope)
            if pickled not in self.steps:
                step = request_from_json(envelope).step
                fingerprint_here(step)  # computed once here, for every child
                for spec in step.outputs:
                    materializer_for(spec.annotation, None)
                self.steps[pickled] = step

    def _reap(self, fd: int) -> None:
        """A child's life pipe closed: it has exited (or is about to)."""
        self.selector.unregister(fd)
        os.close(fd)
        child = self.children.pop(fd)
        _, status = os.waitpid(child.pid, 0)
        if child.request_id is not None:
            _send(child.request_id, b"exit", b"%d" % os.waitstatus_to_exitcode(status))
        elif child is self.spare:  # killed while it waited: a new one
            os.close(child.request_fd)
            self.spare = self._fork()


def serve() -> None:
    """Run the zygote until stdin closes and every child has exited."""
    import branchwork.runtime.envelopes  # noqa: F401 - imported once here, not in each child

    _libc()  # loaded once here rather than in every child
    _Zygote().serve()


if __name__ == "__main__":
    serve()
