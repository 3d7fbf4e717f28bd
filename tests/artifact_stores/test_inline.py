"""Small outputs are kept in the metadata store (`inline://` versions), bigger ones in the
artifact store; both load the same everywhere a user reads them: the next step (in a thread or
an isolated process), a cache hit, a resumed run, the Client, the CLI in another process."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from branchwork import Client
from branchwork.artifact_stores.inline import INLINE_LIMIT
from branchwork.cli.app import app
from branchwork.exceptions import ArtifactError
from branchwork.materializers import BuiltinMaterializer, load_artifact
from branchwork.materializers.registry import materializer_path
from processes import Spawned, python, python_env

SCRIPT = textwrap.dedent(
    """
    import enum, json, os, sys
    from branchwork import pipeline, step

    class Color(enum.Enum):
        RED = 1

    @step
    def small(i: int) -> int:
        return i * 10

    @step
    def text(chars: int) -> str:
        return "x" * chars

    @step
    def color() -> Color:
        return Color.RED

    @step(runtime="isolated")
    def isolated_total(values: list[int], edge: str, over: str) -> int:
        return sum(values) + len(edge) + len(over)

    @pipeline
    def inline_demo(n: int, fail_at: int = -1) -> int:
        values = [small(i) for i in range(n)]
        if fail_at >= 0:
            raise RuntimeError(f"stopped after {fail_at}")
        color()
        return isolated_total(values, text(EDGE), text(EDGE + 1))

    EDGE = int(sys.argv[1])
    print(json.dumps(inline_demo(n=4)))
    """
)


@pytest.fixture
def run_script(tmp_path):
    """Run the script in a real `python script.py` process on the store at tmp_path/home."""
    script = tmp_path / "inline_demo.py"
    script.write_text(SCRIPT)
    home = tmp_path / "home"

    def run() -> str:
        # a JSON string of EDGE chars is EDGE + 2 bytes: exactly the limit, one byte over
        with Spawned(python(str(script), str(INLINE_LIMIT - 2)), env=python_env(home)) as proc:
            code, out, err = proc.wait(timeout=120)
        assert code == 0, err
        return out

    return run, home


def artifact_folders(home: Path) -> set[str]:
    """The step/output folders of the local artifact store under `home`."""
    root = home / "artifacts"
    return {path.name for path in root.iterdir() if path.is_dir()}


def test_small_outputs_live_in_the_store_and_load_everywhere(run_script, monkeypatch):
    run, home = run_script
    out = run()
    edge = INLINE_LIMIT - 2
    assert json.loads(out.strip().splitlines()[-1]) == (0 + 10 + 20 + 30) + edge + edge + 1

    monkeypatch.setenv("BRANCHWORK_HOME", str(home))
    client = Client()
    versions = client.list_artifact_versions(pipeline="inline_demo")
    by_name: dict[str, list] = {}
    for version in versions:
        by_name.setdefault(version.name.split("::")[1], []).append(version)
    assert sorted(v.load() for v in by_name["small"]) == [0, 10, 20, 30]
    assert all(v.uri.startswith("inline://") for v in by_name["small"])
    assert all(v.uri == f"inline://{v.content_hash}" for v in by_name["small"])
    texts = sorted(by_name["text"], key=lambda v: len(v.load()))
    assert [len(v.load()) for v in texts] == [edge, edge + 1]
    at_limit, over_limit = texts
    assert at_limit.uri.startswith("inline://") and at_limit.inline_data is not None
    assert not over_limit.uri.startswith("inline://") and over_limit.inline_data is None
    assert Path(over_limit.uri, "data.json").stat().st_size == INLINE_LIMIT + 1
    # no folder per small output: only the one over the limit was written as a file
    assert artifact_folders(home) == {"text_output"}

    # the CLI, in this process and another: the value and where it is kept
    runner = CliRunner()
    loaded = runner.invoke(app, ["artifacts", "load", f"{by_name['small'][0].id}"])
    assert loaded.exit_code == 0, loaded.output
    assert loaded.output.strip() in {"0", "10", "20", "30"}
    with Spawned(
        python("-m", "branchwork.cli", "artifacts", "show", at_limit.id),
        env=python_env(home),
    ) as proc:
        code, shown, err = proc.wait(timeout=60)
    assert code == 0, err
    assert f"inline://{at_limit.content_hash}" in shown


def test_a_small_pickle_is_kept_inline_and_still_needs_consent_in_another_process(
    run_script, monkeypatch
):
    run, home = run_script
    run()
    monkeypatch.setenv("BRANCHWORK_HOME", str(home))
    (color,) = Client().list_artifact_versions(name="inline_demo::color::output")
    assert color.uri.startswith("inline://") and color.inline_data.startswith(b"data.pkl\0")
    with pytest.raises(ArtifactError, match="Refusing to unpickle the artifact at inline://"):
        color.load()
    assert color.load(allow_pickle=True).name == "RED"


def test_a_rerun_and_a_resume_read_inline_outputs_recorded_before(tmp_path, monkeypatch):
    """The cache hit's outputs and a resumed run's finished steps come from the rows."""
    script = tmp_path / "resumable.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            from branchwork import pipeline, step

            @step
            def small(i: int) -> int:
                return i + 100

            @step
            def total(values: list[int]) -> int:
                if os.environ.get("FAIL_TOTAL"):
                    raise RuntimeError("total fails this time")
                return sum(values)

            @pipeline
            def resumable(n: int) -> int:
                return total([small(i) for i in range(n)])

            print(resumable(n=3))
            """
        )
    )
    home = tmp_path / "home"
    with Spawned(python(str(script)), env=python_env(home, FAIL_TOTAL="1")) as proc:
        code, _, err = proc.wait(timeout=120)
    assert code != 0 and "total fails this time" in err

    monkeypatch.setenv("BRANCHWORK_HOME", str(home))
    failed = Client().list_pipeline_runs()[0]
    assert str(failed.status) == "failed"
    assert Client().resume_run(failed.id) == 303
    resumed = Client().get_pipeline_run(failed.id)
    assert str(resumed.status) == "completed"

    with Spawned(python(str(script)), env=python_env(home)) as proc:
        code, out, err = proc.wait(timeout=120)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "303"
    rerun = Client().list_pipeline_runs()[0]
    assert {str(s.status) for s in rerun.steps.values()} == {"cached"}
    assert not (home / "artifacts").exists() or artifact_folders(home) == set()


def test_loading_an_inline_uri_without_its_row_says_where_it_is():
    with pytest.raises(ArtifactError, match="stored in the metadata store") as caught:
        load_artifact("inline://" + "0" * 64, materializer_path(BuiltinMaterializer))
    assert "get_artifact_version" in str(caught.value)


def test_deleting_a_run_with_inline_outputs_removes_their_rows_and_reports_no_failure(
    run_script, monkeypatch
):
    run, home = run_script
    run()
    monkeypatch.setenv("BRANCHWORK_HOME", str(home))
    (run_row,) = Client().list_pipeline_runs()
    files = [v.uri for v in Client().list_artifact_versions(pipeline="inline_demo")]
    (file_uri,) = [uri for uri in files if not uri.startswith("inline://")]
    result = CliRunner().invoke(app, ["runs", "delete", run_row.id, "--yes", "--purge-artifacts"])
    assert result.exit_code == 0, result.output
    assert "Removed 1 artifact folders." in result.output  # the rest went with their rows
    assert Client().list_artifact_versions(pipeline="inline_demo") == []
    assert not os.path.exists(file_uri)  # the one output kept as a file is gone with it
