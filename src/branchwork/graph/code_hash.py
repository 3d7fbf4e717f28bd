"""Code fingerprints: a step's cache key follows the user's code its function reaches.

A hash of the step function's source alone went stale when a helper it calls changed (a
wrong result served from the cache) and missed when a comment changed. `fingerprint(func)`
hashes every piece of the user's own code the function reaches, each normalized:

- What is reached: the names the function's bytecode loads as globals (`LOAD_GLOBAL`,
  `LOAD_NAME`), in its own code object and in nested ones (lambdas, comprehensions, inner
  functions), resolved in `func.__globals__`; attribute chains on the user's modules
  (`helpers.normalize`: a global load followed by attribute loads, paired in the bytecode);
  what its body imports from the user's modules (`from lib import f`: `f`; `import lib`: all
  of `lib`'s functions and classes and its normalized source; such a module is imported to
  be read, as running the step would; a library's is not, nor its package); the user's
  functions and classes inside the values it reads (a registry `{"small": build_small}`, a
  list of classes); the classes its annotations name (it calls their methods on its
  arguments: `model: Model`, also as text under `from __future__ import annotations`); the
  values of the function's closure cells and its parameters' defaults; the names read in
  decorators and in a class body outside its
  methods (found in the source, as the piece's bytecode does not run what defines it: a
  field's default `lr: float = DEFAULT_LR` of a pydantic model, a dataclass's
  `field(default_factory=make)`); an instance's state where a bound method is read
  (`scale = Scaler(2).apply`); the implementations a `functools.singledispatch` function
  registered; for a class, its bases and metaclass, its members (what its methods,
  properties and cached properties load, its class-level values), the whole class being
  one piece. What these
  names hold is reached in turn, breadth first, each piece once (mutual recursion ends), at
  most `MAX_PIECES` pieces (beyond that the key stops following the code, and a warning says
  so). Bytecode rather than the AST finds the names because it tells a global from a local
  or a parameter of the same name, and works where there is no source.
- The user's own code: functions and classes of modules whose file is outside the standard
  library and site-packages/dist-packages (code without a file: a REPL, a notebook cell, an
  exec'd string, counts as the user's), and not branchwork's. Installed libraries enter a
  key only by their versions, when a step asks for it (`library_versions`); builtins never.
  Wrappers are followed to what they wrap (`__wrapped__`: a `Step`, `functools.wraps`).
- Normalized: a function or class hashes as its AST without docstrings, positions or
  comments, so only behaviour changes its hash. The source includes the decorator lines:
  the `@step(...)` line of a step is part of its code. Without source, the code objects'
  bytecode, names and constants are hashed instead. The AST and the bytecode differ
  between Python versions: a new Python version misses the cache once.
- Values the code reads (module constants, class attributes, closure cells): None, bools,
  ints, floats, strs, bytes and tuples, lists, dicts, sets and frozensets of them are hashed
  by value, as read when a run first takes the fingerprint (a module-level list a step
  appends to hashes differently once it grew); so are enum members, paths, dates, times,
  decimals, UUIDs, fractions, complex numbers, ranges and compiled regexes, and instances of
  the user's own classes (dataclasses, pydantic models, config objects) by their attributes,
  their class being reached too wherever the instance is (a registry of models, a config's
  field); namespaces (`args = parser.parse_args()`, SimpleNamespace) by their attributes;
  numpy arrays and pandas DataFrames, Series and indexes by
  their contents (not arrays or frames of Python objects, such as lists in cells); any
  other object (a logger, a client, a library's model) by its type's name alone, so an odd
  value never breaks a key.

Names in `parts` read "module:qualname"; a script loaded as another module by branchwork
(`user_code.SCRIPT_MODULE`) is named `__main__` as where it ran, so both give one digest.
The same script started otherwise (`import pipe`, `branchwork run pipe.py:p`) gets digests
of its own: the classes it defines are named after its module in the values it stored, and
another module's process could not load a value served from the other's cache.
A fingerprint is computed once per function object per run, and again after a notebook cell
runs (`user_code.code_generation`): a cell may redefine what a step reaches, and a script may
set a module's global (a sweep) or reload a module between two runs. A global the pipeline's
body sets between two calls of one run is not seen by the second. Each function's or class's
own source is read and hashed once per object and code object (IPython's %autoreload gives old
functions new code); what its names hold is looked up for every run.
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import dis
import functools
import hashlib
import importlib
import importlib.util
import inspect
import linecache
import logging
import os
import re
import sys
import textwrap
import threading
import typing
import weakref
from abc import ABC
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableSequence
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from functools import lru_cache
from pathlib import PurePath
from types import CodeType, FunctionType, GenericAlias, MethodType, ModuleType, SimpleNamespace
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

from branchwork.user_code import (
    _installed_roots,
    code_generation,
    recorded_module,
    recorded_name,
)
from branchwork.values import Leaf, canonical, hash_json

FINGERPRINT_FORMAT = "code-v1"  # in every digest: a change of what is hashed changes them all
MAX_PIECES = 2000
NOT_INSTALLED = "not installed"

logger = logging.getLogger("branchwork")

Reference = tuple[str, Any]  # a name for what the code reads, and the value it reads

_NAME_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_ATTR_LOADS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_MAX_WRAPPERS = 100
_LIBRARY_FOLDERS = frozenset({"site-packages", "dist-packages"})


class CodeFingerprint(NamedTuple):
    """`digest` hashes all `parts`; `parts` names each piece of code or value reached
    ("helpers:normalize") with a short hash of it, to say what changed between two runs."""

    digest: str
    parts: dict[str, str]


def changed_parts(now: Mapping[str, str], before: Mapping[str, str]) -> list[str]:
    """The names of the parts two fingerprints of one function hash otherwise, sorted."""
    return sorted(name for name in now.keys() | before.keys() if now.get(name) != before.get(name))


def fingerprint(func: Callable[..., object]) -> CodeFingerprint:
    """The fingerprint of `func` and the user's code it reaches, computed once per function
    object in a process (a `Step` and its function share one) and `code_generation()`."""
    _forget_older_code()
    return _once(_fingerprints, _unwrap(func), _compute)


def class_digest(cls: Any) -> str | None:
    """The digest of `cls` and the code it reaches when it is the user's class, else None (a
    library's enters keys by its version, when a step asks): a step runs the methods of the
    values it receives, which no name in its own code reaches."""
    if not isinstance(cls, type) or not _is_user_code(cls):
        return None
    return fingerprint(cls).digest


def library_versions(names: Iterable[str]) -> dict[str, str]:
    """The installed version of each library, by its distribution name ("scikit-learn") or
    its import name ("sklearn"); "not installed" for one that is not."""
    return {name: _version_of(name) for name in names}


@lru_cache(maxsize=256)
def _version_of(name: str) -> str:
    from importlib import metadata

    for distribution in (name, *_distributions_of(name)):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return NOT_INSTALLED


def _distributions_of(import_name: str) -> list[str]:
    """The distributions that install the top-level package `import_name`."""
    from importlib import metadata

    return list(metadata.packages_distributions().get(import_name, ()))


class _Piece(NamedTuple):
    """A function or class, hashed once per process: its name and hash, the values it reads
    (named and hashed), and the user's functions and classes it reaches, weakly referenced
    (a cached piece keeps no other alive)."""

    label: str
    digest: str
    values: dict[str, str]
    reaches: tuple[weakref.ref[Any], ...]


T = TypeVar("T")
_fingerprints: weakref.WeakKeyDictionary[Any, CodeFingerprint] = weakref.WeakKeyDictionary()
_pieces: weakref.WeakKeyDictionary[Any, _Piece] = weakref.WeakKeyDictionary()
# piece -> (the code objects it ran, its digest, what defines it): see _code_of
_sources: weakref.WeakKeyDictionary[Any, tuple[tuple[CodeType, ...], str, list[ast.AST]]] = (
    weakref.WeakKeyDictionary()
)
# by function: its code object and the parameters whose default its source spells literally
_literals: weakref.WeakKeyDictionary[Any, tuple[CodeType, frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)


_generation = [(0, 0)]  # the code_generation() the caches hold pieces of


def _forget_older_code() -> None:
    """A notebook cell run again may redefine a helper that a step defined in another cell
    reaches, and a script may set a module's global or reload a module between two runs:
    hash the code again (once per cell run and per run) rather than serve the old digests."""
    generation = code_generation()
    if generation != _generation[0]:
        _fingerprints.clear()
        _pieces.clear()
        _generation[0] = generation


def _once(cache: weakref.WeakKeyDictionary[Any, T], key: Any, compute: Callable[[Any], T]) -> T:
    try:
        return cache[key]
    except KeyError:
        found = cache[key] = compute(key)
        return found
    except TypeError:  # neither hashable nor weakly referenceable: not kept
        return compute(key)


def _compute(root: Any) -> CodeFingerprint:
    """Breadth first over the pieces reached from `root`, each once (recursion ends)."""
    parts: dict[str, str] = {}
    queue: deque[Any] = deque()
    if _is_code(root):
        queue.append(root)
    else:  # a callable object
        name = getattr(root, "__qualname__", type(root).__qualname__)
        _sort(_label(getattr(root, "__module__", None), name), root, parts, queue)
    seen = {id(code): code for code in queue}
    while queue:
        if len(parts) >= MAX_PIECES:
            _stop(root, parts)
            break
        piece = _once(_pieces, queue.popleft(), _hash_piece)
        _add(parts, piece.label, piece.digest)
        for label, digest in piece.values.items():
            if parts.setdefault(label, digest) != digest:
                # Another piece's value of one name: `make_scaler(2)` and `make_scaler(3)`
                # both hold a closure cell `scale.<closure>.k` (a stale hit kept only one).
                _add(parts, label, digest)
        for reference in piece.reaches:
            code = reference()
            if code is not None and id(code) not in seen:
                seen[id(code)] = code
                queue.append(code)
    return CodeFingerprint(hash_json({"format": FINGERPRINT_FORMAT, "parts": parts}), parts)


def _hash_piece(code: Any) -> _Piece:
    digest, defining = _code_of(code)
    values: dict[str, str] = {}
    reaches: list[Any] = []
    if _is_user_code(code):  # a library's function as a step: nothing of the library around
        for label, value in _references(code, defining):
            _sort(label, value, values, reaches)
    label = _label(code.__module__, code.__qualname__)
    refs = tuple(weakref.ref(each) for each in reaches)
    return _Piece(label, digest, values, refs)


def _code_of(piece: Any) -> tuple[str, list[ast.AST]]:
    """A piece's own digest and what its source evaluates to define it. From its source,
    once per object and code it runs (what its names hold is looked up again for each run:
    `_forget_older_code`); IPython's %autoreload puts a module's new code into its old
    functions, which `_code_objects_of` tells. Without source, its bytecode and constants,
    each time (a class's constants are its attributes, which may be set again)."""
    code = _code_objects_of(piece)
    with contextlib.suppress(KeyError, TypeError):  # TypeError: not weakly referenced
        known = _sources[piece]
        if known[0] == code:
            return known[1], known[2]
    source = _read_source(piece)
    if source is None:
        return _piece_hash(piece, None), []
    digest = _piece_hash(piece, source)
    with contextlib.suppress(TypeError):
        _sources[piece] = (code, digest, source.defining)
    return digest, source.defining


def _code_objects_of(piece: Any) -> tuple[CodeType, ...]:
    """The code objects a function runs, or those of a class's own methods."""
    if isinstance(piece, type):
        functions = [f for member in vars(piece).values() for f in _functions_of(member)]
    else:
        functions = [piece]
    return tuple(
        f.__code__ for f in functions if isinstance(getattr(f, "__code__", None), CodeType)
    )


def _sort(label: str, value: Any, values: dict[str, str], reaches: MutableSequence[Any]) -> None:
    """Where a value the code reads goes: the user's code into `reaches`, other values
    into `values` by their hash (and their class into `reaches` if it is the user's)."""
    reaches.extend(f for f in _dispatched(value) if _is_user_code(f))
    if isinstance(value, MethodType):  # `Scaler(2).apply`: what it runs on is read too
        _sort(f"{label}.__self__", value.__self__, values, reaches)
    value = _unwrap(value)
    if isinstance(value, ModuleType):
        return  # its attributes the code reads are references of their own
    if _is_code(value):
        if _is_user_code(value):
            reaches.append(value)
        return
    if label not in values:
        inside: list[Any] = []  # the user's functions and classes the value holds
        values[label] = _short(hash_json(_value_json(value, inside)))
        reaches.extend(sorted(inside, key=_code_order))  # the same order in every process
    if _is_user_code(type(value)):
        reaches.append(type(value))


def _code_order(code: Any) -> tuple[str, int, str]:
    """Name, line and bytecode: lambdas of one line in a set still sort the same way."""
    compiled = getattr(code, "__code__", None)
    if not isinstance(compiled, CodeType):
        return _label(getattr(code, "__module__", None), code.__qualname__), 0, ""
    label = _label(getattr(code, "__module__", None), code.__qualname__)
    return label, compiled.co_firstlineno, hash_json(_code_json(compiled))


def _add(parts: dict[str, str], label: str, digest: str) -> None:
    """A piece of code; two of one name (lambdas of a module) get numbered names."""
    unique, number = label, 1
    while unique in parts:
        number += 1
        unique = f"{label}#{number}"
    parts[unique] = digest


def _stop(root: Any, parts: dict[str, str]) -> None:
    parts["<more pieces than MAX_PIECES>"] = str(MAX_PIECES)
    logger.warning(
        "The cache key of %s covers only the first %d pieces of code it reaches (nearest "
        "first): edits further away do not invalidate its cache. Pass what it needs as "
        "parameters or disable its cache (enable_cache=False) if they matter.",
        getattr(root, "__qualname__", repr(root)),
        MAX_PIECES,
    )


# ---- what a piece of code reaches ----------------------------------------------------------


def _references(piece: Any, defining: list[ast.AST]) -> Iterator[Reference]:
    if isinstance(piece, type):
        yield from _class_references(piece)
        namespace = _module_namespace(piece.__module__)
    else:
        yield from _function_references(piece)
        namespace = getattr(piece, "__globals__", {})
    yield from _definition_references(defining, namespace)


def _function_references(func: Any) -> Iterator[Reference]:
    code = getattr(func, "__code__", None)
    if not isinstance(code, CodeType):
        return
    namespace = getattr(func, "__globals__", {})
    for each in _code_objects(code):
        for chain in _global_chains(each):
            found = _resolve(chain, namespace)
            if found is not None:
                yield found
        for module_name, level, names in _imports_in(each):
            yield from _imported(module_name, level, names, namespace.get("__package__"))
    for annotation in getattr(func, "__annotations__", {}).values():
        yield from _annotated(annotation, namespace)
    yield from _defaults(func, code)
    cells = getattr(func, "__closure__", None) or ()
    for name, cell in zip(code.co_freevars, cells):
        try:
            value = cell.cell_contents
        except ValueError:  # a cell not filled yet
            continue
        yield _label(func.__module__, f"{func.__qualname__}.<closure>.{name}"), value


def _defaults(func: Any, code: CodeType) -> Iterator[Reference]:
    """Its parameters' default values that its source does not spell out: `def scaled(x,
    k=SCALE)` reads SCALE when it is defined, not in its own bytecode, and an edited SCALE
    served a stale result. A literal default (`k=3`, `memo={}`) is in the hashed source:
    not hashed again by value (a memo filled by calls would change the key)."""
    positional = code.co_varnames[: code.co_argcount]
    defaults = getattr(func, "__defaults__", None) or ()
    keyword = getattr(func, "__kwdefaults__", None) or {}
    pairs = [*zip(positional[len(positional) - len(defaults) :], defaults), *keyword.items()]
    if not pairs:
        return
    literal = _literal_defaults(func)
    for name, value in pairs:
        if name not in literal:
            yield _label(func.__module__, f"{func.__qualname__}.<default>.{name}"), value


def _literal_defaults(func: Any) -> frozenset[str]:
    """The parameters whose default the function's source spells as a literal (none without
    source), once per function and code object."""
    with contextlib.suppress(KeyError, TypeError):
        known = _literals[func]
        if known[0] is func.__code__:
            return known[1]
    source = _read_source(func)
    node = (
        next(
            (
                n
                for n in ast.walk(source.tree)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            ),
            None,
        )
        if source is not None
        else None
    )
    names: set[str] = set()
    if node is not None:
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        given = zip(positional[len(positional) - len(args.defaults) :], args.defaults)
        for arg, default in [*given, *zip(args.kwonlyargs, args.kw_defaults)]:
            if default is not None and _is_literal(default):
                names.add(arg.arg)
    found = frozenset(names)
    with contextlib.suppress(TypeError):
        _literals[func] = (func.__code__, found)
    return found


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _annotated(annotation: Any, namespace: dict[str, Any]) -> Iterator[Reference]:
    """The classes an annotation names (`model: Model`, `list[Model]`, `Optional["Model"]`,
    or as text under `from __future__ import annotations`): the function runs their methods
    through its arguments, which its bytecode loads as attributes of locals, not by name.
    `Literal` values and `Annotated` metadata name nothing."""
    if isinstance(annotation, typing.ForwardRef):
        annotation = annotation.__forward_arg__
    if isinstance(annotation, str):
        try:
            tree = ast.parse(annotation, mode="eval")
        except SyntaxError:
            return
        yield from _names_in(tree, namespace)
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        arguments = arguments[:1]
    generic = getattr(annotation, "__pydantic_generic_metadata__", None) or {}
    if generic.get("origin") is not None:  # `Page[Item]`: a class pydantic makes, no source
        annotation, arguments = generic["origin"], generic["args"]
    if isinstance(annotation, type) and not isinstance(annotation, GenericAlias):
        yield _label(annotation.__module__, annotation.__qualname__), annotation
    for argument in arguments:
        yield from _annotated(argument, namespace)


def _class_references(cls: type) -> Iterator[Reference]:
    for base in (*cls.__bases__, type(cls)):
        yield _label(base.__module__, base.__qualname__), base
    for name, member in vars(cls).items():
        label = _label(cls.__module__, f"{cls.__qualname__}.{name}")
        functions = _functions_of(member)
        for function in functions:
            if not function.__qualname__.startswith(f"{cls.__qualname__}."):
                yield label, function  # assigned from elsewhere: a piece of its own
            elif _written_in_class(function, cls):
                yield from _function_references(function)  # its source is the class's
        if not functions and not (name.startswith("_") and name.endswith("_")):
            yield label, member  # a class-level value; internals (__doc__, _member_map_) not


def _written_in_class(method: Any, cls: type) -> bool:
    """Whether a method of the class is in the class's source, not generated from it by a
    library (a dataclass's __init__: compiled from a string in a module that has a file)."""
    if not _is_user_code(method):
        return False
    filename = getattr(getattr(method, "__code__", None), "co_filename", None)
    in_a_file = isinstance(filename, str) and os.path.isfile(filename)
    return in_a_file or getattr(sys.modules.get(cls.__module__), "__file__", None) is None


def _functions_of(member: Any) -> list[Any]:
    """The functions a class member holds: a method, a static/class method, a property's,
    a cached property's, a singledispatchmethod's implementations."""
    if isinstance(member, FunctionType):
        return [member]
    if isinstance(member, (staticmethod, classmethod)):
        return [member.__func__]
    if isinstance(member, property):
        return [f for f in (member.fget, member.fset, member.fdel) if f is not None]
    if isinstance(member, functools.cached_property):
        return [member.func]
    if isinstance(member, functools.singledispatchmethod):
        return [f for f in _dispatched(member) if isinstance(f, FunctionType)]
    return []


def _definition_references(
    defining: list[ast.AST], namespace: dict[str, Any]
) -> Iterator[Reference]:
    """What the source that defines a piece names (its decorators, a class body's
    statements): the code defining the piece runs it, not the piece's own bytecode."""
    for node in defining:
        yield from _names_in(node, namespace)


def _names_in(tree: ast.AST, namespace: dict[str, Any]) -> Iterator[Reference]:
    """What the names and dotted names a piece of source reads resolve to in `namespace` (a
    class attribute `data = ...` does not read a module global `data`)."""
    for node in ast.walk(tree):
        if not isinstance(getattr(node, "ctx", ast.Load()), ast.Load):
            continue
        chain = _dotted(node)
        found = _resolve(chain, namespace) if chain else None
        if found is not None:
            yield found


def _dotted(node: ast.AST) -> list[str] | None:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else [*head, node.attr]
    return None


def _code_objects(code: CodeType) -> Iterator[CodeType]:
    yield code
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield from _code_objects(constant)


def _global_chains(code: CodeType) -> Iterator[list[str]]:
    """Each global name the code loads, with the attribute names loaded right after it:
    `helpers.normalize(x)` is ["helpers", "normalize"]."""
    chain: list[str] = []
    for instruction in dis.get_instructions(code):
        if chain and instruction.opname in _ATTR_LOADS:
            chain.append(instruction.argval)
            continue
        if chain:
            yield chain
        chain = [instruction.argval] if instruction.opname in _NAME_LOADS else []
    if chain:
        yield chain


def _imports_in(code: CodeType) -> Iterator[tuple[str, int, tuple[str, ...]]]:
    """(module, level, names) of each import in the code itself: `from lib import feature`
    in a step's body is ("lib", 0, ("feature",)); `import lib` is ("lib", 0, ())."""
    constants: list[Any] = [None, None]
    for instruction in dis.get_instructions(code):
        if instruction.opname == "IMPORT_NAME":
            level, names = constants[-2], constants[-1]
            yield instruction.argval, level if isinstance(level, int) else 0, tuple(names or ())
        constants.append(instruction.argval if instruction.opname == "LOAD_CONST" else None)
        del constants[0]


def _imported(
    module_name: str, level: int, names: tuple[str, ...], package: Any
) -> Iterator[Reference]:
    """What an import in a function's body brings from the user's own modules: the names it
    takes (`from lib import feature`: `feature`, followed as any global is), or, for a whole
    module (`import lib`, whose attributes the code reads from a local name), every function
    and class defined in it and its source. Such a module is imported to be read, as running
    the step would import it: a step importing its helper lazily was served a stale result
    when the helper changed. Libraries enter keys only by their versions, as everywhere."""
    module = _user_module(module_name, level, package)
    if module is None:
        return
    for name in names if names and "*" not in names else ():
        value = vars(module).get(name)
        if value is None:  # a submodule not imported yet: `from pkg import helpers`
            value = _user_module(f"{module.__name__}.{name}", 0, None)
        if isinstance(value, ModuleType):
            yield from _whole_module(value)
        elif value is not None:
            yield _label(module.__name__, name), value
    if not names or "*" in names:
        yield from _whole_module(module)


def _user_module(module_name: str, level: int, package: Any) -> ModuleType | None:
    """The user's module an import names, imported; None for a library's, or one that
    cannot be found or imported (the step's own run reports that)."""
    try:
        name = importlib.util.resolve_name("." * level + module_name, package)
        # The top package first: finding `torch.nn` would import `torch`, a library's.
        for found in dict.fromkeys((name.partition(".")[0], name)):
            spec = importlib.util.find_spec(found)
            if spec is None or not _is_user_location(found, spec.origin):
                return None
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - not found, or its import failed: nothing to follow
        return None


def _whole_module(module: ModuleType) -> Iterator[Reference]:
    """A module a function imports whole: its functions and classes, and its source (its
    constants are read through it) without comments, docstrings or formatting."""
    if not _is_user_code(module):
        return
    try:
        tree: ast.AST | None = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):  # no source to read
        tree = None
    if tree is not None:
        _strip_docstrings(tree)
        normalized = ast.dump(tree, annotate_fields=False, include_attributes=False)
        yield _label(module.__name__, "<source>"), normalized
    for name, value in vars(module).items():
        if _is_code(value) and getattr(value, "__module__", None) == module.__name__:
            yield _label(module.__name__, name), value


