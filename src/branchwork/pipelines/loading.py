"""Finding a pipeline from its recorded source, in a process that did not define it.

The run's recorded import path goes on `sys.path` first, so a script that imports a module
beside it loads from anywhere. The import runs under `importing_user_code()`: a top-level
pipeline call in the user's module stops the import there (see `branchwork.user_code`)
instead of starting another run, and the pipeline is taken from what was defined by then.

`recorded_request` is how a run found in the store becomes a `RunRequest`: whoever builds
one from a snapshot (an orchestration process, an orchestrator that the seed's plugin API
hands a snapshot to run in this process) loads its pipeline here, since a request never
loads code itself (see `runtime.requests`).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import PipelineDefinitionError
from branchwork.runtime.requests import RunRequest
from branchwork.user_code import (
    SCRIPT_MODULE,
    ImportStopped,
    extend_import_path,
    importing_user_code,
)

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse, PipelineSnapshotResponse
    from branchwork.pipelines.pipeline import Pipeline
    from branchwork.stack import Stack


def recorded_request(
    snapshot: PipelineSnapshotResponse, run: PipelineRunResponse, stack: Stack
) -> RunRequest:
    """The request of `run`, found in the store, with its pipeline loaded from the
    snapshot's source (a PipelineDefinitionError if it cannot be)."""
    return RunRequest.recorded(snapshot, run, stack, load_pipeline(snapshot))


def load_pipeline(snapshot: PipelineSnapshotResponse) -> Pipeline[Any, Any]:
    """Import the pipeline named by the snapshot's source ("module:qualname").

    A pipeline defined in a script run as `__main__` is loaded from its recorded file, under
    another name, so its `if __name__ == "__main__":` block does not run here.
    """
    from branchwork.pipelines.pipeline import Pipeline

    module_name, _, qualname = snapshot.source.partition(":")
    where = snapshot.source_file or module_name
    extend_import_path(list(snapshot.import_path))
    stopped: ImportStopped | None = None
    try:
        with importing_user_code():
            module, stopped = _import(module_name, snapshot.source_file)
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception as error:
        if stopped is not None:
            raise PipelineDefinitionError(
                f"Cannot load pipeline '{snapshot.pipeline_name}' from {where}: importing it "
                f"calls pipeline '{stopped.pipeline_name}' at {stopped.location} before "
                f"defining '{qualname}'. Put the script's top-level calls under "
                '`if __name__ == "__main__":`.'
            ) from None
        raise PipelineDefinitionError(
            f"Cannot load pipeline '{snapshot.pipeline_name}' from {snapshot.source!r} "
            f"(file {snapshot.source_file}): {error}. Define pipelines at module level in an "
            "importable module or script."
        ) from error
    if not isinstance(obj, Pipeline):
        raise PipelineDefinitionError(
            f"{snapshot.source!r} is a {type(obj).__name__}, not a @pipeline."
        )
    return obj


def _import(module_name: str, source_file: str | None) -> tuple[ModuleType, ImportStopped | None]:
    """The module, and what stopped its import early if something did."""
    if module_name == "__main__":
        return _load_file(source_file, SCRIPT_MODULE)
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        return loaded, None
    spec = importlib.util.find_spec(module_name)
    if spec is None:  # loaded from a file there (the CLI does): load it here too
        return _load_file(source_file, module_name)
    return _execute(spec, module_name)


def _load_file(path: str | None, module_name: str) -> tuple[ModuleType, ImportStopped | None]:
    """The module in `path`, loaded once under `module_name`."""
    if not path:
        raise ImportError("the script's path was not recorded")
    loaded = sys.modules.get(module_name)
    if loaded is not None and getattr(loaded, "__file__", None) == path:
        return loaded, None
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
