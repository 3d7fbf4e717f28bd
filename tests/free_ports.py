"""Free TCP ports on loopback for the test servers (S3, Ray, PostgreSQL).

A port is free when it is picked, not when a server binds it: another process (a Ray
worker's outgoing connection, another test session) may take it in between, so a server
started on picked ports must be ready to start again on new ones.
"""

from __future__ import annotations

import contextlib
import socket


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: each socket stays bound until all are picked, so the
    kernel cannot hand out one port twice."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port() -> int:
    return free_ports(1)[0]