def _resolve(chain: list[str], namespace: dict[str, Any]) -> Reference | None:
    """The value a chain names in a module namespace, following attributes of the user's
    modules only (read from their `__dict__`: a module's `__getattr__` never runs)."""
    head, *attributes = chain
    if head not in namespace:
        return None  # a builtin, or a name not defined (yet)
    label, value = _label(namespace.get("__name__"), head), namespace[head]
    for attribute in attributes:
        if not (isinstance(value, ModuleType) and _is_user_code(value)):
            break
        if attribute not in vars(value):
            break
        label, value = _label(value.__name__, attribute), vars(value)[attribute]
    return label, value


def _module_namespace(module_name: str) -> dict[str, Any]:
    module = sys.modules.get(module_name)
    return vars(module) if module is not None else {}


# ---- whose code it is ----------------------------------------------------------------------


def _is_code(value: Any) -> bool:
    return isinstance(value, (FunctionType, type))


def _unwrap(value: Any) -> Any:
    """What a bound method, a `Step` or a `functools.wraps` wrapper stands for."""
    for _ in range(_MAX_WRAPPERS):
        if isinstance(value, MethodType):
            value = value.__func__
            continue
        if isinstance(value, (type, ModuleType)):
            return value
        try:
            wrapped = vars(value).get("__wrapped__")
        except Exception:  # no __dict__, or one that cannot be read
            return value
        if wrapped is None:
            return value
        value = wrapped
    return value


