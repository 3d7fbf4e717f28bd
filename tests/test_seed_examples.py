"""Every example of the seed page, run from `examples/` with only the import changed."""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from branchwork import Client
from branchwork.exceptions import PipelineRunFailedError, StepInvocationError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"seed_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_static_pipeline(capsys):
    example = load_example("static_pipeline")
    assert example.static_pipeline() is None
    assert "Saved 200 records" in capsys.readouterr().out
    run = example.static_pipeline.last_run
    assert run.status == "completed" and run.snapshot.is_dynamic is False
    assert list(run.snapshot.step_configurations) == ["load_data", "process_data", "save_results"]
    steps = run.steps
    assert steps["process_data"].output.load() == {"processed": 200}
    assert steps["save_results"].outputs == {}
    assert steps["save_results"].parent_step_run_ids == (steps["process_data"].id,)


def test_dynamic_pipeline_with_resources_runs_large_batches_on_a_small_machine(caplog):
    example = load_example("runtime_branching")
    with caplog.at_level(logging.WARNING, "branchwork"):
        results = example.dynamic_pipeline()
    assert results == [{"batch": i, "processed": True} for i in range(10)]
    run = example.dynamic_pipeline.last_run
    assert run.snapshot.is_dynamic is True
    assert sorted(run.steps) == sorted(
        ["check_data_size", "process_large_batch"]
        + [f"process_large_batch_{i}" for i in range(2, 11)]
    )
    assert any(
        "process_large_batch" in r.getMessage()
        and "it runs once no other step holds resources" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize(
    ("quality", "expected_steps"),
    [("0.9", ["analyze_data", "process_data"])],
)
def test_conditional_branching_ready_path(monkeypatch, quality, expected_steps):
    monkeypatch.setenv("DATA_QUALITY", quality)
    example = load_example("conditional_branching")
    assert example.adaptive_pipeline() == {"processed": True}
    run = example.adaptive_pipeline.last_run
    assert list(run.steps) == expected_steps
    assert run.steps["process_data"].configuration.config["inputs"] == {"data": {"status": "ready"}}


@pytest.mark.parametrize(
    ("quality", "missing_step"), [("0.3", "clean_data"), ("0.6", "validate_data")]
)
def test_conditional_branching_seed_bug_gives_the_missing_argument_error(
    monkeypatch, quality, missing_step
):
    monkeypatch.setenv("DATA_QUALITY", quality)
    example = load_example("conditional_branching")
    with pytest.raises(PipelineRunFailedError) as info:
        example.adaptive_pipeline.with_options(enable_cache=False)()
    cause = info.value.__cause__
    assert isinstance(cause, StepInvocationError)
    assert f"step '{missing_step}'" in str(cause) and "'data'" in str(cause)
    assert "missing a required argument" in str(cause)
    run = Client().get_pipeline_run(info.value.run_id)
    assert run.status == "failed"
    assert run.steps["analyze_data"].status == "completed"
    assert run.exception_type == "StepInvocationError"


def test_dynamic_parallelism_fans_out_over_the_runtime_count():
    example = load_example("dynamic_parallelism")
    assert example.dynamic_parallel_pipeline() == {"total_processed": 80_000}
    run = example.dynamic_parallel_pipeline.last_run
    partitions = [s for s in run.steps.values() if s.step_name == "process_partition"]
    assert len(partitions) == 8
    merge = run.steps["merge_results"]
    assert set(merge.parent_step_run_ids) == {p.id for p in partitions}
    assert [merge.inputs[f"results[{i}]"].id for i in range(8)] == [
        run.steps["process_partition" + ("" if i == 0 else f"_{i + 1}")].output.id for i in range(8)
    ]


@pytest.mark.parametrize(("gpu", "method"), [(True, "gpu"), (False, "cpu")])
def test_external_input_chooses_the_branch_from_the_config(tmp_path, monkeypatch, gpu, method):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"gpu_available": gpu}))
    monkeypatch.setenv("CONFIG_FILE", str(config))
    example = load_example("external_input")
    result = example.external_config_pipeline.with_options(enable_cache=False)()
    assert result == {"method": method, "result": {"gpu_available": gpu}}


def test_the_seed_testing_pattern_passes_under_pytest(branchwork_home):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(EXAMPLES / "test_dynamic_pipelines.py"),
        ],
        capture_output=True,
        text=True,
        cwd=branchwork_home.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_examples_run_as_scripts(branchwork_home):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "dynamic_parallelism.py")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "{'total_processed': 80000}" in done.stdout
    assert "10 steps" in done.stdout
