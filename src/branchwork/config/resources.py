"""Per-step resource requests that every scheduler honours.

A plain frozen dataclass rather than a pydantic model keeps `import branchwork` fast; the
validation is small enough to write out, and its errors name the offending field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from branchwork.exceptions import ConfigurationError

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
# What Ray names its standard resources: they have fields of their own here.
_STANDARD_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")


def parse_memory(value: str | int) -> int:
    """Bytes in a memory size such as "4GB", "512MB", "1.5GiB" or a plain byte count."""
    if isinstance(value, bool):
        raise ConfigurationError(f"memory must be a size like '4GB', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigurationError(f"memory must not be negative, got {value}")
        return value
    match = _MEMORY_RE.match(str(value))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ConfigurationError(
            f"memory must be a size like '4GB', '512MB' or '2GiB', got {value!r}"
        )
    return int(float(match.group(1)) * _UNITS[unit])


@dataclass(frozen=True)
class ResourceSettings:
    """What one step needs: CPUs (may be fractional), GPUs and memory ("4GB", "512MB").

    `custom_resources` names resources a cluster's nodes declare, e.g. `{"node_b": 1}` for a
    node started with `ray start --resources='{"node_b": 1}'`: on Ray the step runs only on
    a node that offers them, and is refused at once if no node does. One machine has none,
    so the local orchestrators ignore them.
    """

    cpu_count: float | None = None
    gpu_count: int | None = None
    memory: str | None = None
    custom_resources: dict[str, float] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        for name in ("cpu_count", "gpu_count"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigurationError(f"ResourceSettings.{name} must be a number, got {value!r}")
            if not math.isfinite(value):  # nan passed every check below, or int() raised
                raise ConfigurationError(
                    f"ResourceSettings.{name} must be a finite number, got {value}"
                )
            if value < 0:
                raise ConfigurationError(
                    f"ResourceSettings.{name} must not be negative, got {value}"
                )
        if self.gpu_count is not None and int(self.gpu_count) != self.gpu_count:
            raise ConfigurationError(
                f"ResourceSettings.gpu_count must be a whole number, got {self.gpu_count}"
            )
        if self.memory is not None:
            try:
                parse_memory(self.memory)
            except ConfigurationError as error:
                raise ConfigurationError(f"ResourceSettings.{error}") from None
        if self.custom_resources is not None:
            object.__setattr__(self, "custom_resources", _checked_custom(self.custom_resources))

    @property
    def memory_bytes(self) -> int:
        """The memory request in bytes (0 when none was given)."""
        return 0 if self.memory is None else parse_memory(self.memory)

    @property
    def is_empty(self) -> bool:
        """True when the step asks for nothing, so schedulers need not account for it."""
        return not (self.cpu_count or self.gpu_count or self.memory_bytes)

    def to_dict(self) -> dict[str, object]:
        recorded: dict[str, object] = {
            "cpu_count": self.cpu_count,
            "gpu_count": self.gpu_count,
            "memory": self.memory,
        }
        if self.custom_resources:
            recorded["custom_resources"] = dict(self.custom_resources)
        return recorded


def _checked_custom(resources: object) -> dict[str, float]:
    """A copy of `custom_resources` (the caller's dict may change later), each checked."""
    if not isinstance(resources, dict):
        raise ConfigurationError(
            f"ResourceSettings.custom_resources must be a dict of name to amount, e.g. "
            f"{{'node_b': 1}}, got {resources!r}"
        )
    for name, amount in resources.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(
                f"ResourceSettings.custom_resources: names must be non-empty strings, got {name!r}"
            )
        if name in _STANDARD_RESOURCES:
            raise ConfigurationError(
                f"ResourceSettings.custom_resources['{name}']: use cpu_count, gpu_count or "
                "memory for the standard resources."
            )
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise ConfigurationError(
                f"ResourceSettings.custom_resources['{name}'] must be a non-negative number, "
                f"got {amount!r}"
            )
    return {name: float(amount) for name, amount in resources.items()}