def _dispatched(value: Any) -> list[Any]:
    """The implementations a `functools.singledispatch` function (or method) registered, in
    the order they were: `_unwrap` reaches only the base function it wraps, and an edited
    `@double.register` implementation served a stale result."""
    if isinstance(value, functools.singledispatchmethod):
        value = value.dispatcher
    if not isinstance(value, FunctionType):  # its attributes are plain: reading runs no code
        return []
    registry = getattr(value, "registry", None)
    if not isinstance(registry, Mapping) or not callable(getattr(value, "dispatch", None)):
        return []
    return [_unwrap(function) for function in registry.values()]


def is_user_module(name: str) -> bool:
    """Whether module `name` is the user's own code, told from its top-level package's
    location, found without importing anything."""
    top = name.partition(".")[0]
    if top in sys.modules:
        return _is_user_code(sys.modules[top])
    import importlib.util

    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    origin = None if spec is None else spec.origin
    return isinstance(origin, str) and os.path.isfile(origin) and _is_user_location(top, origin)


def _is_user_code(value: Any) -> bool:
    """Whether a function, class or module is the user's own code (module docstring)."""
    if isinstance(value, ModuleType):
        module_name: Any = value.__name__
        filename = getattr(value, "__file__", None)
    else:
        module_name = getattr(value, "__module__", None)
        code = getattr(value, "__code__", None)
        filename = code.co_filename if isinstance(code, CodeType) else None
    return _is_user_location(
        module_name if isinstance(module_name, str) else None,
        filename if isinstance(filename, str) else None,
    )


