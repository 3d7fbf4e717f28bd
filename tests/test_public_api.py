"""The public surface is small, explicit and importable from its documented paths."""

import subprocess
import sys

import branchwork


def test_top_level_all_is_exactly_the_public_surface():
    assert sorted(branchwork.__all__) == [
        "ArtifactConfig",
        "Client",
        "ExternalArtifact",
        "FileInput",
        "PipelineHookContext",
        "__version__",
        "command_step",
        "get_step_context",
        "log_artifact_metadata",
        "log_metadata",
        "pipeline",
        "step",
        "unmapped",
        "wait",
    ]
    for name in branchwork.__all__:
        assert getattr(branchwork, name) is not None


def test_documented_import_paths():
    from branchwork.config import CachePolicy, ResourceSettings, StepRetryConfig
    from branchwork.materializers import BaseMaterializer
    from branchwork.models import (
        CacheDecision,
        PipelineRunResponse,
        PipelineSnapshotResponse,
        StepRunResponse,
    )
    from branchwork.orchestrators import BaseOrchestrator, LocalOrchestrator, SubmissionResult
    from branchwork.stack import Stack

    assert all(
        [
            CachePolicy,
            ResourceSettings,
            StepRetryConfig,
            BaseMaterializer,
            CacheDecision,
            PipelineRunResponse,
            PipelineSnapshotResponse,
            StepRunResponse,
            BaseOrchestrator,
            LocalOrchestrator,
            SubmissionResult,
            Stack,
        ]
    )


def test_import_branchwork_loads_no_heavy_library():
    code = (
        "import sys, branchwork; heavy = {'sqlalchemy', 'alembic', 'numpy', 'pandas', 'ray', "
        "'cloudpickle', 'fsspec'} & set(sys.modules); print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
