"""The Ray cluster as the orchestrator sees it: connecting, what each node offers, and
refusing steps that no node can ever run.

Ray keeps a task whose resources no node has in its queue for ever (an autoscaler might
add such a node; a fixed cluster never will), so a step asking for `gpu_count=1` on a
CPU-only cluster would hang its run without a word. Each step's request is compared with
every alive node — per node, not with the cluster's sum, because two nodes of one GPU each
cannot run a step that needs two, and a step asking for a custom resource (`{"node_b": 1}`)
needs a node that declares it — and refused with an error that names the step, what it
asked for and the most any node offers. Ray is imported only inside these functions.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from branchwork.config.resources import ResourceSettings
from branchwork.exceptions import ConfigurationError, OrchestratorError
from branchwork.runtime.events import Request
from branchwork.runtime.interrupts import sigterm_handler_kept


class UnsatisfiableResourcesError(OrchestratorError):
    """A step asks for more than any node of the Ray cluster has; it would wait for ever."""


# Ray's own resources, each a field of `Demand`; every other one a node declares is custom.
_RAYS = ("CPU", "GPU", "memory", "object_store_memory")


@dataclass(frozen=True)
class Demand:
    """What one step's Ray task asks for: CPUs, GPUs, memory in bytes and custom resources
    (sorted (name, amount) pairs: a demand is a dict key)."""

    cpu: float
    gpu: float = 0.0
    memory: int = 0
    custom: tuple[tuple[str, float], ...] = ()

    def fits(self, node: Demand) -> bool:
        offered = dict(node.custom)
        return (
            self.cpu <= node.cpu
            and self.gpu <= node.gpu
            and self.memory <= node.memory
            and all(amount <= offered.get(name, 0.0) for name, amount in self.custom)
        )

    def describe(self) -> str:
        parts = [f"cpu_count={self.cpu:g}"]
        if self.gpu:
            parts.append(f"gpu_count={self.gpu:g}")
        if self.memory:
            parts.append(f"memory={self.memory / 1e9:.1f}GB")
        parts.extend(f"{name}={amount:g}" for name, amount in self.custom)
        return ", ".join(parts)


def demand_for(resources: ResourceSettings, step_cpus: float) -> Demand:
    """The Ray request of a step; `step_cpus` when its settings name no CPU count."""
    cpu = step_cpus if resources.cpu_count is None else float(resources.cpu_count)
    custom = tuple(sorted((resources.custom_resources or {}).items()))
    return Demand(cpu, float(resources.gpu_count or 0), resources.memory_bytes, custom)


def task_options(demand: Demand) -> dict[str, Any]:
    """`ray.remote` options for a demand (only the resources actually asked for)."""
    options: dict[str, Any] = {"num_cpus": demand.cpu}
    if demand.gpu:
        options["num_gpus"] = demand.gpu
    if demand.memory:
        options["memory"] = demand.memory
    if demand.custom:
        options["resources"] = dict(demand.custom)
    return options


def _node_offer(resources: dict[str, float]) -> Demand:
    """All a node has, as the largest demand it could run."""
    custom = tuple(
        sorted((name, float(amount)) for name, amount in resources.items() if name not in _RAYS)
    )
    return Demand(
        float(resources.get("CPU", 0.0)),
        float(resources.get("GPU", 0.0)),
        int(resources.get("memory", 0)),
        custom,
    )


@dataclass(frozen=True)
class ClusterResources:
    """The alive nodes of the cluster, each as the largest demand it could ever run."""

    nodes: tuple[Demand, ...]

    @classmethod
    def current(cls, excluding: frozenset[str] = frozenset()) -> ClusterResources:
        """The cluster as Ray lists it now, but the nodes `excluding` names (by id)."""
        import ray

        alive = [
            node
            for node in ray.nodes()
            if node.get("Alive") and node.get("NodeID") not in excluding
        ]
        return cls(tuple(_node_offer(node["Resources"]) for node in alive))

    @property
    def total(self) -> Request:
        """The whole cluster, as the engine's admission capacity (Ray places the tasks)."""
        return Request(
            sum(node.cpu for node in self.nodes),
            sum(node.memory for node in self.nodes),
            sum(node.gpu for node in self.nodes),
        )

    def can_run(self, demand: Demand) -> bool:
        return any(demand.fits(node) for node in self.nodes)

    def most_offered(self, names: tuple[str, ...] = ()) -> Demand:
        """The most any single node offers of each resource (of the custom ones, `names`)."""
        if not self.nodes:
            return Demand(0.0, custom=tuple((name, 0.0) for name in names))
        return Demand(
            max(node.cpu for node in self.nodes),
            max(node.gpu for node in self.nodes),
            max(node.memory for node in self.nodes),
            tuple(
                (name, max(dict(node.custom).get(name, 0.0) for node in self.nodes))
                for name in names
            ),
        )

    def refusal(self, step_name: str, invocation_id: str, demand: Demand) -> OrchestratorError:
        most = self.most_offered(tuple(name for name, _ in demand.custom))
        custom = "".join(f", {name}={amount:g}" for name, amount in most.custom)
        return UnsatisfiableResourcesError(
            f"Step '{step_name}' (invocation '{invocation_id}') asks for {demand.describe()}, "
            f"but no node of the Ray cluster ({len(self.nodes)} alive) can ever run it: the "
            f"most any node offers is CPU={most.cpu:g}, GPU={most.gpu:g}, "
            f"memory={most.memory / 1e9:.1f}GB{custom}. Lower the step's ResourceSettings or "
            "add a node that has them (or set check_resources=False on an autoscaling cluster)."
        )