@lru_cache(maxsize=4096)
def _is_user_location(module_name: str | None, filename: str | None) -> bool:
    if module_name is not None and module_name.partition(".")[0] in ("branchwork", "builtins"):
        return False
    if filename is not None and os.path.isfile(filename):
        return not _is_installed(filename)
    if module_name == "__main__":
        # A notebook cell or a REPL, or code sent by value from one to another process,
        # whose own __main__ (an installed runner or Ray worker) says nothing about it.
        return True
    module = sys.modules.get(module_name) if module_name is not None else None
    module_file = getattr(module, "__file__", None)
    if isinstance(module_file, str):
        return not _is_installed(module_file)
    origin = getattr(getattr(module, "__spec__", None), "origin", None)
    return module_name not in sys.builtin_module_names and origin not in ("built-in", "frozen")


def _is_installed(path: str) -> bool:
    real = os.path.realpath(path)
    if real.startswith(_installed_roots()):
        return True
    return not _LIBRARY_FOLDERS.isdisjoint(real.split(os.sep))


def _label(module_name: Any, name: str) -> str:
    module = module_name if isinstance(module_name, str) else "?"
    return f"{recorded_module(module)}:{name}"


# ---- hashing one piece ---------------------------------------------------------------------


class _Source(NamedTuple):
    """A piece's source as hashed: its AST without docstrings, and what defines it (its
    decorators, a class body's statements outside its methods)."""

    tree: ast.AST
    defining: list[ast.AST]


