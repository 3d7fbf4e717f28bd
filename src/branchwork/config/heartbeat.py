"""How often a running loop says it is alive, and when silence means it died."""

from __future__ import annotations

from branchwork.config.environment import seconds_from_env


def heartbeat_interval() -> float:
    """Seconds between heartbeats ($BRANCHWORK_HEARTBEAT_SECONDS, default 5)."""
    return seconds_from_env("BRANCHWORK_HEARTBEAT_SECONDS", 5.0, positive=True)


def retry_window() -> float:
    """Seconds a store operation keeps being retried ($BRANCHWORK_STORE_RETRY_SECONDS,
    default 30): a loop riding out an outage that long writes no heartbeat meanwhile."""
    return seconds_from_env("BRANCHWORK_STORE_RETRY_SECONDS", 30.0)


MISSED_HEARTBEATS = 6  # of silence, after which a running run is taken for dead
# Heartbeats missed beyond the retry window before a run is taken for dead: a loop whose
# store came back within the window heartbeats at once, and is still alive.
AFTER_RETRIES = 2


def stale_after(interval: float | None = None) -> float:
    """Silence after which a running run is taken for dead: six missed heartbeats of its
    loop's `interval` (recorded with the run), or of this process's, and never less than
    the store's retry window and two heartbeats more. At six heartbeats alone (30 s, the
    window itself), a run riding out a short PostgreSQL restart was recorded lost by another
    process the moment the store came back, and stopped."""
    beat = heartbeat_interval() if interval is None else interval
    return max(MISSED_HEARTBEATS * beat, retry_window() + AFTER_RETRIES * beat)
