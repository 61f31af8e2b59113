"""What a replica placement decision reports: its status fields, conditions and Events.

Owns ``status.placement`` and ``status.growth``, the ``Placed`` and ``CapacityAvailable``
observations (with the pool's own problems first: no GPUs asked, no pool, no inventory yet) and
one ``ReplicaPlaced`` Event per replica placed anew. Must not: decide placements
(:mod:`kubeinfer.planning.gpu.replica_placement` does), I/O.
"""

from __future__ import annotations

from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning.conditions import Observation
from kubeinfer.planning.gpu.replica_placement import Outcome, PoolState
from kubeinfer.planning.plans import Event


def status(outcome: Outcome | None) -> list[api.ReplicaPlacement]:
    """``status.placement``."""
    return [] if outcome is None else list(outcome.placements)


def growth_status(
    spec: api.InferenceServiceSpec, outcome: Outcome | None
) -> api.GrowthPlacement | None:
    """``status.growth``."""
    if outcome is None or outcome.enforcement is None:
        return None
    return api.GrowthPlacement(replicas_max=spec.replicas.max, placement=list(outcome.growth))


def _where(outcome: Outcome) -> str:
    shown = "; ".join(
        f"{p.replica}: {p.node} {p.gpus} ({p.bottleneck_gbps:g} GB/s)"
        for p in outcome.placements[:4]
    )
    more = len(outcome.placements) - 4
    return shown + (f"; and {more} more" if more > 0 else "")


def _how(outcome: Outcome) -> str:
    enforcement = outcome.enforcement
    if enforcement is None:
        return ""
    if enforcement.mode == "dra":
        return "enforced by a DRA ResourceClaimTemplate naming each set's GPUs"
    return (
        "enforced by node affinity only: the nodes publish no kubeinfer ResourceSlice, so the "
        "device plugin picks the GPUs on each node"
    )


def _pool_gate(
    spec: api.InferenceServiceSpec, pool: PoolState | None, kind: ConditionType
) -> Observation | None:
    if spec.resources.gpus == 0:
        return Observation.true(
            kind, Reason.AS_EXPECTED, "No GPUs requested; the scheduler places the replicas."
        )
    if pool is None or not pool.exists:
        return Observation.false(
            kind, Reason.POOL_NOT_FOUND, f"GPUPool {spec.placement.gpu_pool!r} does not exist."
        )
    if not pool.nodes:
        return Observation.false(
            kind,
            Reason.PLACEMENT_PENDING,
            f"GPUPool {spec.placement.gpu_pool!r} has no GPU inventory from node agents yet "
            f"({pool.nodes_without_inventory} nodes without one).",
        )
    return None


def placed(
    spec: api.InferenceServiceSpec, pool: PoolState | None, outcome: Outcome | None
) -> Observation:
    """The ``Placed`` observation."""
    kind = ConditionType.PLACED
    gate = _pool_gate(spec, pool, kind)
    if gate is not None or outcome is None:
        return gate or Observation.unknown(kind, Reason.PLACEMENT_PENDING, "Not placed yet.")
    if outcome.no_fit is not None:
        done = len(outcome.placements)
        return Observation.false(
            kind,
            outcome.no_fit.reason,
            f"{done} of {outcome.wanted} replicas placed; {outcome.no_fit.message}.",
        )
    if pool is not None and pool.mig and outcome.enforcement is not None:
        return Observation.true(
            kind,
            Reason.AS_EXPECTED,
            f"MIG pool: replicas take {spec.resources.gpus} MIG slice(s) each from the device "
            f"plugin on {len(outcome.enforcement.nodes)} nodes (slices have no NVLink topology).",
        )
    return Observation.true(
        kind,
        Reason.AS_EXPECTED,
        f"{outcome.wanted} replicas placed, {_how(outcome)}: {_where(outcome)}"
        f"{_holding(pool, outcome)}{_grows(spec, outcome)}.",
    )


def _grows(spec: api.InferenceServiceSpec, outcome: Outcome) -> str:
    """How many growth sets the enforcement lists, when the autoscaler may add replicas."""
    room = spec.replicas.max - outcome.wanted
    if room <= 0:
        return ""
    return (
        f"; {len(outcome.growth)} of {room} replicas the autoscaler may add have a growth set "
        "(listed, not held)"
    )


def _holding(pool: PoolState | None, outcome: Outcome) -> str:
    """How many pods' claims hold planned sets (DRA only: the device plugin does not say)."""
    if pool is None or outcome.enforcement is None or outcome.enforcement.mode != "dra":
        return ""
    planned = {(p.node, frozenset(p.gpus)) for p in (*outcome.placements, *outcome.growth)}
    on_plan = sum(1 for held in pool.held if held in planned)
    off_plan = len(pool.held) - on_plan
    text = f"; {on_plan} of {outcome.wanted} hold their planned GPUs"
    return text + (f", {off_plan} pods still hold earlier sets" if off_plan else "")


def capacity(
    spec: api.InferenceServiceSpec, pool: PoolState | None, outcome: Outcome | None
) -> Observation:
    """The ``CapacityAvailable`` observation: can the pool hold ``replicas.min`` replicas?"""
    kind = ConditionType.CAPACITY_AVAILABLE
    gate = _pool_gate(spec, pool, kind)
    if gate is not None or outcome is None:
        if gate is not None and gate.reason == Reason.PLACEMENT_PENDING:
            return Observation.unknown(kind, Reason.POOL_NOT_READY, gate.message)
        return gate or Observation.unknown(kind, Reason.POOL_NOT_READY, "Not placed yet.")
    need = spec.replicas.min
    if pool is not None and pool.mig and outcome.no_fit is None:
        return Observation.true(
            kind, Reason.AS_EXPECTED, "MIG pool: the device plugin counts the free slices."
        )
    if len(outcome.placements) >= need:
        return Observation.true(
            kind,
            Reason.AS_EXPECTED,
            f"The pool holds {len(outcome.placements)} replicas of {spec.resources.gpus} GPUs "
            f"({need} needed).",
        )
    no_fit = outcome.no_fit
    reason = no_fit.reason if no_fit is not None else Reason.INSUFFICIENT_GPUS
    return Observation.false(
        kind,
        reason,
        f"{need} replicas of {spec.resources.gpus} GPUs needed, {len(outcome.placements)} fit"
        + (f": {no_fit.message}" if no_fit is not None else "."),
    )


def events(outcome: Outcome | None) -> tuple[Event, ...]:
    """One Event per replica placed anew in this decision."""
    if outcome is None:
        return ()
    by_replica = {p.replica: p for p in outcome.placements}
    how = "DRA" if outcome.enforcement and outcome.enforcement.mode == "dra" else "node pinning"
    return tuple(
        Event(
            Reason.REPLICA_PLACED,
            f"Placed replica {r} on {by_replica[r].node} GPUs {by_replica[r].gpus} ({how}): "
            f"{by_replica[r].explanation}",
        )
        for r in outcome.new
    )
