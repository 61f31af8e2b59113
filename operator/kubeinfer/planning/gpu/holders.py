"""Who holds which GPU: the one decision placement and GPUPool status both read.

A GPU is held by an InferenceService when an allocated ResourceClaim of kubeinfer's driver names
it (DRA), or when the service recorded it in its placement: ``status.placement``, and a retired
blue-green version's ``status.rollout.retired.placement`` until its scale-down (node pinning
leaves no claim, and a planned set must not be handed out twice before its pods run).

Scope: every namespace. GPUs belong to nodes, which are cluster-scoped; a GPUPool selects nodes,
not services, and a service in another namespace (whatever pool it names) holds the GPU all the
same. So the GPUPool status counts it as allocated and names it in ``allocatedTo``, and
placement never chooses it.

Must not: read the cluster (the controllers turn claims and statuses into :class:`Claim` and
:class:`Recorded`), choose placements.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Held = Mapping[str, Mapping[int, tuple[str, ...]]]
"""node -> GPU index -> the ``namespace/name`` of each holder, sorted."""


@dataclass(frozen=True)
class Claim:
    """An allocated ResourceClaim of kubeinfer's driver."""

    holder: str
    """``namespace/name`` of the InferenceService whose pod it was generated for (else the
    claim's own)."""
    gpus: Mapping[str, frozenset[int]]
    """node -> GPU indices allocated."""


@dataclass(frozen=True)
class Recorded:
    """The GPU sets an InferenceService recorded in its status."""

    holder: str
    """``namespace/name`` of the InferenceService."""
    gpus: tuple[tuple[str, int], ...]
    """(node, GPU index) of every set: stable's placement, then a retired version's."""


def held(
    *, claims: Iterable[Claim], recorded: Iterable[Recorded], excluding: str | None = None
) -> Held:
    """Every held GPU and its holders, over all namespaces; ``excluding`` (a service's own
    ``namespace/name``) leaves that holder out, so a GPU only it holds is not held."""
    out: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for claim in claims:
        for node, gpus in claim.gpus.items():
            for index in gpus:
                out[node][index].add(claim.holder)
    for service in recorded:
        for node, index in service.gpus:
            out[node][index].add(service.holder)
    result: dict[str, dict[int, tuple[str, ...]]] = {}
    for node, per_gpu in sorted(out.items()):
        for index, who in sorted(per_gpu.items()):
            others = sorted(w for w in who if w != excluding)
            if others:
                result.setdefault(node, {})[index] = tuple(others)
    return result
