"""Finding a pipeline from its recorded source, in a process that did not define it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import PipelineDefinitionError

if TYPE_CHECKING:
    from branchwork.models import PipelineSnapshotResponse
    from branchwork.pipelines.pipeline import Pipeline


def load_pipeline(snapshot: PipelineSnapshotResponse) -> Pipeline[Any, Any]:
    """Import the pipeline named by the snapshot's source ("module:qualname").

    A pipeline defined in a script run as `__main__` is loaded from its recorded file.
    """
    from branchwork.pipelines.pipeline import Pipeline

    module_name, _, qualname = snapshot.source.partition(":")
    try:
        if module_name == "__main__":
            module = _load_file(snapshot.source_file, _SCRIPT_MODULE)
        else:
            try:
                module = importlib.import_module(module_name)
            except ImportError:  # loaded from a file there (the CLI does): load it here too
                if not snapshot.source_file:
                    raise
                module = _load_file(snapshot.source_file, module_name)
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception as error:
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


_SCRIPT_MODULE = "__branchwork_main__"


def _load_file(path: str | None, module_name: str) -> Any:
    """The module in `path`, loaded once under `module_name`. A script that ran as
    `__main__` there gets another name here, so its `if __name__ == "__main__":` block does
    not run again."""
    if not path:
        raise ImportError("the script's path was not recorded")
    loaded = sys.modules.get(module_name)
    if loaded is not None and getattr(loaded, "__file__", None) == path:
        return loaded
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
