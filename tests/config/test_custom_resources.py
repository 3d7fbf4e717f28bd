"""`ResourceSettings.custom_resources`: resources a cluster's nodes declare (`{"node_b": 1}`),
checked when written, recorded only when given, and compared node by node before a step
is sent to Ray (no Ray needed here: `ClusterResources` is plain data)."""

from __future__ import annotations

import re

import pytest

from branchwork.config import ResourceSettings
from branchwork.exceptions import ConfigurationError
from branchwork.orchestrators.ray_cluster import ClusterResources, Demand, demand_for, task_options


@pytest.mark.parametrize(
    ("custom", "message"),
    [
        ([("node_b", 1)], "custom_resources must be a dict of name to amount"),
        ({"": 1}, "custom_resources: names must be non-empty strings, got ''"),
        ({"CPU": 1}, "custom_resources['CPU']: use cpu_count, gpu_count or memory"),
        ({"node_b": -1}, "custom_resources['node_b'] must be a non-negative number, got -1"),
        ({"node_b": "one"}, "custom_resources['node_b'] must be a non-negative number"),
    ],
)
def test_wrong_custom_resources_are_refused_naming_the_field(custom, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        ResourceSettings(custom_resources=custom)


def test_custom_resources_are_copied_and_recorded_only_when_given():
    asked = {"node_b": 1}
    settings = ResourceSettings(cpu_count=1, custom_resources=asked)
    asked["node_b"] = 5  # the caller's dict changing later changes nothing
    assert settings.custom_resources == {"node_b": 1.0}
    assert settings.to_dict() == {
        "cpu_count": 1,
        "gpu_count": None,
        "memory": None,
        "custom_resources": {"node_b": 1.0},
    }
    assert ResourceSettings(**settings.to_dict()) == settings  # as a snapshot rebuilds it
    assert "custom_resources" not in ResourceSettings(cpu_count=1).to_dict()
    assert isinstance(hash(settings), int)  # settings stay usable as dict keys


def test_a_custom_resource_is_asked_of_ray_and_only_a_node_that_has_it_fits():
    demand = demand_for(ResourceSettings(custom_resources={"node_b": 1}), step_cpus=0.25)
    assert task_options(demand) == {"num_cpus": 0.25, "resources": {"node_b": 1.0}}
    head = Demand(1.0, memory=10**9)
    node_b = Demand(1.0, memory=10**9, custom=(("node_b", 1.0),))
    assert ClusterResources((head, node_b)).can_run(demand)
    assert not ClusterResources((head,)).can_run(demand)
    refusal = str(ClusterResources((head,)).refusal("pinned", "pinned_2", demand))
    assert refusal.startswith(
        "Step 'pinned' (invocation 'pinned_2') asks for cpu_count=0.25, node_b=1, but no node "
        "of the Ray cluster (1 alive) can ever run it: the most any node offers is CPU=1, "
        "GPU=0, memory=1.0GB, node_b=0."
    )
