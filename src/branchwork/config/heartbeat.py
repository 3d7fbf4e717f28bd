"""How often a running loop says it is alive, and when silence means it died."""

from __future__ import annotations

import os


def heartbeat_interval() -> float:
    """Seconds between heartbeats ($BRANCHWORK_HEARTBEAT_SECONDS, default 5)."""
    return float(os.environ.get("BRANCHWORK_HEARTBEAT_SECONDS", "5"))


def stale_after() -> float:
    """Silence after which a running run is taken for dead: six missed heartbeats."""
    return 6 * heartbeat_interval()