def _read_source(piece: Any) -> _Source | None:
    """None without (parsable) source."""
    if _source_elsewhere(piece):
        return None
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(piece)))
    except (OSError, TypeError, IndexError, SyntaxError):
        return None
    return _Source(tree, _strip_docstrings(tree))


def _strip_docstrings(tree: ast.AST) -> list[ast.AST]:
    """Take the docstrings out of `tree`, in place; returns what defines the pieces in it:
    decorators, and a class body's statements but its methods (one walk: it is most of
    the cost of a new step)."""
    defining: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, _WITH_DOCSTRING):
            if node.body and _is_docstring(node.body[0]):
                node.body = node.body[1:]
            if not isinstance(node, ast.Module):
                defining.extend(node.decorator_list)
            if isinstance(node, ast.ClassDef):
                defining.extend(s for s in node.body if not isinstance(s, _WITH_DOCSTRING))
    return defining


def _source_elsewhere(piece: Any) -> bool:
    """Whether `inspect` would read a piece of `__main__` from the wrong program: code from
    a notebook cell (whose source IPython keeps in `linecache`) sent by value to a process
    whose `__main__` is a script (a Ray worker) would get that script's lines."""
    if getattr(piece, "__module__", None) != "__main__":
        return False
    code = getattr(piece, "__code__", None)
    if isinstance(code, CodeType):
        return code.co_filename not in linecache.cache and not os.path.isfile(code.co_filename)
    holder: Any = sys.modules.get("__main__")  # a class: found by its name in its module
    for name in str(getattr(piece, "__qualname__", "")).split("."):
        holder = getattr(holder, name, None)
    return holder is not piece


