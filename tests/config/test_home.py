"""Where the store lives: a BRANCHWORK_HOME that is a file is refused, saying so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from processes import python_env

BRANCHWORK = str(Path(sys.executable).parent / "branchwork")


def test_a_home_that_is_a_file_is_a_one_line_error(tmp_path: Path):
    """It was "Error: FileExistsError: [Errno 17] File exists: ..."."""
    home = tmp_path / "home"
    home.write_text("not a folder")
    done = subprocess.run(
        [BRANCHWORK, "runs", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env=python_env(home),
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"Error: The branchwork home {home} is a file, not a folder: point BRANCHWORK_HOME at "
        "a folder (it is made if missing)."
    )
    assert home.read_text() == "not a folder"
