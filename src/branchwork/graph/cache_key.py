"""Cache keys, made of parts that say what a step depends on.

A key hashes `KeyParts`: the step's code (its fingerprint: the user code its body reaches,
see `graph.code_hash`), a token per argument, the contents of the files it reads
(`FileInput`), the versions of the libraries its `cache_policy` names, the value of its
`cache_key_fn`, how its outputs are stored, and the code of the user's classes of the step
outputs it receives (it runs their methods: `model.predict`, which no name in its own code
reaches). The parts are recorded with each step run, so the reason of a miss names the part
that changed (`graph.cache_reasons`). A part added later is left out of the key while empty:
keys made before it stay the same.

An argument's token is readable for a plain scalar (`int:5`, `str:'a.csv'`) and a short
hash of its `branchwork.values` encoding otherwise, which keeps types: a step called with
`(1, 2)` and with `[1, 2]` has two keys. Step outputs enter by content hash, not by id, so a
rerun whose upstream steps produced equal values hits the cache even though those values are
new artifact versions.

A key starts with its format, `KEY_FORMAT`: a key of another format is a cache miss, and not
evidence that a resumed run changed its graph (see `same_key_format`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from branchwork.graph.external import ExternalArtifact
from branchwork.graph.file_input import FileInput
from branchwork.graph.invocation import ARTIFACT_REFS, Invocation, OutputRef
from branchwork.materializers.registry import materializer_path
from branchwork.user_code import SCRIPT_MODULE, recorded_name
from branchwork.values import Leaf, canonical, hash_json, leaves_of

if TYPE_CHECKING:
    from branchwork.steps.step import Step

KEY_FORMAT = "v3"
_READABLE = (int, float, bool, type(None))  # exact types whose token is their value


class KeyParts(NamedTuple):
    """What a step's cache key is made of (JSON-able, recorded with the step run)."""

    code: str
    arguments: dict[str, str]
    files: dict[str, str]
    libraries: dict[str, str]
    extra: str | None
    outputs: str
    classes: dict[str, str] = {}  # noqa: RUF012 - never mutated: {class path: code digest}

    def to_json(self) -> str:
        """The parts as recorded with the step run: the text its key hashes."""
        parts = self._asdict()
        if not parts["classes"]:
            del parts["classes"]  # see the module docstring
        return json.dumps(parts, sort_keys=True, separators=(",", ":"), allow_nan=False)

    @property
    def key(self) -> str:
        return key_of(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeyParts:
        """Parts as recorded; a part an older record lacks reads as empty."""
        return cls(
            code=data.get("code") or "",
            arguments=data.get("arguments") or {},
            files=data.get("files") or {},
            libraries=data.get("libraries") or {},
            extra=data.get("extra"),
            outputs=data.get("outputs") or "",
            classes=data.get("classes") or {},
        )


def key_of(parts_json: str) -> str:
    """The key of parts given as `KeyParts.to_json` writes them: 64 characters in all, the
    width of the store's cache_key column."""
    return KEY_FORMAT + hashlib.sha256(parts_json.encode()).hexdigest()[len(KEY_FORMAT) :]


def key_parts(
    invocation: Invocation,
    stored_output: Callable[[OutputRef], tuple[str, str]],
    file_hash: Callable[[str], str],
    libraries: Mapping[str, str],
    extra: Any = None,
    class_code: Callable[[str], str | None] = lambda data_type: None,
) -> KeyParts:
    """The parts of an invocation's key; `stored_output` gives a step output's content hash
    and data type, `class_code` the code digest of the user's class a data type names (None
    for any other), `file_hash` a file's (OSError: the key cannot be computed)."""
    classes: dict[str, str] = {}

    def content_hash(ref: OutputRef | ExternalArtifact) -> str:
        if isinstance(ref, ExternalArtifact):
            digest, data_type = ref.content_hash, ref.data_type
        else:
            digest, data_type = stored_output(ref)
        if data_type not in classes and (code := class_code(data_type)) is not None:
            classes[data_type] = code
        return digest

    def data_type_of(ref: OutputRef | ExternalArtifact) -> str:
        return ref.data_type if isinstance(ref, ExternalArtifact) else stored_output(ref)[1]

    by_content = Leaf("$hash", ARTIFACT_REFS, lambda ref: _by_content(ref, content_hash))
    files = {path: file_hash(path)[:16] for path in invocation.files}
    arguments = {}
    step = invocation.step
    for name, value in invocation.inputs.items():
        if isinstance(value, FileInput):  # its contents enter through `files`
            arguments[name] = f"file:{value}"
            continue
        if name in step.file_parameters:
            _check_no_stored_paths(name, value, data_type_of)
        arguments[name] = _token(canonical(value, by_content, recorded_name))  # files: above
    return KeyParts(
        code=step.code_hash,
        arguments=arguments,
        files=files,
        libraries=dict(libraries),
        extra=None if extra is None else _token(canonical(extra, None, recorded_name)),
        outputs=_outputs_of(step),
        classes=classes,
    )


# The data types of values that are, or may hold, paths (as `materializers.types` names them).
_MAY_HOLD_PATHS = frozenset(
    {f"builtins.{kind.__name__}" for kind in (str, list, tuple, dict, set, frozenset)}
    | {"pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath"}
    | {f"{FileInput.__module__}.{FileInput.__qualname__}"}
)


def _check_no_stored_paths(
    name: str, value: Any, data_type_of: Callable[[OutputRef | ExternalArtifact], str]
) -> None:
    """A parameter that takes files given a step's output (or an artifact) that is, or may
    hold, paths: they, and so the files, are known only where the step runs, while the key
    is made before. Keyed by the paths' content hash alone, a changed file was served the
    stale result: never a hit. (`FileInput | DataFrame` given a DataFrame is keyed by it.)"""
    for _, ref in leaves_of(value, ARTIFACT_REFS):
        if data_type_of(ref) not in _MAY_HOLD_PATHS:
            continue
        source = (
            f"the output of '{ref.invocation_id}'" if isinstance(ref, OutputRef) else "an artifact"
        )
        raise ValueError(
            f"argument '{name}' takes files (FileInput) but is given {source}: the files "
            "it names are known only when the step runs, so their contents cannot be part "
            "of its key and it runs every time. Pass the path itself (a literal, a pipeline "
            "parameter or FileInput(...) in the pipeline) for it to be cached."
        )


def same_key_format(a: str | None, b: str | None) -> bool:
    """Whether two keys are of one format, so that a difference means different inputs."""
    return (a or "").startswith(KEY_FORMAT) == (b or "").startswith(KEY_FORMAT)


def _by_content(
    ref: OutputRef | ExternalArtifact,
    content_hash: Callable[[OutputRef | ExternalArtifact], str],
) -> dict[str, Any]:
    """An artifact input as its content: a step output (item) or an external version."""
    if isinstance(ref, ExternalArtifact):
        return {"$hash": content_hash(ref), "index": None}
    if ref.stop is None:  # the key of an item (or whole output) as it always was
        return {"$hash": content_hash(ref), "index": ref.item}
    return {"$hash": content_hash(ref), "index": ref.item, "stop": ref.stop}


def _token(encoded: Any) -> str:
    """A readable token for a plain scalar, a short hash for anything else."""
    if type(encoded) in _READABLE or (type(encoded) is str and len(encoded) <= 40):
        return f"{type(encoded).__name__}:{encoded!r}"
    return "hash:" + hash_json(encoded)[:16]


@functools.lru_cache(maxsize=1024)
def _outputs_of(step: Step[Any, Any]) -> str:
    """What a step's outputs are and how they are stored: computed once per step."""
    return hash_json(
        [
            [
                spec.name,
                _type_text(spec.annotation),
                materializer_path(spec.materializer) if spec.materializer else None,
            ]
            for spec in step.outputs
        ]
    )[:16]


def _type_text(annotation: Any) -> str:
    """An output's annotation as text, a script's classes under `__main__` however the
    script was loaded (a resume loads it as `SCRIPT_MODULE`)."""
    return repr(annotation).replace(f"{SCRIPT_MODULE}.", "__main__.")
