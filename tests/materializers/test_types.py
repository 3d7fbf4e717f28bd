"""A value's recorded type ("module.QualName") and the class it names back."""

from __future__ import annotations

import sys
import types
from collections import OrderedDict
from typing import Any

import pytest

from branchwork.materializers.types import resolve_type, type_path
from branchwork.user_code import SCRIPT_MODULE


class Outer:
    class Inner:
        pass


def test_a_nested_class_resolves_through_its_module():
    assert type_path(Outer.Inner()) == f"{__name__}.Outer.Inner"
    assert resolve_type(f"{__name__}.Outer.Inner") is Outer.Inner
    assert resolve_type("collections.OrderedDict") is OrderedDict


def test_what_cannot_be_imported_resolves_to_any():
    assert resolve_type("no_such_module_here.Thing") is Any
    assert resolve_type(f"{__name__}.Outer.Missing") is Any


@pytest.fixture
def script_loaded_elsewhere():
    """A script loaded as a resume loads it: under SCRIPT_MODULE, not `__main__`."""
    module = types.ModuleType(SCRIPT_MODULE)
    exec("class Settings:\n    pass\n", module.__dict__)
    sys.modules[SCRIPT_MODULE] = module
    yield module
    del sys.modules[SCRIPT_MODULE]


def test_a_scripts_class_is_recorded_under_main_and_found_where_the_script_was_loaded(
    script_loaded_elsewhere,
):
    assert type_path(script_loaded_elsewhere.Settings()) == "__main__.Settings"
    assert resolve_type("__main__.Settings") is script_loaded_elsewhere.Settings
    exec("class Settings:\n    pass\n", script_loaded_elsewhere.__dict__)  # loaded again
    assert resolve_type("__main__.Settings") is script_loaded_elsewhere.Settings  # not cached
