"""Where branchwork keeps its store: `BRANCHWORK_HOME`, a `.branchwork/` project folder, or ~."""

from __future__ import annotations

import os
from pathlib import Path

from branchwork.exceptions import ConfigurationError

PROJECT_DIR_NAME = ".branchwork"


def home_dir() -> Path:
    """The branchwork home: $BRANCHWORK_HOME, else the nearest `.branchwork` upward (a file
    there is refused by `store_url`, not passed over for ~: the runs went to ~ unsaid), else
    ~."""
    explicit = os.environ.get("BRANCHWORK_HOME")
    if explicit:
        return Path(explicit).expanduser().resolve()
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        candidate = folder / PROJECT_DIR_NAME
        if candidate.exists():
            return candidate
    return Path.home() / PROJECT_DIR_NAME


def store_url() -> str:
    """The metadata store URL: $BRANCHWORK_STORE_URL, else SQLite in the home."""
    explicit = os.environ.get("BRANCHWORK_STORE_URL")
    if explicit:
        return explicit
    home = home_dir()
    if home.exists() and not home.is_dir():
        raise ConfigurationError(
            f"The branchwork home {home} is a file, not a folder: point BRANCHWORK_HOME at a "
            "folder (it is made if missing), or make that path the folder `branchwork init` "
            "makes."
        )
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'branchwork.db'}"


def artifacts_dir() -> Path:
    """Where the default local artifact store keeps its files."""
    return home_dir() / "artifacts"
