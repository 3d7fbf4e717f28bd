"""Test support for branchwork plugins: `OrchestratorConformance`, the suite every orchestrator
inherits (see `branchwork.testing.conformance`), and the pipelines it runs
(`branchwork.testing.pipelines`).

An isolated orchestrator imports `branchwork.testing.pipelines` in every step process, so this
package needs pytest only when pytest is already running: then it asks pytest to rewrite the
suite's asserts (before the suite is imported), so a failing check shows the values compared.
`OrchestratorConformance` itself is imported on first use.
"""

import sys
from typing import TYPE_CHECKING, Any

if "pytest" in sys.modules:
    sys.modules["pytest"].register_assert_rewrite("branchwork.testing.conformance")

if TYPE_CHECKING:
    from branchwork.testing.conformance import OrchestratorConformance

__all__ = ["OrchestratorConformance"]


def __getattr__(name: str) -> Any:
    if name == "OrchestratorConformance":
        from branchwork.testing.conformance import OrchestratorConformance

        return OrchestratorConformance
    raise AttributeError(f"module 'branchwork.testing' has no attribute {name!r}")
