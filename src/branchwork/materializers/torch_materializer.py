"""PyTorch tensors, state_dicts and modules as safetensors. Imported by the registry only
once torch is loaded.

- A tensor (or `nn.Parameter`) keeps its dtype, shape, values and `requires_grad`; it loads
  on the CPU, contiguous, sharing storage with nothing.
- A state_dict (a dict or OrderedDict of str -> tensor, claimed from the built-in dict
  materializer) keeps its container type, key order and, per tensor, what a tensor keeps
  (`dict(model.named_parameters())` loads as Parameters that require grad); tensors that
  shared storage (tied weights, views of one tensor) load as separate copies.
- A module is stored as its state_dict plus its class ("module:QualName") in `module.json`;
  loading imports the class, builds it with no arguments and loads the state_dict into it
  (the constructor makes the structure and ties weights, the file gives the values). Saving
  checks that this gives the same weights (keys, shapes, dtypes); a module it would not
  give back (a constructor that needs arguments, an `nn.Sequential`, a model cast to half)
  is pickled, with a warning: return `model.state_dict()` to store such a model safely.

Tensors safetensors cannot hold (sparse, quantized, complex128, subclasses) are pickled,
with a warning.

safetensors writes a big file itself (`save_file`, straight from the tensors' memory, which
another thread hashes meanwhile: the file's header is known beforehand) and, from a local
store, loads it as its `load_file` does: mapped into memory, each tensor reading its values
when first used. Artifact files never change in place, and the mapping is private:
writing to a loaded tensor changes only this process's copy. A small file, or one in a remote
store, is read whole (one request) and its tensors copied out of it.
"""

from __future__ import annotations

import ctypes
import importlib
import inspect
import json
import struct
import sys
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, ClassVar

import safetensors
import safetensors.torch
import torch

from branchwork.exceptions import ArtifactError
from branchwork.materializers.base import (
    BIG_FILE_SIZE,
    BaseMaterializer,
    StoredFile,
    type_name,
)
from branchwork.materializers.cloudpickle_materializer import (
    PICKLE_FILE,
    load_pickle,
    save_pickled,
)
from branchwork.materializers.preview import Preview
from branchwork.materializers.registry import materializer_path
from branchwork.materializers.table_preview import json_number

TENSOR_FILE = "tensor.safetensors"
STATE_DICT_FILE = "state_dict.safetensors"
MODULE_FILE = "module.json"  # beside STATE_DICT_FILE: the class to rebuild
TENSOR_KEY = "tensor"
METADATA_KEY = "branchwork"  # one key: safetensors writes several in a random order
PREVIEW_KEYS = 40  # state_dict entries listed in a preview
# Values a preview's min/max/mean are computed from: a bigger tensor's evenly spaced ones, whose
# count the preview gives as `stats_values` (all 25 million of a 100 MB tensor took 8-16 ms).
STATS_VALUES = 100_000

_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)  # exact types; other subclasses pickle
_SAFETENSORS_DTYPES = frozenset(
    {
        *(torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex64),
        *(torch.float8_e4m3fn, torch.float8_e5m2, torch.bool),
        *(torch.int64, torch.int32, torch.int16, torch.int8),
        *(torch.uint64, torch.uint32, torch.uint16, torch.uint8),
    }
)
_STATS_DTYPES = frozenset({torch.float64, torch.float32, torch.float16, torch.bfloat16})


