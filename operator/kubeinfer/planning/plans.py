"""The one shape every kind's planner returns to the reconcile loop.

Owns :class:`Plan` (children, condition observations, the kind's status model, and what the loop
does besides: Events, a timed requeue, the autoscaler handover) and :class:`Event`. Every field
but the first three has a default, so the loop reads each one directly and a kind that never
sets one needs no code for it. Must not: decide anything, import a kind's planner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from kubeinfer.api.conditions import Reason
from kubeinfer.planning.children import Manifest
from kubeinfer.planning.conditions import Observation

StatusT = TypeVar("StatusT", bound=BaseModel)


@dataclass(frozen=True)
class Event:
    """A decision worth an Event on the object (a new placement, a rollout step)."""

    reason: Reason
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Plan(Generic[StatusT]):
    """What a planner decided for one object."""

    children: tuple[Manifest, ...]
    """Every child wanted, each stamped with its content hash; owned children not listed are
    deleted."""
    observations: tuple[Observation, ...]
    """The conditions observed, Ready derived from the kind's gates."""
    status: StatusT
    """The kind's status fields (the loop adds ``observedGeneration`` and ``conditions``)."""
    events: tuple[Event, ...] = ()
    """Decisions to post as Events, besides the condition transitions the loop posts."""
    requeue_after: float | None = None
    """Seconds after which to reconcile again without a watch event (a running rollout)."""
    handover: str | None = None
    """A Deployment whose replica count passes from kubeinfer to the autoscaler."""
