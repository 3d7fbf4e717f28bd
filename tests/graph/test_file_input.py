"""A folder given as `FileInput`: every file the step can read under it enters its key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import pytest

from branchwork import FileInput, pipeline, step
from branchwork.graph.file_input import content_hash


@step
def joined(folder: FileInput) -> str:
    texts = []
    for root, folders, names in os.walk(folder, followlinks=True):
        folders.sort()
        texts += [Path(root, name).read_text() for name in sorted(names)]
    return ",".join(texts)


@pipeline
def reading(folder: str):
    return joined(FileInput(folder))


def test_files_under_a_linked_folder_are_keyed_as_the_step_reads_them(tmp_path: Path):
    """`data/latest -> ../real`: a changed file under the link was a stale hit."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "v.txt").write_text("1")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "latest").symlink_to(tmp_path / "real", target_is_directory=True)
    folder = str(tmp_path / "data")
    assert reading(folder) == "1"
    assert reading(folder) == "1"
    assert reading.last_run.steps["joined"].status == "cached"
    (tmp_path / "real" / "v.txt").write_text("2")
    assert reading(folder) == "2"
    assert reading.last_run.steps["joined"].status == "completed"


def test_a_link_back_to_a_parent_folder_is_walked_once(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.txt").write_text("x")
    (tmp_path / "a" / "up").symlink_to(tmp_path, target_is_directory=True)
    before = content_hash(str(tmp_path))
    (tmp_path / "a" / "f.txt").write_text("y")
    assert content_hash(str(tmp_path)) != before


def test_files_whose_bytes_join_alike_hash_apart(tmp_path: Path):
    """Names and contents used to be hashed back to back (`name\\0bytes`): a file holding
    what looks like the next file's name hashed like two files."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "a").write_bytes(b"x" + b"b\0" + b"y")
    (two / "a").write_bytes(b"x")
    (two / "b").write_bytes(b"y")
    assert content_hash(str(one)) != content_hash(str(two))


def test_an_empty_folder_and_an_empty_file_hash_apart(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.txt").write_bytes(b"")
    assert content_hash(str(tmp_path / "empty")) != content_hash(str(tmp_path / "empty.txt"))


def test_an_unreadable_path_is_an_os_error(tmp_path: Path):
    with pytest.raises(OSError):
        content_hash(str(tmp_path / "missing.csv"))


@step
def read_optional(path: FileInput | None = None) -> str:
    return Path(path).read_text() if path else ""


@step
def read_list(paths: list[FileInput]) -> str:
    return ",".join(Path(p).read_text() for p in paths)


@step
def read_named(paths: dict[str, Optional[FileInput]], pair: tuple[FileInput, int]) -> str:  # noqa: UP045 - typing.Optional as users write it
    return ",".join(Path(p).read_text() for p in [*paths.values(), pair[0]] if p)


@step
def pick(path: str) -> str:
    return path


@step
def read_picked(path: FileInput) -> str:
    return Path(path).read_text()


@pipeline
def shapes(path: str):
    return (
        read_optional(path),
        read_list([path]),
        read_named({"a": path}, (path, 1)),
        read_picked(pick(path)),
    )


def test_paths_in_optional_list_dict_and_tuple_parameters_are_keyed_by_their_files(
    tmp_path: Path,
):
    """`FileInput | None`, `list[FileInput]`, `dict[str, Optional[FileInput]]` and
    `tuple[FileInput, int]` given plain paths: a changed file was served the stale result.
    A file parameter given a step's output cannot be keyed by its file: never a hit."""
    data = tmp_path / "data.txt"
    data.write_text("one")
    assert shapes(path=str(data)) == ("one", "one", "one,one", "one")
    data.write_text("two")
    assert shapes(path=str(data)) == ("two", "two", "two,two", "two")
    steps = shapes.last_run.steps
    verdicts = {name: (str(s.status), s.cache_verdict) for name, s in steps.items()}
    assert verdicts == {
        "read_optional": ("completed", "miss"),
        "read_list": ("completed", "miss"),
        "read_named": ("completed", "miss"),
        "pick": ("cached", "hit"),
        "read_picked": ("completed", "key_failed"),
    }
    assert steps["read_picked"].cache_reason == (
        "its cache key could not be computed: ValueError: argument 'path' takes files "
        "(FileInput) but is given the output of 'pick': the files it names are known only "
        "when the step runs, so their contents cannot be part of its key and it runs every "
        "time. Pass the path itself (a literal, a pipeline parameter or FileInput(...) in the "
        "pipeline) for it to be cached."
    )
    assert shapes(path=str(data)) == ("two", "two", "two,two", "two")
    assert str(shapes.last_run.steps["read_list"].status) == "cached"


@step
def counted() -> int:
    return 6


@step
def total(source: FileInput | int) -> int:
    return source if isinstance(source, int) else len(Path(source).read_text())


@pipeline
def summed():
    return total(counted())


def test_a_file_parameter_given_an_output_that_holds_no_paths_is_keyed_by_it():
    """Every output given to a parameter naming FileInput missed: `FileInput | int` given an
    int is keyed by its content as any output."""
    assert summed() == 6
    assert summed() == 6
    assert summed.last_run.steps["total"].cache_verdict == "hit"
