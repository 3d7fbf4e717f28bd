"""Settings read from environment variables: checked where they are read, naming the
variable (`BRANCHWORK_HEARTBEAT_SECONDS=abc` failed with "could not convert string to
float", and `=0` made every live run read as lost)."""

from __future__ import annotations

import math
import os

from branchwork.exceptions import ConfigurationError


def seconds_from_env(name: str, default: float, positive: bool = False) -> float:
    """A duration from `$name` (`default` when it is unset or empty): a finite number of
    seconds, not negative, and above 0 where `positive`; else a ConfigurationError."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        least = "above 0" if positive else "0 or more"
        raise ConfigurationError(f"${name} must be a number of seconds, {least}; got {text!r}")
    return value
