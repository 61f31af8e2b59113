"""Which GPU sets each version of an InferenceService is pinned to, across a rollout.

``status.placement`` is the stable version's placement. A candidate is pinned to the sets
``rollout_gpus`` planned for it, a blue-green version that a switch retired to the sets it ran on
(``status.rollout.retired.placement``). When a version changes role the placement follows it:
promotion adopts the candidate's sets as the service's placement, a switch back adopts the
retired version's, and the version they replace takes stable's sets into retirement. Each
version is therefore rendered with the same enforcement (claim template, node pinning) and NCCL
environment before and after the change, and its pods are not re-created. Stable's growth sets
(``replica_placement.Outcome.growth``) go with its sets: into retirement, and into a zero-spare
candidate's, so the adopted sets beyond a version's replicas stay its growth sets; a promotion
or switch back plans no new ones (that would change the template).

Must not: I/O, clocks, place anything anew itself (``replica_placement.decide`` does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kubeinfer.api import inference_service as api
from kubeinfer.planning.gpu import nccl, replica_placement
from kubeinfer.planning.rollout import gpus as rollout_gpus
from kubeinfer.planning.rollout import state as rollout_state


@dataclass(frozen=True)
class Pinning:
    """How one version's pods are pinned to their GPU sets."""

    gpus: replica_placement.Enforcement | None = None
    nccl_env: Mapping[str, str] = field(default_factory=dict)
    """The NCCL environment those sets' links imply."""


@dataclass(frozen=True)
class Versions:
    """The placement of every version a pass renders."""

    stable: replica_placement.Outcome | None = None
    """Stable's decision: ``status.placement``, ``Placed`` and its Events."""
    stable_pin: Pinning = field(default_factory=Pinning)
    candidate_pin: Pinning = field(default_factory=Pinning)
    retired_pin: Pinning = field(default_factory=Pinning)
    retired: tuple[api.ReplicaPlacement, ...] = ()
    """``status.rollout.retired.placement``."""


UNPINNED = Versions()
"""No GPU placement: a service without GPUs, or an offline render."""


def follow(
    spec: api.InferenceServiceSpec,
    pool: replica_placement.PoolState | None,
    *,
    outcome: replica_placement.Outcome | None,
    candidate: rollout_gpus.CandidateGpus,
    state: rollout_state.State,
    remembered: rollout_state.Version | None,
    decision: rollout_state.Decision,
    retired: Sequence[api.ReplicaPlacement],
    replicas: Mapping[str, int],
) -> Versions:
    """Place each version of ``decision``, the placement following a version that changed role.

    ``outcome`` is the remembered stable's decision, ``state`` the rollout state it ran under,
    ``retired`` the recorded placement of the retired version and ``replicas`` each version's
    Deployment replicas.
    """
    if outcome is None or pool is None:
        return Versions(stable=outcome)
    # a status written before versions kept their own sets shared stable's with the retired one
    recorded = tuple(retired) or outcome.placements
    stable = outcome
    if remembered is not None and decision.stable != remembered:
        switched_back = state.retired is not None and decision.stable == state.retired
        adopted = recorded if switched_back else candidate.placements(state.mode)
        # the adopted sets beyond its replicas stay its growth sets; none are added, since
        # that would change the pod template the version runs with
        stable = replica_placement.decide(
            spec,
            pool,
            previous=adopted,
            current_pods=replicas.get(decision.stable.version, 0),
            growth=replica_placement.Growth(replicas_max=spec.replicas.max),
        )
    if decision.retired is None:
        kept: tuple[api.ReplicaPlacement, ...] = ()
    elif decision.retired == remembered:
        kept = replica_placement.enforced(outcome)
    else:
        kept = recorded
    mode = decision.state.mode
    return Versions(
        stable=stable,
        stable_pin=_pinning(pool, stable.enforcement, replica_placement.enforced(stable)),
        candidate_pin=(
            _pinning(pool, candidate.enforcement(mode), candidate.placements(mode))
            if decision.candidate is not None
            else Pinning()
        ),
        retired_pin=(
            _pinning(
                pool,
                stable.enforcement if pool.mig else replica_placement.enforce(spec, pool, kept),
                kept,
            )
            if decision.retired is not None
            else Pinning()
        ),
        retired=kept,
    )


def _pinning(
    pool: replica_placement.PoolState,
    gpus: replica_placement.Enforcement | None,
    placements: Sequence[api.ReplicaPlacement],
) -> Pinning:
    topologies = {n.name: n.topology for n in pool.nodes}
    return Pinning(gpus, nccl.environment(placements, topologies))


def status(placements: Sequence[api.ReplicaPlacement]) -> list[api.ReplicaPlacement]:
    """``status.rollout.retired.placement``."""
    return list(placements)
