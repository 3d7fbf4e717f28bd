"""Test support for branchwork plugins: `OrchestratorConformance`, the suite every orchestrator
inherits (see `branchwork.testing.conformance`), and the pipelines it runs
(`branchwork.testing.pipelines`).

`OrchestratorConformance` is imported on first use: an isolated orchestrator imports
`branchwork.testing.pipelines` in every step process, which must not need pytest.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from branchwork.testing.conformance import OrchestratorConformance

__all__ = ["OrchestratorConformance"]


def __getattr__(name: str) -> Any:
    if name == "OrchestratorConformance":
        from branchwork.testing.conformance import OrchestratorConformance

        return OrchestratorConformance
    raise AttributeError(f"module 'branchwork.testing' has no attribute {name!r}")