_WITH_DOCSTRING = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _piece_hash(piece: Any, source: _Source | None) -> str:
    if source is not None:
        return _short(ast.dump(source.tree, annotate_fields=False, include_attributes=False))
    return _short(hash_json(_compiled_json(piece)))


def _compiled_json(piece: Any) -> Any:
    """What a piece without source is made of: its bytecode, names and constants."""
    code = getattr(piece, "__code__", None)
    if isinstance(code, CodeType):
        return _code_json(code)
    if isinstance(piece, type):
        return [
            [name, [_compiled_json(f) for f in _functions_of(member)] or _value_json(member)]
            for name, member in vars(piece).items()
            if name != "__doc__"
        ]
    return _value_json(piece)


def _code_json(code: CodeType) -> Any:
    constants = [
        _code_json(constant) if isinstance(constant, CodeType) else _value_json(constant)
        for constant in code.co_consts
    ]
    return [code.co_code.hex(), list(code.co_names), constants]


def _value_json(value: Any, inside: list[Any] | None = None) -> Any:
    """A value by its contents as far as they are plain (module docstring), else by its
    type's name: an odd value never breaks a key. The user's functions and classes it holds
    — a registry `{"small": build_small}`, a list of classes, at any depth — stand in it by
    name and are added to `inside`, to be hashed as pieces of their own: held in a value,
    they were hashed by their type's name only, and a step dispatching through such a
    registry was served a stale result when one of them changed."""
    try:
        return _canonical(value, _more_values(inside))
    except Exception:  # noqa: BLE001 - whatever an odd value raises (a tzinfo without offset)
        return _type_json(value)


