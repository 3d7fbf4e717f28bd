"""Loading the user's code in a process that runs it for a run: where it lives, how its
pipeline is found again (`load_source`), and the rule that loading it never starts runs.

A script often ends with a top-level call of its pipeline and no `if __name__ == "__main__":`
guard. An orchestration process (or a step process, or a resume) that imports that script to
find its pipeline would run that call again, submit a new run, whose orchestration process
imports the script again... So while branchwork imports user code (`importing_user_code()`),
a pipeline call raises `ImportStopped`: the import ends there and the loader uses what the
module defined by then, which is usually the pipeline it came for. `BRANCHWORK_DEPTH` counts
orchestration processes started from orchestration processes, as a last line of defence.

Where code lives: the folders a run needs on `sys.path` to import its pipeline again (the
script's folder, the working directory, PYTHONPATH entries) are the user's entries of
`sys.path`, recorded with the run and put back in every process that loads it.

A pipeline defined interactively (a Jupyter notebook's cells, a REPL) has no file to import
it from again: it travels to its orchestration process by value instead, a cloudpickle in
the environment that process is started with (`pipeline_by_value`), which pickles the
`__main__` functions it reaches (its steps, their helpers) by value too. And its code
changes while the process lives (a cell run again redefines a helper), as do the values a
script's steps read (a sweep sets a module's global before each run): what is cached per
function object (fingerprints, pickled steps) is cached per `code_generation()`, which
changes at every cell run and every run started.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import sys
import sysconfig
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from types import ModuleType
from typing import Any

from branchwork.exceptions import PipelineDefinitionError

DEPTH_ENV = "BRANCHWORK_DEPTH"
SCRIPT_MODULE = "__branchwork_main__"  # a script that ran as __main__, loaded elsewhere
MAX_DEPTH_ENV = "BRANCHWORK_MAX_DEPTH"
PIPELINE_BY_VALUE_ENV = "BRANCHWORK_PIPELINE_BY_VALUE"
# One environment variable may hold 128 KiB on Linux (MAX_ARG_STRLEN); keep clear of it.
MAX_BY_VALUE = 100_000


def recorded_module(module_name: str) -> str:
    """The module name a script's classes and functions are recorded under wherever it was
    loaded: the `__main__` it ran as, not `SCRIPT_MODULE`, so every process reads one name
    (see `find_recorded`)."""
    return "__main__" if module_name == SCRIPT_MODULE else module_name


def recorded_name(kind: type) -> str:
    """A class as "module.QualName", under the module it is recorded under."""
    return f"{recorded_module(kind.__module__)}.{kind.__qualname__}"


def find_recorded(module_name: str, qualname: str) -> Any:
    """What was recorded as `module_name` and `qualname` (a class, a function), imported.
    A script's (`__main__`) is looked up in the script loaded here to resume, replay or
    run it (`SCRIPT_MODULE`), else in this process's `__main__`: the script itself where it
    runs. Neither is cached: another script may be loaded later. ImportError or
    AttributeError if it is not found."""
    if module_name == "__main__":
        modules = [sys.modules.get(SCRIPT_MODULE), sys.modules["__main__"]]
        holders: list[Any] = [module for module in modules if module is not None]
    else:
        holders = [importlib.import_module(module_name)]
    for holder in holders:
        found: Any = holder
        for part in qualname.split("."):
            found = getattr(found, part, _MISSING)
            if found is _MISSING:
                break
        else:
            return found
    raise AttributeError(f"module {module_name!r} has no attribute {qualname!r}")


_MISSING = object()


class ImportStopped(BaseException):
    """A pipeline was called while branchwork imported user code; the import stops there.

    A BaseException, so that a module's `except Exception:` cannot swallow it."""

    def __init__(self, pipeline_name: str, location: str) -> None:
        super().__init__(f"pipeline '{pipeline_name}' called at {location} while imported")
        self.pipeline_name = pipeline_name
        self.location = location


_importing: ContextVar[bool] = ContextVar("branchwork_importing_user_code", default=False)


@contextmanager
def importing_user_code() -> Iterator[None]:
    """While this block runs, a pipeline call raises ImportStopped instead of running."""
    token = _importing.set(True)
    try:
        yield
    finally:
        _importing.reset(token)


def is_importing_user_code() -> bool:
    return _importing.get()


def process_depth() -> int:
    """How many orchestration processes started this one (0 in a user's own process)."""
    try:
        return int(os.environ.get(DEPTH_ENV, "0"))
    except ValueError:
        return 0


def max_depth() -> int:
    return int(os.environ.get(MAX_DEPTH_ENV, "8"))


@lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    """Folders of the standard library and installed packages: not the user's code."""
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    return tuple(os.path.realpath(root) + os.sep for root in roots)