class TorchMaterializer(BaseMaterializer):
    """`torch.Tensor`, `torch.nn.Module` and state_dicts (dicts of str -> tensor)."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (torch.Tensor, torch.nn.Module)
    CLAIMED_TYPES: ClassVar[tuple[type, ...]] = (dict, OrderedDict)
    HASH_FROM_WRITES = True

    @classmethod
    def claims(cls, value: Any) -> bool:
        """A non-empty dict whose keys are str and values tensors: a state_dict."""
        return bool(value) and all(
            type(key) is str and type(tensor) in _TENSOR_TYPES for key, tensor in value.items()
        )

    def save(self, data: Any) -> None:
        if isinstance(data, torch.nn.Module):
            self._save_module(data)
        elif isinstance(data, torch.Tensor):
            self._save_tensor(data)
        else:
            self._save_state_dict(data)

    def load(self, data_type: type) -> Any:
        stored = self._find_first(TENSOR_FILE, MODULE_FILE, STATE_DICT_FILE, PICKLE_FILE)
        if stored.name == TENSOR_FILE:
            return _tensor_from(stored)
        if stored.name == MODULE_FILE:
            return _module_from(json.loads(stored.read()), self._find_first(STATE_DICT_FILE))
        if stored.name == STATE_DICT_FILE:
            return _state_dict_from(stored)
        return load_pickle(stored.read())

    def preview(self, data: Any) -> Preview:
        if isinstance(data, torch.nn.Module):
            return _module_preview(data)
        if isinstance(data, torch.Tensor):
            summary = _tensor_summary(data)
            return Preview(text=f"tensor {summary['shape']} {summary['dtype']}", metadata=summary)
        return _state_dict_preview(data)

    def _save_tensor(self, tensor: torch.Tensor) -> None:
        problem = _unstorable(tensor)
        if problem is not None:
            save_pickled(self, tensor, f" {problem}")
            return
        self._write_safetensors(TENSOR_FILE, {TENSOR_KEY: tensor}, _kind_of(tensor))

    def _save_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        problem = _first_unstorable(state_dict)
        if problem is not None:
            save_pickled(self, state_dict, f" holding a value {problem}")
            return
        # The container (dict or OrderedDict), the key order and the tensors that are not plain
        # (Parameters, requiring grad), which safetensors does not keep.
        metadata: dict[str, Any] = {
            "container": type(state_dict).__name__,
            "keys": list(state_dict),
        }
        kinds = {k: kind for k, v in state_dict.items() if (kind := _kind_of(v)) != _PLAIN}
        if kinds:  # absent otherwise: a plain state_dict's file (and hash) stays as it was
            metadata["kinds"] = kinds
        self._write_safetensors(STATE_DICT_FILE, state_dict, metadata)

    def _save_module(self, module: torch.nn.Module) -> None:
        state_dict = module.state_dict()
        unstorable = _first_unstorable(state_dict)
        if unstorable is not None:
            problem: str | None = f"its state_dict holds a value {unstorable}"
        else:
            problem = _rebuild_problem(type(module), state_dict)
        if problem is not None:
            save_pickled(
                self,
                module,
                f" whose model cannot be rebuilt ({problem}; return "
                "model.state_dict() to store the weights as safetensors)",
            )
            return
        self._save_state_dict(state_dict)
        spec = {"class": materializer_path(type(module)), "training": module.training}
        self._write_bytes(MODULE_FILE, json.dumps(spec).encode())

    def _write_safetensors(
        self, filename: str, tensors: Mapping[str, torch.Tensor], metadata: dict[str, Any]
    ) -> None:
        """Small tensors as bytes built in memory (cheaper than safetensors writing a file);
        big ones written by safetensors straight from their memory into the file."""
        storable = _storable(tensors)
        header = {METADATA_KEY: json.dumps(metadata)}
        if sum(tensor.nbytes for tensor in storable.values()) < BIG_FILE_SIZE:
            self._write_bytes(filename, safetensors.torch.save(storable, header))
            return
        with self._write_path(filename, _file_content(storable, header)) as path:
            safetensors.torch.save_file(storable, path, header)


def _unstorable(value: Any) -> str | None:
    """Why safetensors cannot hold `value` ("with dtype torch.complex128"), or None."""
    if type(value) not in _TENSOR_TYPES:  # a subclass, or a module's extra state
        return f"of type {type_name(type(value))}"
    if value.layout is not torch.strided:
        return f"with layout {value.layout}"
    if value.dtype not in _SAFETENSORS_DTYPES:
        return f"with dtype {value.dtype}"
    return None


def _first_unstorable(state_dict: Mapping[str, Any]) -> str | None:
    return next(filter(None, map(_unstorable, state_dict.values())), None)


def _storable(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`tensors` made contiguous and each given storage of its own (safetensors refuses
    tensors that share storage: tied weights, views of one tensor)."""
    seen: set[tuple[torch.device, int]] = set()
    storable: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach()
        storage = (tensor.device, tensor.untyped_storage().data_ptr())
        if storage in seen or not tensor.is_contiguous():
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        seen.add(storage)
        storable[name] = tensor
    return storable


