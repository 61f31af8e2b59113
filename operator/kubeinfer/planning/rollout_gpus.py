"""Where a rollout's candidate pods get their GPUs, and whether the pool can surge at all.

A surging candidate runs beside a full stable: its largest step is placed on GPUs that neither
stable's planned sets nor anyone else hold, and its pods may take any of stable's planned sets or
those extra ones (the scheduler's allocation keeps stable's held sets to stable). When the extra
sets do not fit, :func:`plan` says so (:class:`replica_moves.Capacity`) and the rollout moves
replicas instead: the candidate is then enforced onto exactly stable's planned sets, taking each
one as a stable pod releases it.

Must not: I/O, clocks, choose the mode (``replica_moves.choose`` does).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeinfer.api import inference_service as api
from kubeinfer.planning import replica_moves, replica_placement


@dataclass(frozen=True)
class CandidateGpus:
    """The pool's answer for a candidate: can it surge, and where may its pods run."""

    capacity: replica_moves.Capacity
    surge: replica_placement.Enforcement | None
    """Stable's planned sets plus the extra ones (what a surging candidate may take)."""
    moves: replica_placement.Enforcement | None
    """Stable's planned sets alone (what moving replicas take)."""

    def enforcement(self, mode: str) -> replica_placement.Enforcement | None:
        """The candidate's enforcement in ``mode``."""
        return self.moves if mode == replica_moves.ZERO_SPARE else self.surge


NO_GPUS = CandidateGpus(replica_moves.Capacity(), None, None)


def plan(
    spec: api.InferenceServiceSpec,
    pool: replica_placement.PoolState | None,
    stable: replica_placement.Outcome | None,
    *,
    largest_step: int,
) -> CandidateGpus:
    """Place ``largest_step`` candidate pods beside stable's planned sets, if the pool can."""
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
    return CandidateGpus(capacity, beside.enforcement, stable.enforcement)
