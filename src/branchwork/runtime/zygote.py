"""A warm process that forks one child per isolated step.

Starting Python and importing branchwork costs a few hundred milliseconds; forking a process
that has already done so costs a few. The zygote reads step requests (one JSON line each:
`{"id": k, "request": <envelope>}`) on stdin, forks a child per request, and reports on
stdout `{"id": k, "pid": p}` when the child starts and `{"id": k, "exit": code, "result":
<envelope or null>}` when it ends. It is single-threaded (forking is only safe there), waits
with `selectors`, and every child dies with it (PR_SET_PDEATHSIG), as it dies with the loop.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import selectors
import signal
import sys
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


def _send(message: dict[str, Any]) -> None:
    _write_all(1, (json.dumps(message) + "\n").encode())


def _child(request: Any, result_fd: int) -> None:  # pragma: no cover - runs in the fork
    from branchwork.runtime.envelopes import run_envelope

    code = 0
    try:
        die_with_parent()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(2, 1)  # the step's prints go to stderr; stdout is the zygote's channel
        _write_all(result_fd, run_envelope(request).encode())
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def serve() -> None:
    """Run the zygote until stdin closes and every child has been reported."""
    from branchwork.runtime.envelopes import request_from_json, run_envelope  # noqa: F401

    _libc()  # loaded once here rather than in every child
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ, None)
    children: dict[int, tuple[int, int, list[bytes]]] = {}  # result fd -> (id, pid, chunks)
    pending = b""
    accepting = True
    while accepting or children:
        for key, _ in selector.select():
            if key.data is None:
                data = os.read(0, 1 << 16)
                if not data:
                    accepting = False
                    selector.unregister(0)
                    continue
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    message = json.loads(line)
                    request: Any = message["request"]
                    # Decoded here, the step's modules stay imported for later children; if
                    # it fails, the child decodes again and reports the error.
                    with contextlib.suppress(Exception):
                        request = request_from_json(request)
                    gc.freeze()  # the child's collector then leaves inherited pages unshared
                    read_fd, write_fd = os.pipe()
                    pid = os.fork()
                    if pid == 0:
                        os.close(read_fd)
                        _child(request, write_fd)
                    os.close(write_fd)
                    children[read_fd] = (message["id"], pid, [])
                    selector.register(read_fd, selectors.EVENT_READ, read_fd)
                    _send({"id": message["id"], "pid": pid})
            else:
                fd = key.data
                request_id, pid, chunks = children[fd]
                chunk = os.read(fd, 1 << 16)
                if chunk:
                    chunks.append(chunk)
                    continue
                selector.unregister(fd)
                os.close(fd)
                del children[fd]
                _, status = os.waitpid(pid, 0)
                result = b"".join(chunks).decode() or None
                _send(
                    {"id": request_id, "exit": os.waitstatus_to_exitcode(status), "result": result}
                )
