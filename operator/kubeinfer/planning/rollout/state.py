"""The shapes a rollout pass works on: versions, the remembered state, the decision.

Owns the frozen dataclasses that :mod:`kubeinfer.planning.rollout.machine` decides with and
:mod:`kubeinfer.planning.rollout.status` round-trips through ``status.rollout``. Must not:
decide anything (beyond the ``RolledBack`` observation a state implies), I/O, clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning.conditions import Observation
from kubeinfer.planning.plans import Event
from kubeinfer.planning.rollout import analysis

Phase = Literal["Idle", "Progressing", "Paused", "Promoted", "RolledBack", "Waiting"]
DENYLIST_LIMIT = 16
"""Rolled-back versions remembered (oldest forgotten first)."""


@dataclass(frozen=True)
class Version:
    """A model version and what it takes to render it again."""

    version: str
    uri: str
    image: str | None = None

    @classmethod
    def of(cls, model: api.Model) -> Version:
        return cls(model.version, model.uri, model.image)


@dataclass(frozen=True)
class State:
    """What ``status.rollout`` remembers between passes."""

    phase: Phase = "Idle"
    step: int = 0
    step_started: datetime | None = None
    last_analysis: datetime | None = None
    failures: int = 0
    waiting_since: datetime | None = None
    rolled_back_from: str | None = None
    denied: tuple[str, ...] = ()
    evidence: str = ""
    note: Observation | None = None
    """The Progressing verdict of the last analysis, repeated until the next one."""
    mode: str = ""
    """``Surge`` or ``ZeroSpare`` once the rollout started (see ``replica_moves``)."""
    total: int = 0
    """Pods of both versions together while replicas move; kept until stable is whole again."""
    retired: Version | None = None
    """blueGreen: the version the switch replaced, running until ``scale_down_at``."""
    scale_down_at: datetime | None = None


@dataclass(frozen=True)
class Candidate:
    """What was observed of the candidate's pods."""

    ready_replicas: int = 0
    failed: bool = False
    failure: str = ""
    """Why it failed, when there is more to say than a missed progress deadline."""


@dataclass(frozen=True)
class Decision:
    """What one pass decided."""

    state: State
    stable: Version
    candidate: Version | None
    candidate_weight: int = 0
    mirror_percent: int = 0
    preview: bool = False
    judgements: tuple[analysis.Judgement, ...] = ()
    observations: tuple[Observation, ...] = ()
    events: tuple[Event, ...] = field(default=())
    candidate_replicas: int | None = None
    """Pods the candidate Deployment asks for, when replicas move (else from the step's weight)."""
    stable_replicas: int | None = None
    """Pods the stable Deployment asks for while replicas move; None leaves them to the
    autoscaler."""
    retired: Version | None = None
    """A previous version to keep running (blue-green's scale-down delay)."""
    hand_over: bool = False
    """Stable's replica count passes to the autoscaler this pass: the candidate was promoted,
    or stable is whole again after replicas moved."""


def not_rolled_back(state: State) -> Observation:
    """The ``RolledBack`` observation of a state whose rollout was not (or no longer) rolled back."""
    message = (
        "No rollout was rolled back."
        if state.rolled_back_from is None
        else f"{state.rolled_back_from} was rolled back earlier and stays denied."
    )
    return Observation.false(ConditionType.ROLLED_BACK, Reason.AS_EXPECTED, message)
