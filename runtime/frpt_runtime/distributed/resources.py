"""How many embedding actors to start and what each stage asks Ray for, so that decoding can never be starved.

Ray Data schedules the decode tasks and the actor pool from logical resources. If the actors reserve every CPU of a
node (two actors at 1 CPU each on a 2-CPU box), no decode task can start and the run waits forever
(``backpressured:tasks(ResourceBudget)``). The plan therefore keeps every node able to run a decode task even when
it is packed with as many actors as it can hold:

* actors: one per GPU of the cluster for a GPU backend (``num_gpus=1`` each); one per node for a CPU backend (spread
  over the nodes; an ONNX Runtime session already uses all of its node's cores, as in ``frpt-embed``);
* ``actor_cpus = min(0.5, c_min / (4 k))`` with ``c_min`` the CPUs of the smallest node and ``k`` the most actors one
  node may hold (its GPUs for a GPU backend; all of them for a CPU backend, whose placement Ray does not promise);
* ``decode_cpus = min(1, c_min - k * actor_cpus)``, at least three quarters of the smallest node.

So ``k * actor_cpus + decode_cpus <= c_min`` on every node, and ``decode_cpus != actor_cpus`` (Ray Data fuses a task
stage into an actor stage whose resources are equal, which would move decoding into the actors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from frpt_runtime.errors import FrptError

__all__ = ["NodeResources", "ResourcePlan", "plan_resources"]


@dataclass(frozen=True)
class NodeResources:
    """One alive node's logical resources as Ray reports them."""

    cpus: float
    gpus: float = 0.0


@dataclass(frozen=True)
class ResourcePlan:
    """What the run asks Ray for.

    Attributes:
        actors: embedding actors (each holds one backend).
        actor_cpus, actor_gpus: logical resources of one actor.
        decode_cpus: logical CPUs of one decode task.
    """

    actors: int
    actor_cpus: float
    actor_gpus: float
    decode_cpus: float

    def to_dict(self) -> dict[str, float]:
        return {
            "actors": self.actors,
            "actor_cpus": self.actor_cpus,
            "actor_gpus": self.actor_gpus,
            "decode_cpus": self.decode_cpus,
        }


def plan_resources(nodes: Sequence[NodeResources], gpu_backend: bool) -> ResourcePlan:
    """The plan for a cluster (see the module docstring for the rule).

    Args:
        nodes: the cluster's alive nodes.
        gpu_backend: the backend runs on a GPU (a TensorRT engine, ONNX Runtime with a CUDA / TensorRT provider).

    Raises:
        FrptError: no node with CPUs (nothing could decode), or a GPU backend on a cluster without GPUs.
    """
    workers = [node for node in nodes if node.cpus > 0]
    if not workers:
        raise FrptError("the Ray cluster has no node with CPUs to decode on: add CPUs (ray start --num-cpus N)")
    gpu_nodes = [node for node in workers if node.gpus >= 1]
    if gpu_backend and not gpu_nodes:
        raise FrptError(
            "the backend runs on a GPU but no node of the Ray cluster has one (with CPUs): start the nodes with GPUs "
            "(ray start --num-gpus N), or use --onnx with --providers cpu"
        )
    c_min = min(node.cpus for node in workers)
    if gpu_backend:
        actors = sum(int(node.gpus) for node in gpu_nodes)
        per_node = max(int(node.gpus) for node in gpu_nodes)
    else:
        actors = len(workers)
        per_node = actors
    actor_cpus = _floor(min(0.5, c_min / (4 * per_node)))
    decode_cpus = _floor(min(1.0, c_min - per_node * actor_cpus))
    return ResourcePlan(actors, actor_cpus, 1.0 if gpu_backend else 0.0, decode_cpus)


def _floor(value: float) -> float:
    """Down to Ray's resolution of fractional resources (1e-4), so rounding never overcommits a node."""
    return math.floor(value * 10_000) / 10_000