def user_import_path() -> list[str]:
    """The folders of `sys.path` that hold the user's code, absolute ('' is the working
    directory), in order."""
    entries: list[str] = []
    for entry in sys.path:
        folder = os.path.abspath(entry or os.getcwd())
        if not os.path.isdir(folder):
            continue  # zip files, missing folders
        real = os.path.realpath(folder) + os.sep
        if real.startswith(_installed_roots()):
            continue
        entries.append(folder)
    return list(dict.fromkeys(entries))


def extend_import_path(entries: list[str]) -> None:
    """Put recorded folders that exist here in front of `sys.path`, in their order."""
    missing = [e for e in entries if e and e not in sys.path and os.path.isdir(e)]
    sys.path[:0] = missing


def code_generation() -> tuple[int, int]:
    """What changes whenever the code a step reaches, or a value it reads, may have: the
    count of cells the IPython kernel or shell has run, and of the runs this process started
    (between two, a script may set a module's global or reload a module)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return int(getattr(shell, "execution_count", 0) or 0), _runs_started[0]


_runs_started = [0]


def new_code_generation() -> None:
    """A run starts here: the code its steps reach, and the values they read, are hashed
    again when it first needs them."""
    _runs_started[0] += 1


def defined_interactively(func: Any) -> bool:
    """Whether `func` comes from an interactive `__main__` (a notebook, a REPL): one with no
    file that another process could load."""
    main = sys.modules.get("__main__")
    return getattr(func, "__module__", None) == "__main__" and not getattr(main, "__file__", None)


def pipeline_by_value(pipeline: Any) -> dict[str, str]:
    """The environment that carries a pipeline defined interactively to the orchestration
    process that runs it (see the module docstring); empty for one it can import."""
    if not defined_interactively(pipeline.func):
        return {}
    import cloudpickle

    pickled = base64.b64encode(cloudpickle.dumps(pipeline)).decode()
    if len(pickled) > MAX_BY_VALUE:
        raise PipelineDefinitionError(
            f"Pipeline '{pipeline.name}' is defined in a notebook, so it travels to its "
            f"orchestration process by value, but it pickles to {len(pickled) // 1000} KB, "
            "more than an environment variable holds: its steps reach big values defined in "
            "the notebook. Pass them as parameters or load them in a step, or move the "
            "pipeline into a module."
        )
    return {PIPELINE_BY_VALUE_ENV: pickled}


def _pipeline_sent_by_value(pipeline_name: str, source: str) -> Any:
    """The pipeline `source` names, if this process was sent it by value."""
    pickled = os.environ.get(PIPELINE_BY_VALUE_ENV)
    if not pickled or not source.startswith("__main__:"):
        return None
    import pickle

    try:
        with importing_user_code():  # modules it refers to are imported: never start runs
            pipeline = pickle.loads(base64.b64decode(pickled))
    except Exception as error:
        raise PipelineDefinitionError(
            f"Cannot load pipeline '{pipeline_name}', sent by value from the notebook that "
            f"defined it: {error!r}. Install here what the notebook imports."
        ) from error
    return pipeline if f"__main__:{pipeline.func.__qualname__}" == source else None


def load_source(
    pipeline_name: str,
    source: str,
    source_file: str | None,
    import_path: Sequence[str],
    argv: Sequence[str] = (),
) -> Any:
    """The object a run recorded as its pipeline ("module:qualname"), imported again here:
    the recorded import path goes first on `sys.path`; a script that ran as `__main__` is
    loaded from its file under another name, so its `if __name__ == "__main__":` block does
    not run; a pipeline call at its top level stops the import there, and the object is
    taken from what was defined by then. While it is imported, `sys.argv` holds the
    arguments the run's script was started with (`argv`): one that parses them at import
    (`ARGS = parser.parse_args()`) sees the same values. A pipeline sent by value
    (`pipeline_by_value`) is taken as sent."""
    module_name, _, qualname = source.partition(":")
    extend_import_path(list(import_path))
    sent = _pipeline_sent_by_value(pipeline_name, source)
    if sent is not None:
        return sent
    if module_name == "__main__" and _interactive():
        defined = _defined_in_this_session(pipeline_name, qualname, source_file)
        if defined is not None:
            return defined
    stopped: ImportStopped | None = None
    try:
        with importing_user_code(), _arguments(source_file or module_name, argv):
            module, stopped = _import(module_name, source_file)
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception as error:
        if stopped is not None:
            raise PipelineDefinitionError(
                f"Cannot load pipeline '{pipeline_name}' from {source_file or module_name}: "
                f"importing it calls pipeline '{stopped.pipeline_name}' at {stopped.location} "
                f"before defining '{qualname}'. Put the script's top-level calls under "
                '`if __name__ == "__main__":`.'
            ) from None
        hint = (
            " A pipeline defined in a notebook resumes in that notebook's kernel:"
            " `Client().resume_run(...)` there."
            if module_name == "__main__" and not (source_file and os.path.exists(source_file))
            else ""
        )
        raise PipelineDefinitionError(
            f"Cannot load pipeline '{pipeline_name}' from {source!r} (file {source_file}): "
            f"{error}. Define pipelines at module level in an importable module or script." + hint
        ) from error
    if not callable(getattr(obj, "func", None)):
        raise PipelineDefinitionError(f"{source!r} is a {type(obj).__name__}, not a @pipeline.")
    return obj


@contextmanager
def _arguments(program: str, argv: Sequence[str]) -> Iterator[None]:
    """`sys.argv` as the run's script had it, while the block runs (one block at a time: it
    is the whole process's). A script that exits there (argparse refusing them) is a
    PipelineDefinitionError saying so, not the end of this process."""
    with _argv_lock:
        kept = sys.argv
        sys.argv = [program, *argv]
        try:
            yield
        except SystemExit as error:
            raise PipelineDefinitionError(
                f"Importing {program} with the arguments its run was started with "
                f"({' '.join(argv) or 'none'}) exited it: SystemExit: {error.code}."
            ) from None
        finally:
            sys.argv = kept


_argv_lock = threading.RLock()


def _interactive() -> bool:
    """Whether this process's `__main__` is a notebook's or a REPL's: no file to load."""
    return not getattr(sys.modules.get("__main__"), "__file__", None)


