"""Finding the pipeline a `branchwork run TARGET` names: `path/to/file.py:name` or
`package.module:name`.

A file is loaded as the script it is, as a resume loads a script that ran as `python
file.py` (`user_code.load_script`): both record the same source, code and class names,
share cache entries and load each other's values. The file's folder goes on `sys.path`
first, as `python file.py` would put it, so it can import its neighbours; for a module
target the working directory does, as `python -m` would. Either is imported as user code: a
pipeline call at its top level stops the import there, as in an orchestration process, so
`branchwork run` and `graph` never run a script's unguarded call. `sys.argv` is then the
target's alone, as `python file.py` with no arguments has it: a script that parses its
arguments at import takes its defaults (parameters come with `-p`), rather than failing on
the command's, and its runs record no arguments. Every way of getting the target wrong is
one `BranchworkError` line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from branchwork.exceptions import BranchworkError
from branchwork.pipelines.pipeline import Pipeline
from branchwork.user_code import ImportStopped, import_user_module, load_script

_FORMAT = "use path/to/file.py:pipeline_name or package.module:pipeline_name"


def _is_file(location: str) -> bool:
    return location.endswith(".py") or "/" in location or os.sep in location


def _on_path(folder: str) -> None:
    if folder not in sys.path:
        sys.path.insert(0, folder)


def _import_file(location: str) -> tuple[ModuleType, ImportStopped | None]:
    path = Path(location).expanduser().resolve()
    if not path.is_file():
        raise BranchworkError(f"No such file: {location}")
    if path.suffix != ".py":
        raise BranchworkError(f"Cannot import {location}: not a Python source file.")
    _on_path(str(path.parent))
    sys.argv = [str(path)]  # see the module docstring
    try:
        return load_script(str(path))
    except Exception as error:
        hint = _as_module_hint(path, error)
        raise BranchworkError(f"Importing {location} failed: {_describe(error)}{hint}") from error


def _as_module_hint(path: Path, error: BaseException) -> str:
    """A file of a package that imports its own package by name (`from myproj import ...`)
    needs the folder above the package on the path: run it as a module from there."""
    if not isinstance(error, ModuleNotFoundError) or error.name is None:
        return ""
    package = error.name.partition(".")[0]
    parents = [parent for parent in path.parents if parent.name == package]
    if not parents:
        return ""
    module = ".".join(path.relative_to(parents[0].parent).with_suffix("").parts)
    return (
        f". {path.name} is part of package {package!r}: run it as a module from "
        f"{parents[0].parent}, as `{module}:PIPELINE`"
    )


def _import_module(location: str) -> tuple[ModuleType, ImportStopped | None]:
    _on_path(os.getcwd())
    sys.argv = [location]  # see the module docstring
    try:
        return import_user_module(location)
    except ModuleNotFoundError as error:
        if error.name and (location == error.name or location.startswith(f"{error.name}.")):
            raise BranchworkError(
                f"No module named {error.name!r} (from target module {location!r}); {_FORMAT}."
            ) from error
        raise BranchworkError(f"Importing {location} failed: {_describe(error)}") from error
    except Exception as error:
        raise BranchworkError(f"Importing {location} failed: {_describe(error)}") from error


def _describe(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def load_target(target: str) -> Pipeline[Any, Any]:
    """The pipeline named by `target`; see the module docstring."""
    location, _, attribute = target.rpartition(":")
    if not location or not attribute:
        raise BranchworkError(f"Target {target!r} names no pipeline; {_FORMAT}.")
    module, stopped = (_import_file if _is_file(location) else _import_module)(location)
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part) and stopped is not None:
            raise BranchworkError(
                f"{location} calls pipeline '{stopped.pipeline_name}' at {stopped.location} "
                f"before defining {attribute!r}: put the file's top-level calls under "
                '`if __name__ == "__main__":`.'
            )
        if not hasattr(obj, part):
            found = sorted(k for k, v in vars(module).items() if isinstance(v, Pipeline))
            where = f"; pipelines there: {', '.join(found)}" if found else "; it defines none"
            raise BranchworkError(f"{location} has no pipeline {attribute!r}{where}.")
        obj = getattr(obj, part)
    if not isinstance(obj, Pipeline):
        raise BranchworkError(f"{target} is not a @pipeline (it is a {type(obj).__name__} object).")
    return obj
