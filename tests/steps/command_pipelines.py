"""Command steps and the pipelines that use them, at module level so that an orchestration
process imports them again. The training "script" is a file the test writes (`SCRIPT`), run
by the interpreter running the tests; it counts its runs in the file beside it (`.runs`)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from branchwork import FileInput, command_step, pipeline, step
from branchwork.config import ResourceSettings, StepRetryConfig

SCRIPT = """\
import argparse, json, os, pathlib, sys

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--data")
args = parser.parse_args()
with open(__file__ + ".runs", "a") as runs:
    runs.write(os.getcwd() + "\\n")
rows = pathlib.Path(args.data).read_text().splitlines()
os.makedirs("out")
pathlib.Path("out/model.txt").write_text(
    f"model lr={args.lr} seed={os.environ['SEED']} rows={len(rows)}"
)
json.dump({"rows": len(rows)}, open("metrics.json", "w"))
print(f"trained on {len(rows)} rows")
print("a warning from the script", file=sys.stderr)
"""

train = command_step(
    name="train",
    command=[sys.executable, "{script}", "--lr", "{lr}", "--data", "{data}"],
    env={"SEED": "{seed}"},
    outputs={"model": "out/model.txt", "metrics": "metrics.json"},
)

# Writes its stderr, then exits 3.
exit_three = command_step(
    name="exit_three",
    command=[
        sys.executable,
        "-c",
        # braces in a template are placeholders: {{ and }} are literal ones
        "import sys\nfor i in range(30): print(f'error line {{i}}', file=sys.stderr)\nsys.exit(3)",
    ],
)

# Fails while the file `{marker}` exists, deleting it: succeeds on its second attempt.
flaky_command = command_step(
    name="flaky_command",
    command=[
        sys.executable,
        "-c",
        "import os, sys\nif os.path.exists(sys.argv[1]):\n    os.remove(sys.argv[1]); sys.exit(1)\n"
        "open('done.txt', 'w').write('done')",
        "{marker}",
    ],
    outputs={"done": "done.txt"},
    retry=StepRetryConfig(max_retries=1),
)

# In a process of its own on local_process (resource settings make a step isolated there).
isolated_echo = command_step(
    name="isolated_echo",
    command=[sys.executable, "-c", "import sys; print(sys.argv[1]); open('echo.txt', 'w')", "{n}"],
    outputs={"echo": "echo.txt"},
    settings={"resources": ResourceSettings(cpu_count=1)},
)


@step
def make_data(n: int) -> Path:
    """A Path output of a Python step, rendered into the command as a local path."""
    path = Path(tempfile.mkdtemp()) / "data.csv"
    path.write_text("".join(f"{i}\n" for i in range(n)))
    return path


@step
def read_text(path: Path) -> str:
    return path.read_text()


@pipeline(dynamic=False)
def train_and_read(script: str, lr: float = 0.1, n: int = 3) -> tuple[str, str]:
    model, metrics = train(script=FileInput(script), lr=lr, data=make_data(n), seed=7)
    return read_text(model), read_text(metrics)


@pipeline(enable_cache=False)
def failing_command() -> None:
    exit_three()


@pipeline(enable_cache=False)
def flaky(marker: str) -> str:
    return read_text(flaky_command(marker=marker))


@pipeline(enable_cache=False)
def isolated(n: int) -> Path:
    return isolated_echo(n=n)


# Writes an executable script (a tool), alone and in a folder; the next steps run their
# local copies of it.
build_tool = command_step(
    name="build_tool",
    command=[
        "sh",
        "-c",
        "mkdir -p out/bin && printf '#!/bin/sh\\necho the tool ran\\n' > out/bin/tool "
        "&& chmod +x out/bin/tool && cp -p out/bin/tool tool",
    ],
    outputs={"tool": "tool", "folder": "out"},
)
run_tool = command_step(name="run_tool", command=["{tool}"])
run_tool_in = command_step(name="run_tool_in", command=["{folder}/bin/tool"])


@pipeline(enable_cache=False)
def built_tool() -> None:
    tool, folder = build_tool()
    run_tool(tool=tool)
    run_tool_in(folder=folder)
