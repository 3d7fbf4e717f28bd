"""The remote artifact stores this process was configured with, by root.

An artifact is read back from its URI alone (the metadata store records nothing else), but a
team's object store needs its endpoint and credentials. A configured store remembers its
spec here when it is built (from a stack, a step's envelope, or the registry that `Client`
reads), so that a URI under its root is read with the same settings. Process-wide on
purpose: every thread of a process (the loop, inline steps, readers) uses the same stores.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

_specs: dict[str, dict[str, str]] = {}  # root (without a trailing slash) -> spec
_lock = threading.Lock()


def remember_store_spec(spec: Mapping[str, str]) -> None:
    """Read URIs under `spec["root"]` with this configuration from now on."""
    with _lock:
        _specs[spec["root"].rstrip("/")] = dict(spec)


def configured_spec_for(uri: str) -> dict[str, str] | None:
    """The spec of the configured store whose root is the longest prefix of `uri`."""
    with _lock:
        roots = [root for root in _specs if uri == root or uri.startswith(root + "/")]
        return dict(_specs[max(roots, key=len)]) if roots else None