def _canonical(value: Any, more: Leaf) -> Any:
    """`values.canonical`, a script's classes named as where it ran (`__main__`)."""
    return canonical(value, more, recorded_name)


def _more_values(inside: list[Any] | None) -> Leaf:
    return Leaf("$more", _NotPlain, functools.partial(_more_json, inside=inside))


def _more_json(value: Any, inside: list[Any] | None) -> Any:
    """What a value that is not a plain JSON value stands for in a fingerprint."""
    more = _more_values(inside)
    if inside is not None and _is_user_code(type(value)):
        # An instance anywhere in the value (`MODELS = {"small": Model()}`, a config's
        # field) runs its class's methods: they were not followed, and served stale results.
        inside.append(type(value))
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, (set, frozenset)):
        items = sorted(hash_json(_canonical(item, more)) for item in value)
        return {f"${type(value).__name__}": items}  # in a fixed order
    if isinstance(value, Enum):
        return {**_type_json(value), "value": _canonical(value.value, more)}
    if isinstance(value, _BY_REPR):  # a path, a date, a number: what it holds, as text
        # (a date or time by isoformat: a tzinfo's repr may hold an address, not its offset)
        text = value.isoformat() if isinstance(value, _CLOCK) else repr(value)
        state = _state_of(value)  # a subclass of the user's, with attributes of its own
        extra = {"state": _canonical(state, more)} if state else {}
        return {**_type_json(value), "value": text, **extra}
    if isinstance(value, re.Pattern):
        return {**_type_json(value), "value": repr(value.pattern), "flags": value.flags}
    code = _unwrap(value)
    if _is_code(code):
        if inside is not None and _is_user_code(code):
            inside.append(code)
        named = {"$code": _label(getattr(code, "__module__", None), code.__qualname__)}
        owner = getattr(value, "__self__", None) if isinstance(value, MethodType) else None
        if owner is not None and id(owner) not in _encoding.ids:  # `Scaler(2).apply`
            return {**named, "self": _canonical(owner, more)}  # (not an instance's own
        return named  # methods in its state: `self.handlers = {"a": self.do_a}`)
    data = _data_digest(value)
    if data is not None:
        return {**_type_json(value), "data": data}
    state = _state_of(value)
    if state is None:
        return _type_json(value)
    _encoding.ids.add(id(value))
    try:
        return {**_type_json(value), "state": _canonical(state, more)}
    finally:
        _encoding.ids.discard(id(value))


