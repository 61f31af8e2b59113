"""Where a rollout's candidate pods get their GPUs, and whether the pool can surge at all.

A surging candidate runs beside a full stable: its largest step is placed on GPUs that neither
stable's planned sets nor anyone else hold. Its pods are pinned to the sets it will keep as
stable: those extra sets first, then as many of stable's planned sets as the promoted version
will need beyond them (a canary whose last step runs fewer pods than ``replicas.min`` grows onto
them once stable is gone; the scheduler's allocation keeps the sets stable's pods hold to
stable until then). On promotion the service adopts exactly these sets as its placement
(``version_placement``), so the promoted version's pod template does not change.

When the extra sets do not fit, :func:`plan` says so (:class:`replica_moves.Capacity`) and the
rollout moves replicas instead: the candidate is then enforced onto exactly stable's planned
sets, taking each one as a stable pod releases it.

Must not: I/O, clocks, choose the mode (``replica_moves.choose`` does).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeinfer.api import inference_service as api
from kubeinfer.planning.gpu import replica_placement
from kubeinfer.planning.rollout import replica_moves


@dataclass(frozen=True)
class CandidateGpus:
    """The pool's answer for a candidate: can it surge, and where may its pods run."""

    capacity: replica_moves.Capacity
    surge: replica_placement.Enforcement | None
    """The extra sets, then the stable sets the promoted version will need (a surging
    candidate)."""
    moves: replica_placement.Enforcement | None
    """Stable's enforced sets alone, its growth sets included (what moving replicas take)."""
    surge_placements: tuple[api.ReplicaPlacement, ...] = ()
    """The sets ``surge`` names, numbered as the promoted version's replicas."""
    moves_placements: tuple[api.ReplicaPlacement, ...] = ()
    """The sets ``moves`` names (stable's placement, then its growth sets)."""

    def enforcement(self, mode: str) -> replica_placement.Enforcement | None:
        """The candidate's enforcement in ``mode``."""
        return self.moves if mode == replica_moves.ZERO_SPARE else self.surge

    def placements(self, mode: str) -> tuple[api.ReplicaPlacement, ...]:
        """The sets the candidate's enforcement names in ``mode``, one per replica."""
        return self.moves_placements if mode == replica_moves.ZERO_SPARE else self.surge_placements


NO_GPUS = CandidateGpus(replica_moves.Capacity(), None, None)


def plan(
    spec: api.InferenceServiceSpec,
    pool: replica_placement.PoolState | None,
    stable: replica_placement.Outcome | None,
    *,
    largest_step: int,
    promoted: int,
) -> CandidateGpus:
    """Place ``largest_step`` candidate pods beside stable's planned sets, if the pool can.

    ``promoted`` is the candidate's pod count when it is promoted (its last step's).
    """
    if spec.resources.gpus == 0 or pool is None or stable is None:
        return NO_GPUS
    planned = stable.placements
    beside = replica_placement.decide(
        spec, pool, previous=planned, current_pods=len(planned) + largest_step
    )
    free = sum(len(n.schedulable - n.taken) for n in pool.nodes) - sum(len(p.gpus) for p in planned)
    capacity = replica_moves.Capacity(
        surge_fits=beside.no_fit is None,
        free_gpus=max(free, 0),
        surge_gpus=largest_step * spec.resources.gpus,
    )
    extra = [p for p in beside.placements if p.replica in beside.new]
    inherited = max(replica_placement.wanted_replicas(spec, promoted) - len(extra), 0)
    surge = tuple(
        p.model_copy(update={"replica": i}) for i, p in enumerate([*extra, *planned[:inherited]])
    )
    return CandidateGpus(
        capacity,
        # MIG slices have no sets: the decision pins to the pool's MIG nodes
        beside.enforcement if pool.mig else replica_placement.enforce(spec, pool, surge),
        stable.enforcement,
        surge_placements=surge,
        moves_placements=replica_placement.enforced(stable),
    )
