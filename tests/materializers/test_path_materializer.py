"""`pathlib.Path` outputs: the file or folder is copied into the artifact store and loaded
back as a local copy of this process, reused while unchanged."""

import json
from pathlib import Path

import pytest

from branchwork import pipeline, step
from branchwork.exceptions import ArtifactError
from branchwork.materializers import load_artifact
from branchwork.materializers.path_materializer import PathMaterializer
from branchwork.materializers.registry import materializer_path


def write_tree(root: Path) -> Path:
    """A model folder: files at two depths, a binary file and an empty folder."""
    (root / "weights").mkdir(parents=True)
    (root / "config.json").write_text('{"layers": 3}\n')
    (root / "weights" / "part-0.bin").write_bytes(bytes(range(256)) * 8)
    (root / "weights" / "part-1.bin").write_bytes(b"\x00\x01")
    (root / "logs").mkdir()
    return root


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `root`, by relative path."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes() if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


def test_a_folder_round_trips_into_a_local_copy(round_trip, tmp_path, branchwork_home):
    folder = write_tree(tmp_path / "model")
    result = round_trip(folder)
    assert result.materializer is PathMaterializer
    assert result.warnings == []
    assert result.files == [
        "files/model/config.json",
        "files/model/weights/part-0.bin",
        "files/model/weights/part-1.bin",
        "path.json",
    ]
    loaded = result.loaded
    assert isinstance(loaded, Path) and loaded.name == "model" and loaded.is_dir()
    assert loaded.is_relative_to(branchwork_home / "cache" / "paths")  # not the store's files
    assert tree(loaded) == tree(folder)  # the empty folder `logs` included

    assert result.preview == {
        "text": "model/config.json\nmodel/weights/part-0.bin\nmodel/weights/part-1.bin",
        "metadata": {"name": "model", "kind": "folder", "files": 3, "size": 14 + 2048 + 2},
    }
    assert round_trip(write_tree(tmp_path / "again" / "model")).content_hash == (
        result.content_hash
    )


def test_a_file_round_trips_with_its_name_and_first_lines(round_trip, tmp_path):
    report = tmp_path / "report.csv"
    report.write_text("".join(f"row,{i}\n" for i in range(100)))
    result = round_trip(report)
    assert result.files == ["files/report.csv", "path.json"]
    assert result.loaded.name == "report.csv"
    assert result.loaded.read_bytes() == report.read_bytes()
    assert result.preview["metadata"] == {"name": "report.csv", "kind": "file", "size": 690}
    assert result.preview["text"].splitlines() == [f"row,{i}" for i in range(20)]

    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\xff" * 10)
    assert round_trip(binary).preview["text"] == ""


def test_loading_again_reuses_the_copy_until_it_is_changed(round_trip, tmp_path, artifact_store):
    result = round_trip(write_tree(tmp_path / "model"))
    path = materializer_path(PathMaterializer)

    def load() -> Path:
        return load_artifact(result.uri, path, Path, store=artifact_store)

    copy = load()
    inode = (copy / "config.json").stat().st_ino
    assert load() == copy
    assert (copy / "config.json").stat().st_ino == inode  # not copied again

    (copy / "config.json").write_text("edited by a step")
    (copy / "logs" / "new.txt").write_text("added")
    assert tree(load()) == tree(tmp_path / "model")  # the changed copy was replaced


def test_a_path_that_does_not_exist_is_an_error_saying_what_to_return(round_trip, tmp_path):
    with pytest.raises(ArtifactError) as refused:
        round_trip(tmp_path / "missing.txt")
    assert (
        f"The Path output '{tmp_path / 'missing.txt'}' names no file or folder: return the path "
        "of a file or folder the step wrote."
    ) in str(refused.value)


@step
def export(folder: str) -> Path:
    return write_tree(Path(folder) / "model")


@step(runtime="isolated")  # a forked step process finds the copy the same way
def read_config(model: Path) -> str:
    return (model / "config.json").read_text().strip()


@pipeline(enable_cache=False)
def exported(folder: str):
    return read_config(export(folder))


def test_paths_travel_between_steps_of_a_run(tmp_path):
    assert exported(str(tmp_path / "out")) == '{"layers": 3}'
    output = exported.last_run.steps["export"].output
    assert output.materializer.endswith(":PathMaterializer")
    assert tree(output.load()) == tree(tmp_path / "out" / "model")
    assert output.preview["metadata"]["files"] == 3


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def modes(root: Path) -> dict[str, int]:
    """The permission bits of every file under `root`, by relative path."""
    return {
        path.relative_to(root).as_posix(): mode(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_files_come_back_with_their_permission_bits(round_trip, tmp_path):
    folder = write_tree(tmp_path / "tools")
    (folder / "run.sh").write_text("#!/bin/sh\necho hi\n")
    for name, bits in [
        ("run.sh", 0o755),
        ("config.json", 0o444),
        ("weights/part-0.bin", 0o600),
        ("weights/part-1.bin", 0o640),
    ]:
        (folder / name).chmod(bits)
    loaded = round_trip(folder).loaded
    assert tree(loaded) == tree(folder)
    assert (
        modes(loaded)
        == modes(folder)
        == {
            "config.json": 0o444,
            "run.sh": 0o755,
            "weights/part-0.bin": 0o600,
            "weights/part-1.bin": 0o640,
        }
    )

    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o750)
    assert mode(round_trip(script).loaded) == 0o750


def test_a_changed_mode_alone_is_new_content_and_a_copy_of_its_own(round_trip, tmp_path):
    """Same bytes, another mode: a step may run one and not the other, so the content hash
    (which downstream cache keys use) differs, and each loads with its own mode."""
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    plain = round_trip(script)
    script.chmod(0o755)
    executable = round_trip(script)
    assert plain.content_hash != executable.content_hash
    assert (mode(plain.loaded), mode(executable.loaded)) == (0o644, 0o755)
    assert plain.loaded != executable.loaded


def test_a_copy_whose_mode_was_changed_is_replaced(round_trip, tmp_path, artifact_store):
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    result = round_trip(script)
    result.loaded.chmod(0o644)  # by a step, after loading it
    again = load_artifact(
        result.uri, materializer_path(PathMaterializer), Path, store=artifact_store
    )
    assert again == result.loaded and mode(again) == 0o755


def test_an_artifact_saved_before_modes_were_kept_still_loads(round_trip, tmp_path, artifact_store):
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")
    result = round_trip(script)
    manifest_uri = artifact_store.join(result.uri, "path.json")
    manifest = json.loads(artifact_store.read_bytes(manifest_uri))
    del manifest["modes"]
    artifact_store.write_bytes(manifest_uri, json.dumps(manifest, sort_keys=True).encode())
    loaded = load_artifact(
        result.uri, materializer_path(PathMaterializer), Path, store=artifact_store
    )
    assert loaded.read_bytes() == script.read_bytes()