def connect(address: str | None, num_cpus: int | None, init_args: dict[str, Any]) -> None:
    """Connect this process to Ray once; a process that is already connected (a Ray worker,
    or a driver that called `ray.init` itself) keeps its connection.

    `address=None` attaches to a cluster already running on this machine or starts one;
    with `num_cpus` it always starts a fresh local one of that size (Ray refuses `num_cpus`
    when attaching). A cluster with token authentication (Ray's default) takes the token
    from this process's environment (`RAY_AUTH_TOKEN` or `RAY_AUTH_TOKEN_PATH`), where Ray
    itself reads it: branchwork never holds it.
    """
    try:
        import ray
    except ImportError as error:
        raise ConfigurationError(
            f"The Ray orchestrator needs Ray ({error}): pip install 'branchwork[ray]'."
        ) from None
    if ray.is_initialized():
        return
    kwargs = dict(init_args)
    if address is not None:
        kwargs["address"] = address
    elif num_cpus is not None:
        kwargs.update(address="local", num_cpus=num_cpus)
    if address is not None:
        _check_answers(address)
    try:
        with sigterm_handler_kept():
            ray.init(**kwargs)
    except ConnectionError as error:
        raise OrchestratorError(_not_connected(address, error)) from error


CONNECT_SECONDS = 10.0  # for a cluster's address to accept a connection at all


def _check_answers(address: str) -> None:
    """Refuse at once an address at which nothing accepts a connection (a wrong port, a head
    that is down): `ray.init` waited there for ever, the run `initializing`. The address is
    checked as Ray would reach it (it takes 127.0.0.1 for this node's address)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        target = (
            address.removeprefix("ray://")
            if address.startswith("ray://")
            else (canonicalize_bootstrap_address(address))
        )
        host, _, port = (target or "").rpartition(":")
        endpoint = (host.strip("[]"), int(port))
    except Exception:  # noqa: BLE001 - "auto" with no cluster, a form Ray reads: its own error
        return
    try:
        socket.create_connection(endpoint, timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise OrchestratorError(
            f"Could not connect to the Ray cluster at {address}: nothing accepts connections "
            f"at {target} ({error}). Check that the cluster is running and that the address "
            "is its head node's (`ray status` there prints it)."
        ) from None


def _not_connected(address: str | None, error: ConnectionError) -> str:
    """Why `ray.init` failed, and what to do: a refused token is the usual reason."""
    where = f"the Ray cluster at {address}" if address else "a Ray cluster on this machine"
    token = (
        "set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH, a file) in this process's environment "
        "to the cluster's token (`ray get-auth-token` on its head node prints it)"
    )
    if _refused_token(error):
        return f"Could not connect to {where}: it refused this process's token; {token}."
    return (
        f"Could not connect to {where}: {error}. Check that the cluster is running and "
        f"reachable there; if it uses token authentication, {token}."
    )


def _refused_token(error: BaseException) -> bool:
    """Whether Ray refused the token: its AuthenticationError lies deep in the causes, or
    only in their text (Ray re-raises a connection failure with the traceback as text)."""
    cause: BaseException | None = error
    while cause is not None:
        if "InvalidAuthToken" in str(cause) or type(cause).__name__ == "AuthenticationError":
            return True
        cause = cause.__cause__ or cause.__context__
    return False
