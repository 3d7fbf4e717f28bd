"""Command steps: a step that runs a command (a program, a script in any language) instead of
a Python body, recorded, logged and cached like any step.

    train = command_step(
        name="train",
        command=["python", "{script}", "--lr", "{lr}", "--data", "{data}"],
        env={"SEED": "{seed}"},
        outputs={"model": "out/model.pt"},
    )

    @pipeline
    def training(lr: float = 0.1):
        data = prepare()  # a step returning a pathlib.Path
        model = train(script=FileInput("train.py"), lr=lr, data=data, seed=7)
        return evaluate(model)  # receives the model file as a local Path

- Its parameters are the `{name}` placeholders of its command and environment, passed by
  keyword: parameters of the pipeline, literals, step outputs (futures). Each is rendered as
  `str.format` renders it (so `{lr:.3g}` works, and `{{` is a brace); a path (a Path output,
  loaded as a local copy; a `pathlib.Path`; a `FileInput`) as its absolute path. Values of
  other types (None, lists, dicts) are refused: render them yourself, e.g. with json.dumps.
- Each attempt runs in a fresh working directory, with this process's environment plus
  `env`. Paths the command is given relative to where the pipeline runs must therefore be
  arguments: a `FileInput` renders absolute (and its contents enter the cache key); a bare
  `train.py` in the command would be looked for in the working directory.
- stdout and stderr are streamed into the step's log (and the console) as they are written.
  A non-zero exit fails the step with `CommandFailedError`: the exit code (or the signal that
  killed it) and the last lines of stderr.
- The command runs in a session of its own: a Ctrl-C at the terminal stops the run as any
  Ctrl-C does (the first lets the command finish) rather than reaching the command. On Linux
  it is killed when its step is (an isolated step's process, or the process of an abandoned
  inline step, exiting). The step ends when the command exits: what it started and left
  holding its output open (`server &`) is killed half a second later, with the command's
  process group (else the step would wait for it); what it left writing elsewhere is its own
  to end, and so is what started a session of its own (`setsid`).
- `outputs` names files or folders the command writes (relative to the working directory, or
  absolute): each is stored as a `pathlib.Path` artifact, named `{pipeline}::{step}::{name}`,
  and reaches downstream steps as a local path. The working directory is deleted once they
  are stored (inside a run; called as a plain function outside one, the step leaves it, with
  the outputs it returns, to the caller).
- Its cache key: a command step has no Python body, so its "code" is its command template,
  environment template and declared outputs; its arguments enter by value, step outputs
  (a Path output: the file) by content, `FileInput` arguments by the contents of the file.
  A script the command runs enters the key only that way (or as a step's Path output).
- Every other option of `@step` applies (settings/resources, retry, enable_cache, runtime,
  hooks, cache options), except `output_materializers`: outputs are files.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import functools
import inspect
import numbers
import os
import re
import selectors
import shlex
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from branchwork.exceptions import (
    ArtifactError,
    BranchworkError,
    CommandFailedError,
    ConfigurationError,
    StepInvocationError,
)
from branchwork.graph.code_hash import CodeFingerprint
from branchwork.graph.file_input import FileInput
from branchwork.steps.context import StepContext, get_step_context
from branchwork.steps.outputs import OutputSpec
from branchwork.steps.step import Step
from branchwork.values import hash_json

STDERR_TAIL_LINES = 20  # of stderr, in the error of a failed command
_TAIL_CHARS = 16_384  # of stderr kept while it streams, enough for those lines
_READ_SIZE = 65_536
_POLL_SECONDS = 0.1  # how often a command whose output is still open is checked for an exit
_GRACE_SECONDS = 0.5  # for what a command left writing its output (`>(tee log)`) to finish
_DRAIN_SECONDS = 2.0  # then, to read what is left of it once its process group is killed
_FINGERPRINT_FORMAT = "command-v1"


@dataclass(frozen=True)
class _Command:
    """What a command step runs: its templates and declared outputs. It is the step's
    function: called with the placeholders' values, it runs the command and returns the
    outputs' paths."""

    step_name: str
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]

    @property
    def placeholders(self) -> list[str]:
        """The names of the `{...}` fields, in the order they first appear."""
        templates = [*self.command, *(value for _, value in self.env)]
        return list(dict.fromkeys(name for text in templates for name in _fields(text)))

    @property
    def __signature__(self) -> inspect.Signature:
        keyword = inspect.Parameter.KEYWORD_ONLY
        return inspect.Signature([inspect.Parameter(n, keyword) for n in self.placeholders])

    def __call__(self, **arguments: Any) -> Any:
        """Run the command in a new working directory: deleted once the outputs are stored
        when it runs for a step run, left to the caller otherwise (it holds the outputs)."""
        try:
            context: StepContext | None = get_step_context()
        except BranchworkError:  # called as a plain function, outside a run
            context = None
        where = f"Command step '{self.step_name}'" + (
            f" (invocation '{context.invocation_id}')" if context is not None else ""
        )
        values = {name: _renderable(value, name, where) for name, value in arguments.items()}
        argv = [_rendered(part, values, where) for part in self.command]
        env = {**os.environ, **{key: _rendered(text, values, where) for key, text in self.env}}
        workdir = tempfile.mkdtemp(prefix=f"branchwork-{_safe(self.step_name)}-")
        if context is not None:
            context.resources.callback(shutil.rmtree, workdir, ignore_errors=True)
        try:
            _run(argv, env, workdir, where)
            paths = [self._output(name, out, workdir, where) for name, out in self.outputs]
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)  # no outputs to hand back
            raise
        if not paths:
            return None
        return paths[0] if len(paths) == 1 else tuple(paths)

    def _output(self, name: str, declared: str, workdir: str, where: str) -> Path:
        path = Path(workdir, declared)
        if not path.exists():
            raise ArtifactError(
                f"{where}: the command exited 0 but wrote nothing at {declared!r} for its "
                f"output '{name}' (looked for {path}; the command runs in a fresh working "
                "directory). Make the command write it there, or fix the path in outputs=."
            )
        return path

    @functools.cached_property
    def fingerprint(self) -> CodeFingerprint:
        """Its templates and outputs, as `graph.code_hash` fingerprints a function's code."""
        parts = {
            "command": hash_json(list(self.command))[:16],
            "env": hash_json(dict(self.env))[:16],
            "outputs": hash_json(dict(self.outputs))[:16],
        }
        return CodeFingerprint(hash_json({"format": _FINGERPRINT_FORMAT, "parts": parts}), parts)


