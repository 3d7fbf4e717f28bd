"""Every example of docs/dynamic.md runs as the page says: saved as a file and run with
`python`, in a fresh branchwork home. Where the example's last `print` is followed by a
comment that is a Python literal (`# (0.93, 5)`), that is what it prints last."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "dynamic.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def promised_output(example: str) -> object | None:
    """The literal in the comment of the example's last print, if it is one."""
    prints = [line for line in example.splitlines() if "print(" in line]
    if not prints or "#" not in prints[-1]:
        return None
    comment = prints[-1].split("#", 1)[1].split(", after", 1)[0].strip()
    try:
        return ast.literal_eval(comment)
    except (ValueError, SyntaxError):
        return None


def test_the_page_has_its_examples():
    assert len(EXAMPLES) >= 7


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.split("def ", 1)[1].split("(")[0])
def test_each_example_runs_as_a_script(example: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    env = {**os.environ, "BRANCHWORK_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    promised = promised_output(example)
    if promised is not None:
        assert ast.literal_eval(done.stdout.strip().splitlines()[-1]) == promised