class _Encoding(threading.local):
    """The instances whose state this thread is encoding (`_more_json`)."""

    def __init__(self) -> None:
        self.ids: set[int] = set()


_encoding = _Encoding()


def _data_digest(value: Any) -> str | None:
    """The contents of a numpy array or a pandas object, hashed: a lookup table or weights
    in a module global are data, and one edited must change the key (a stale result was
    served). None for anything else, and for arrays of Python objects."""
    library = type(value).__module__.partition(".")[0]
    if library == "numpy" and hasattr(value, "tobytes") and hasattr(value, "dtype"):
        if value.dtype.hasobject:
            return None
        import numpy

        array = numpy.ascontiguousarray(value)
        mask = numpy.ma.getmask(value)  # a masked array's mask is part of what it holds
        masked = b"" if mask is numpy.ma.nomask else numpy.asarray(mask).tobytes()
        shape = f"{array.dtype!r}{array.shape}".encode()  # a structured dtype's fields too
        return hashlib.sha256(shape + array.tobytes() + masked).hexdigest()[:16]
    if library == "pandas":
        import pandas

        if not isinstance(value, (pandas.DataFrame, pandas.Series, pandas.Index)):
            return None
        try:
            rows = pandas.util.hash_pandas_object(value, index=True).to_numpy().tobytes()
        except TypeError:  # cells that are not hashable (lists, dicts)
            return None
        # the index's names too: `hash_pandas_object` hashes its values alone
        names = list(getattr(value, "index", value).names)
        if isinstance(value, pandas.DataFrame):
            columns = [str(kind) for kind in value.dtypes]
            described = repr((list(value.columns), columns, names, list(value.columns.names)))
        else:
            described = repr((value.name, str(value.dtype), names))
        return hashlib.sha256(described.encode() + rows).hexdigest()[:16]
    return None


def _state_of(value: Any) -> dict[str, Any] | None:
    """The attributes of an instance of the user's own class (a dataclass, a pydantic model,
    a config object) or of a namespace (`args = parser.parse_args()`, a SimpleNamespace):
    editing `CONFIG = Config(lr=0.1)` or passing `--lr 0.5` changes the key. Other objects
    (a logger, a client, a model loaded from disk) have no state here."""
    if isinstance(value, _namespaces()):
        return dict(vars(value))
    if not _is_user_code(type(value)):
        return None
    try:
        return dict(vars(value))
    except TypeError:  # __slots__ only
        names = [name for cls in type(value).__mro__ for name in getattr(cls, "__slots__", ())]
        return {name: getattr(value, name) for name in names if hasattr(value, name)}


def _namespaces() -> tuple[type, ...]:
    """SimpleNamespace, and argparse's Namespace once a program imported argparse (before,
    no value can be one)."""
    argparse = sys.modules.get("argparse")
    return (SimpleNamespace, argparse.Namespace) if argparse is not None else (SimpleNamespace,)


def _type_json(value: Any) -> dict[str, str]:
    kind = type(value)
    return {"$type": f"{kind.__module__}.{kind.__qualname__}"}


# Standard library values whose repr says all they hold: a field `data: Path` of a config
# dataclass was keyed by its type alone, and an edited path served a stale result.
_CLOCK = (datetime.date, datetime.time)  # a datetime is a date
_BY_REPR = (
    PurePath,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    Decimal,
    UUID,
    Fraction,
    complex,
    range,
)


class _NotPlain(ABC):  # noqa: B024 - a type for isinstance only, by its __subclasshook__
    """Matches the types `values.canonical` has no form of (all but None, bools, ints,
    floats, strs, lists, tuples and dicts), so they are encoded by `_more_json`."""

    @classmethod
    def __subclasshook__(cls, kind: type) -> bool:
        return not issubclass(kind, _PLAIN)


_PLAIN = (type(None), bool, int, float, str, list, tuple, dict)


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