def _defined_in_this_session(pipeline_name: str, qualname: str, source_file: str | None) -> Any:
    """The pipeline as this notebook (or REPL) defines it now: a run it started is resumed,
    replayed or answered from it, with the code its cells hold now (a resume then compares
    each call with the run's record, as for a script). None when it defines none and the
    recorded file is there to load (a script's run resumed from `python -c` or a test)."""
    obj: Any = sys.modules["__main__"]
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if getattr(obj, "name", None) == pipeline_name and callable(getattr(obj, "func", None)):
        return obj
    if not (source_file and os.path.exists(source_file)):
        raise PipelineDefinitionError(
            f"Pipeline '{pipeline_name}' was defined in a notebook or an interactive session, "
            f"and this one defines no pipeline '{pipeline_name}' as `{qualname}`: run the cell "
            "that defines it first, then resume the run from here."
        )
    return None


def load_script(path: str) -> tuple[ModuleType, ImportStopped | None]:
    """The script in `path` (one that runs as `python path`) loaded as user code, under
    `SCRIPT_MODULE`: its guarded `if __name__ == "__main__":` block does not run, a pipeline
    call at its top level stops it there (returned), and what it defines is recorded under
    `__main__` (`recorded_module`), as where it ran. Run afresh each time: the file may have
    changed since."""
    with importing_user_code():
        return _run_file(path, SCRIPT_MODULE)


def import_user_module(module_name: str) -> tuple[ModuleType, ImportStopped | None]:
    """Module `module_name` imported as user code: a pipeline call at its top level stops
    the import there (returned), the module keeping what it defined by then."""
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        return loaded, None
    with importing_user_code():
        spec = importlib.util.find_spec(module_name)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {module_name!r}", name=module_name)
        return _execute(spec, module_name)


def _import(module_name: str, source_file: str | None) -> tuple[ModuleType, ImportStopped | None]:
    """The module, and what stopped its import early if something did."""
    if module_name == "__main__":
        return _load_file(source_file, SCRIPT_MODULE)
    if module_name in sys.modules or importlib.util.find_spec(module_name) is not None:
        return import_user_module(module_name)
    return _load_file(source_file, module_name)  # loaded from a file there: here too


def _load_file(path: str | None, module_name: str) -> tuple[ModuleType, ImportStopped | None]:
    """The module in `path`, loaded once under `module_name`."""
    if not path:
        raise ImportError("the script's path was not recorded")
    loaded = sys.modules.get(module_name)
    if loaded is not None and getattr(loaded, "__file__", None) == path:
        return loaded, None
    return _run_file(path, module_name)


def _run_file(path: str, module_name: str) -> tuple[ModuleType, ImportStopped | None]:
    """The module in `path`, run now under `module_name`."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None:
        raise ImportError(f"cannot load {path}")
    module, stopped = _execute(spec, module_name)
    if module_name == SCRIPT_MODULE:  # not importable elsewhere: step processes get it by value
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    return module, stopped


def _execute(spec: Any, module_name: str) -> tuple[ModuleType, ImportStopped | None]:
    """Run a module's code, keeping what it defined if a pipeline call stopped it."""
    if spec.loader is None:
        raise ImportError(f"cannot load {module_name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # before executing: dataclasses and pickling look it up
    try:
        spec.loader.exec_module(module)
    except ImportStopped as stopped:
        return module, stopped
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module, None