def _file_content(tensors: Mapping[str, torch.Tensor], header: dict[str, str]) -> list[Any]:
    """What `save_file(tensors, path, header)` will write, for `_write_path` to hash while
    safetensors writes it: the header (laid out in safetensors' order of the tensors, found by
    saving them empty) and each tensor's memory, which safetensors copies as it is. Nothing
    for tensors off the CPU or on a big-endian machine, which safetensors converts: the file
    is then hashed once written."""
    if sys.byteorder != "little" or any(tensor.device.type != "cpu" for tensor in tensors.values()):
        return []
    empty = {name: torch.empty(0, dtype=tensor.dtype) for name, tensor in tensors.items()}
    layout = _header(safetensors.torch.save(empty, header))
    names = [name for name in layout if name != "__metadata__"]
    offset = 0
    for name in names:
        size = tensors[name].nbytes
        layout[name].update(shape=list(tensors[name].shape), data_offsets=[offset, offset + size])
        offset += size
    text = json.dumps(layout, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # safetensors aligns the data on 8 bytes
    return [struct.pack("<Q", len(text)) + text, *(_memory(tensors[name]) for name in names)]


def _memory(tensor: torch.Tensor) -> Any:
    """The bytes of a contiguous CPU tensor as safetensors reads them: not copied, valid while
    the tensor lives."""
    if not tensor.nbytes:
        return b""
    return (ctypes.c_ubyte * tensor.nbytes).from_address(tensor.data_ptr())


def _read_safetensors(stored: StoredFile) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors in a safetensors file and the metadata `_write_safetensors` gave it."""
    if stored.path is not None:
        with safetensors.safe_open(stored.path, framework="pt") as file:
            tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 (not a dict)
            header = file.metadata()
    else:
        tensors = safetensors.torch.load(stored.content)
        header = _header(stored.content)["__metadata__"]
    metadata: dict[str, Any] = json.loads(header[METADATA_KEY])
    return tensors, metadata


def _header(data: bytes) -> dict[str, Any]:
    """A safetensors file's header: the file starts with its size (8 bytes, little-endian),
    then the header in JSON."""
    (header_size,) = struct.unpack_from("<Q", data)
    header: dict[str, Any] = json.loads(data[8 : 8 + header_size])
    return header


_PLAIN = {"class": "Tensor", "requires_grad": False}


def _kind_of(tensor: torch.Tensor) -> dict[str, Any]:
    """What a tensor is beyond its values, which safetensors does not keep."""
    return {"class": type(tensor).__name__, "requires_grad": tensor.requires_grad}


def _as_kind(tensor: torch.Tensor, kind: dict[str, Any]) -> torch.Tensor:
    requires_grad: bool = kind["requires_grad"]
    if kind["class"] == "Parameter":
        return torch.nn.Parameter(tensor, requires_grad=requires_grad)
    return tensor.requires_grad_(requires_grad)


def _tensor_from(stored: StoredFile) -> torch.Tensor:
    tensors, metadata = _read_safetensors(stored)
    return _as_kind(tensors[TENSOR_KEY], metadata)


def _state_dict_from(stored: StoredFile) -> dict[str, torch.Tensor]:
    tensors, metadata = _read_safetensors(stored)
    container = OrderedDict if metadata["container"] == "OrderedDict" else dict
    kinds = metadata.get("kinds", {})
    return container((k, _as_kind(tensors[k], kinds.get(k, _PLAIN))) for k in metadata["keys"])


def _module_from(spec: dict[str, Any], state_dict_file: StoredFile) -> torch.nn.Module:
    path = spec["class"]
    try:
        module_class = _import_class(path)
    except Exception as exc:
        raise ArtifactError(
            f"Cannot import the model class {path} this torch module was saved from: make "
            f"its module importable ({exc!r})."
        ) from exc
    problem = _constructor_problem(module_class)
    if problem is None:
        module: torch.nn.Module = module_class()
        state_dict = _state_dict_from(state_dict_file)
        problem = _layout_difference(module_class, module.state_dict(), state_dict)
    if problem is not None:
        raise ArtifactError(
            f"Cannot rebuild the torch module {path}: {problem}. Return `model.state_dict()` "
            "from the step instead (stored as safetensors) and build the model where it is "
            "loaded."
        )
    module.load_state_dict(state_dict)
    return module.train(spec["training"])


def _rebuild_problem(module_class: type, state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Why importing `module_class` by name and calling it with no arguments would not give
    a model `state_dict` fits (same keys, shapes and dtypes), or None.

    The model is built on the meta device: no memory for its weights, no initialisation."""
    path = materializer_path(module_class)
    try:
        importable = _import_class(path) is module_class
    except Exception:
        importable = False
    if not importable:
        return f"its class {path} cannot be imported by that name"
    problem = _constructor_problem(module_class)
    if problem is not None:
        return problem
    try:
        with torch.device("meta"):
            built = module_class()
    except Exception as exc:
        return f"{module_class.__qualname__}() fails: {exc!r}"
    return _layout_difference(module_class, built.state_dict(), state_dict)


def _constructor_problem(module_class: type) -> str | None:
    try:
        parameters = inspect.signature(module_class).parameters.values()
    except ValueError:  # no signature to read: let the call decide
        return None
    required = [
        parameter.name
        for parameter in parameters
        if parameter.default is parameter.empty
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
    if required:
        return f"{module_class.__qualname__}() needs arguments ({', '.join(required)})"
    return None


def _layout_difference(
    module_class: type, built: Mapping[str, torch.Tensor], saved: Mapping[str, torch.Tensor]
) -> str | None:
    """The first weight of `saved` that `built` (what `module_class()` gives) lacks or holds
    with another shape or dtype, as text; None when the two match."""
    built_layout, saved_layout = _layout(built), _layout(saved)
    for key in saved_layout | built_layout:
        if built_layout.get(key) != saved_layout.get(key):
            return (
                f"{module_class.__qualname__}() makes weight {key!r} "
                f"{built_layout.get(key, 'absent')}, the saved model has it "
                f"{saved_layout.get(key, 'absent')}"
            )
    return None


def _layout(state_dict: Mapping[str, torch.Tensor]) -> dict[str, str]:
    return {key: _shape_and_dtype(tensor) for key, tensor in state_dict.items()}


def _shape_and_dtype(tensor: torch.Tensor) -> str:
    return f"{list(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"


def _import_class(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    found: Any = importlib.import_module(module_name)
    for attribute in qualname.split("."):
        found = getattr(found, attribute)
    return found


def _tensor_summary(tensor: torch.Tensor) -> dict[str, Any]:
    """Shape, dtype, size and, for float tensors, min/max/mean (of STATS_VALUES evenly spaced
    values of a bigger tensor)."""
    summary: dict[str, Any] = {
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype).removeprefix("torch."),
        "numel": tensor.numel(),
        "device": str(tensor.device),
    }
    if tensor.dtype in _STATS_DTYPES and tensor.numel() and tensor.layout is torch.strided:
        values = tensor.detach()
        if values.numel() > STATS_VALUES:
            step = -(-values.numel() // STATS_VALUES)
            indices = torch.arange(0, values.numel(), step, device=values.device)
            values = torch.take(values, indices)  # any strides, only these values read
            summary["stats_values"] = values.numel()
        low, high = torch.aminmax(values)
        # float16/bfloat16 summed in float32; float64 would cost a copy of a float32 tensor
        mean = values.mean(dtype=torch.promote_types(values.dtype, torch.float32))
        summary.update(min=json_number(low), max=json_number(high), mean=json_number(mean))
    return summary


def _state_dict_preview(state_dict: Mapping[str, torch.Tensor]) -> Preview:
    listed = {
        key: _shape_and_dtype(tensor) for key, tensor in list(state_dict.items())[:PREVIEW_KEYS]
    }
    metadata: dict[str, Any] = {
        "tensors": len(state_dict),
        "numel": sum(tensor.numel() for tensor in state_dict.values()),
        "keys": listed,
    }
    text = "\n".join(f"{key}: {shape}" for key, shape in listed.items())
    if len(state_dict) > PREVIEW_KEYS:
        text += f"\n... {len(state_dict) - PREVIEW_KEYS} more"
    return Preview(text=text, metadata=metadata)


def _module_preview(module: torch.nn.Module) -> Preview:
    parameters = list(module.parameters())  # each shared parameter once
    metadata = {
        "class": materializer_path(type(module)),
        "parameters": sum(parameter.numel() for parameter in parameters),
        "trainable": sum(parameter.numel() for parameter in parameters if parameter.requires_grad),
        "training": module.training,
    }
    return Preview(text=repr(module), metadata=metadata)