class CommandStep(Step[..., Any]):
    """A step that runs a command; see the module docstring. Made by `command_step`."""

    def __init__(
        self,
        *,
        name: str,
        command: Sequence[str],
        outputs: Mapping[str, str | os.PathLike[str]] | None = None,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"command_step needs a name=, got {name!r}")
        if "output_materializers" in options:
            raise ConfigurationError(
                f"Command step '{name}': its outputs are files, stored as pathlib.Path "
                "artifacts; output_materializers does not apply."
            )
        spec = _Command(
            name,
            _checked_command(command, name),
            _checked_env(env, name),
            _checked_outputs(outputs, name),
        )
        super().__init__(spec, name=name, **options)
        self.command_spec = spec
        self.outputs = tuple(OutputSpec(output, Path) for output, _ in spec.outputs)

    @property
    def source(self) -> str:
        """The command template, as the step's recorded configuration shows it."""
        return f"command: {shlex.join(self.command_spec.command)}"

    @property
    def code_fingerprint(self) -> CodeFingerprint:
        """Its templates and declared outputs: what a change of invalidates its cache."""
        return self.command_spec.fingerprint


def command_step(
    *,
    name: str,
    command: Sequence[str],
    outputs: Mapping[str, str | os.PathLike[str]] | None = None,
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> CommandStep:
    """A step that runs `command` (a list of arguments; `{name}` placeholders are its
    parameters), with `env` added to the environment, and stores the files `outputs` names
    as its outputs. `options` are those of `@step`. See `branchwork.steps.command`."""
    return CommandStep(name=name, command=command, outputs=outputs, env=env, **options)


# ---- checking the definition -----------------------------------------------------------------


def _rendered(template: str, values: dict[str, Any], where: str) -> str:
    """`template` with its placeholders filled; a format spec that does not fit its value
    (`{lr:.3g}` given a str) names the placeholder and the value instead of a bare
    "Unknown format code 'g' for object of type 'str'"."""
    try:
        return template.format_map(values)
    except (ValueError, TypeError) as error:
        for _, field, spec, _ in string.Formatter().parse(template):
            if field not in values or not spec:
                continue
            value = values[field]
            try:
                format(value, spec)
            except (ValueError, TypeError):
                raise StepInvocationError(
                    f"{where}: placeholder {{{field}:{spec}}} in {template!r} cannot format "
                    f"{value!r} ({type(value).__name__}): {error}"
                ) from None
        raise StepInvocationError(f"{where}: {template!r} cannot be rendered: {error}") from None


def _fields(text: str) -> list[str]:
    """The field names of a template (ValueError: not a valid template)."""
    return [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]


def _checked_template(text: Any, where: str) -> str:
    if not isinstance(text, str):
        raise ConfigurationError(f"{where} must be a string, got {type(text).__name__} {text!r}")
    try:
        fields = _fields(text)
    except ValueError as error:
        raise ConfigurationError(
            f"{where} {text!r} is not a valid template ({error}); write {{{{ and }}}} for "
            "literal braces."
        ) from None
    for field in fields:
        if not field.isidentifier():
            raise ConfigurationError(
                f"{where} {text!r}: the placeholder {{{field}}} must be a parameter name, "
                "like {lr}: a plain identifier (no positional {}, attributes or indexes)."
            )
    return text


def _checked_command(command: Any, name: str) -> tuple[str, ...]:
    if isinstance(command, str) or not isinstance(command, Sequence) or not command:
        raise ConfigurationError(
            f"Command step '{name}': command= must be a non-empty list of arguments, got "
            f"{command!r}. For a shell line, use shlex.split(line), or ['bash', '-c', line]."
        )
    return tuple(
        _checked_template(part, f"Command step '{name}': command argument {i}")
        for i, part in enumerate(command)
    )


def _checked_env(env: Any, name: str) -> tuple[tuple[str, str], ...]:
    if env is None:
        return ()
    if not isinstance(env, Mapping):
        raise ConfigurationError(f"Command step '{name}': env= must be a dict, got {env!r}")
    checked = []
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key:
            raise ConfigurationError(
                f"Command step '{name}': env= has the key {key!r}; environment variable "
                "names are non-empty strings without '='."
            )
        checked.append((key, _checked_template(value, f"Command step '{name}': env[{key!r}]")))
    return tuple(checked)


def _checked_outputs(outputs: Any, name: str) -> tuple[tuple[str, str], ...]:
    if outputs is None:
        return ()
    if not isinstance(outputs, Mapping):
        raise ConfigurationError(
            f"Command step '{name}': outputs= must be a dict of output name to file path, "
            f"got {outputs!r}"
        )
    checked = []
    for output, path in outputs.items():
        if not isinstance(output, str) or not output.isidentifier() or len(output) > 50:
            raise ConfigurationError(
                f"Command step '{name}': output name {output!r} must be an identifier of up "
                "to 50 characters."
            )
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise ConfigurationError(
                f"Command step '{name}': output '{output}' must name a file path, got {path!r}"
            )
        checked.append((output, os.fspath(path)))
    return tuple(checked)


# ---- running ---------------------------------------------------------------------------------


def _renderable(value: Any, name: str, where: str) -> Any:
    """The value a placeholder is rendered from: a path made absolute, a number or string
    as it is; anything else refused."""
    if isinstance(value, (os.PathLike, FileInput)):
        return os.path.abspath(value)
    if isinstance(value, (str, numbers.Number)):
        return value
    raise StepInvocationError(
        f"{where}: argument '{name}' is a {type(value).__name__} ({value!r:.60}); a command "
        "line takes strings, numbers and paths. Render it yourself (e.g. json.dumps(...)) "
        "and pass the string."
    )


# A command starts through this launcher, a Python of its own (`preexec_fn` could deadlock
# in a process with threads), which puts it in a session of its own, so that a Ctrl-C at the
# terminal reaches branchwork, which stops the run as documented (the first lets running steps
# finish), not the command; and, on Linux, has it killed when the thread that started it ends
# (PR_SET_PDEATHSIG), so that an abandoned step's command never outlives the process that ran
# it. A command that cannot start is reported after _CANNOT_START.
_CANNOT_START = "branchwork: could not start: "
_LAUNCHER = f"""
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except (AttributeError, OSError):  # not Linux: the command may outlive an abandoned step
    pass
if os.getppid() != int(sys.argv[1]):  # the parent died before the line above
    sys.exit(137)
for name in ("SIGPIPE", "SIGXFSZ"):  # Python ignores them; a command expects the default
    if hasattr(signal, name):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as error:
    sys.stderr.write({_CANNOT_START!r} + str(error) + "\\n")
    sys.exit(127)
"""


def _run(argv: list[str], env: dict[str, str], workdir: str, where: str) -> None:
    """Run the command, streaming its output into this step's log; CommandFailedError if
    it does not start or exits non-zero."""
    if signal.getsignal(signal.SIGCHLD) is signal.SIG_IGN:
        raise CommandFailedError(
            f"{where}: cannot run {shlex.join(argv)} while this process ignores SIGCHLD "
            "(signal.signal(signal.SIGCHLD, signal.SIG_IGN)): the system then discards the "
            "command's exit status, and a failure would pass for a success. Restore the "
            "default first: signal.signal(signal.SIGCHLD, signal.SIG_DFL).",
            None,
        )
    launched = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(os.getpid()), *argv]
    try:
        process = subprocess.Popen(
            launched,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as error:
        raise _cannot_start(argv, str(error), where) from error
    try:
        stderr_tail = _stream(process)
    except BaseException:  # interrupted while it ran: do not leave it (nor its group) behind
        _kill_group(process.pid)
        process.wait()
        raise
    returncode = process.wait()
    if returncode == 127 and stderr_tail.startswith(_CANNOT_START):
        raise _cannot_start(argv, stderr_tail[len(_CANNOT_START) :].strip(), where)
    if returncode != 0:
        raise CommandFailedError(
            f"{where}: {shlex.join(argv)} {_exit_status(returncode)}; last lines of "
            f"stderr:\n{stderr_tail or '(nothing)'}",
            returncode,
        )


def _cannot_start(argv: list[str], reason: str, where: str) -> CommandFailedError:
    if reason.startswith(f"[Errno {errno.EACCES}]"):  # found, but no x bit (or a folder)
        hint = (
            f"{argv[0]!r} exists but is not executable: give it execute permission "
            "(chmod +x) or run it through its interpreter (sh, python, ...)."
        )
    else:
        hint = f"Check that {argv[0]!r} is installed and on PATH (or give its absolute path)."
    return CommandFailedError(f"{where}: could not start {shlex.join(argv)}: {reason}. {hint}")


def _exit_status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # every process of the group has ended
        os.killpg(pid, signal.SIGKILL)


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether the command has exited, left unreaped where the platform can (`os.waitid`):
    until it is reaped, its pid, which is its process group's id, is no other process's."""
    if not hasattr(os, "waitid"):  # macOS before Python 3.13
        return process.poll() is not None  # the group keeps its id while a member lives
    try:
        state = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped already: SIGCHLD ignored since `_run` checked
        return True
    return state is not None


def _stream(process: subprocess.Popen[bytes]) -> str:
    """Copy the command's stdout and stderr to this thread's (the step's log) as they come,
    until they close; returns the last lines of stderr. Once the command has exited, what
    it left holding them open has _GRACE_SECONDS to finish, then its group is killed and
    what is left read for at most _DRAIN_SECONDS (a process of another session may still
    hold them: they are closed then)."""
    assert process.stdout is not None and process.stderr is not None
    tail = ""
    exited_at: float | None = None
    killed = False
    with selectors.DefaultSelector() as selector:
        for pipe, sink in ((process.stdout, sys.stdout), (process.stderr, sys.stderr)):
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            selector.register(pipe, selectors.EVENT_READ, (pipe, sink, decoder))
        while selector.get_map():
            if exited_at is None:
                exited_at = time.monotonic() if _exited(process) else None
            elif not killed and time.monotonic() - exited_at > _GRACE_SECONDS:
                _kill_group(process.pid)
                killed = True
            elif time.monotonic() - exited_at > _GRACE_SECONDS + _DRAIN_SECONDS:
                for key in list(selector.get_map().values()):
                    selector.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
                break
            for key, _ in selector.select(_POLL_SECONDS):
                pipe, sink, decoder = key.data
                chunk = os.read(key.fd, _READ_SIZE)
                text = decoder.decode(chunk, final=not chunk)
                if not chunk:
                    selector.unregister(pipe)
                    pipe.close()
                if text:
                    sink.write(text)
                    if pipe is process.stderr:
                        tail = (tail + text)[-_TAIL_CHARS:]
    return "\n".join(tail.rstrip("\n").splitlines()[-STDERR_TAIL_LINES:])


def _safe(name: str) -> str:
    """A step name as part of a folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40]
