"""How often a running loop says it is alive, and when silence means it died."""

from __future__ import annotations

from branchwork.config.environment import seconds_from_env


def heartbeat_interval() -> float:
    """Seconds between heartbeats ($BRANCHWORK_HEARTBEAT_SECONDS, default 5)."""
    return seconds_from_env("BRANCHWORK_HEARTBEAT_SECONDS", 5.0, positive=True)


MISSED_HEARTBEATS = 6  # of silence, after which a running run is taken for dead


def stale_after(interval: float | None = None) -> float:
    """Silence after which a running run is taken for dead: six missed heartbeats of its
    loop's `interval` (recorded with the run), or of this process's."""
    return MISSED_HEARTBEATS * (heartbeat_interval() if interval is None else interval)
