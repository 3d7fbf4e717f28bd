"""A folder given as `FileInput`: every file the step can read under it enters its key."""

from __future__ import annotations

import os
from pathlib import Path

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
