"""What mypy says about a user's steps and pipelines: signatures are kept, `id=`/`after=` pass.

The snippet is checked by a real `mypy --strict` run, as a user's project would be; each line
marked `# error: <code>` must be reported with that code, and no other line may be.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("mypy")

SNIPPET = """
from branchwork import pipeline, step, unmapped


@step
def load(n: int) -> int:
    return n


@step(enable_cache=False)
def scale(x: int, factor: float = 1.0) -> float:
    return x * factor


@step
def merge(values: list[float]) -> float:
    return sum(values)


@pipeline
def flow(n: int, label: str = "x") -> float:
    first = load(n)
    second = load(n, id="second")
    third = scale(first, after=second)
    both = scale(2, 3.0, id="both", after=[first, "second"])
    load(n, start_after=first)
    load(n, id="sidecar", after=second, start_after=[first, "second"])
    submitted = load.submit(1, id="submitted")
    mapped: list[float] = scale.map([1, 2], unmapped(2.0))
    return merge([third, both, float(submitted), *mapped])


total: float = flow(1)
again: float = flow.with_options(enable_cache=False)(2, label="y")

load("no")  # error: call-overload
load(1, 2)  # error: call-overload
load(n=1, m=2)  # error: call-overload
load(1, id=3)  # error: call-overload
wrong: str = load(1)  # error: assignment
wrong_items: list[str] = scale.map([1, 2])  # error: assignment
flow("no")  # error: arg-type
flow(1, labl="y")  # error: call-arg
flow.with_options(enable_cache=False)("no")  # error: arg-type
"""


def test_mypy_keeps_signatures_and_accepts_id_and_after(tmp_path, request):
    source = tmp_path / "user_pipeline.py"
    source.write_text(textwrap.dedent(SNIPPET))
    cache = request.config.cache.mkdir("mypy-user-snippet")  # reused: a cold run takes ~30 s
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), source.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    reported = set(
        re.findall(
            r"^user_pipeline\.py:(\d+): error: .*\[([a-z-]+)\]$", result.stdout, re.MULTILINE
        )
    )
    expected = {
        (str(number), line.rsplit("# error: ", 1)[1])
        for number, line in enumerate(source.read_text().splitlines(), start=1)
        if "# error: " in line
    }
    assert reported == expected, result.stdout
