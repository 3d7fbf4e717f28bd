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
        "a folder (it is made if missing), or make that path the folder `branchwork init` "
        "makes."
    )
    assert home.read_text() == "not a folder"


def test_a_project_branchwork_that_is_a_file_is_refused_not_passed_over_for_home(
    tmp_path: Path,
):
    """A `.branchwork` file in the project was passed over: runs went to ~/.branchwork, made
    for them, without a word."""
    project, user_home = tmp_path / "project", tmp_path / "user"
    (project / "src").mkdir(parents=True)
    user_home.mkdir()
    (project / ".branchwork").write_text("not a folder")
    env = {k: v for k, v in python_env(tmp_path / "unused").items() if k != "BRANCHWORK_HOME"}
    done = subprocess.run(
        [BRANCHWORK, "runs", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project / "src",
        env={**env, "HOME": str(user_home)},
    )
    assert done.returncode == 1
    assert done.stderr.strip().startswith(
        f"Error: The branchwork home {project / '.branchwork'} is a file, not a folder"
    )
    assert not (user_home / ".branchwork").exists()
