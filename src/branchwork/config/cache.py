"""What a step's cache key takes in beyond its code and arguments (see `graph.cache_key`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from branchwork.exceptions import ConfigurationError


@dataclass(frozen=True)
class CachePolicy:
    """`libraries`: distributions (as pip names them) whose installed versions enter the
    key, so upgrading one recomputes the step; third-party code enters no key otherwise."""

    libraries: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        libraries = (self.libraries,) if isinstance(self.libraries, str) else self.libraries
        if not all(isinstance(name, str) and name for name in libraries):
            raise ConfigurationError(
                f"CachePolicy.libraries must be distribution names, got {self.libraries!r}"
            )
        object.__setattr__(self, "libraries", tuple(libraries))


NO_POLICY = CachePolicy()
