"""Model version rollouts: the state machine that moves a candidate version to stable or back.

A rollout starts when the spec's model (version, URI or image) differs from the stable one that
status remembers. Each pass takes the remembered :class:`State`, what was observed of the
candidate, the analysis samples (when an analysis was due) and ``now``, and returns a
:class:`Decision`: the new state, which versions to run, the traffic split and the conditions.
Strategies differ only in how traffic reaches the candidate while it is judged:

- ``canary``: the candidate gets each step's weight in turn, then 100%;
- ``shadow``: users stay on stable; ``mirrorPercent`` of requests are mirrored to the candidate,
  whose responses are discarded, and the steps' pauses set how long it is judged. While the
  parent Gateways cannot be trusted to mirror (a *mirror hold*, see
  :mod:`kubeinfer.planning.gateway_support`) nothing is mirrored and the step waits; its pause,
  analysis and data deadline start over once mirroring begins;
- ``blueGreen``: the candidate runs at full size behind a preview Service, is judged, then takes
  all traffic in one switch.

A failed analysis beyond ``failureLimit`` rolls back at once and the version joins a denylist,
so the same commit is not rolled out again (``Ready`` stays True on stable). Prometheus errors
and too little traffic wait instead of failing. The state lives in ``status.rollout``, so an
operator restarted mid-rollout resumes at the same step. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from kubeinfer.api import base
from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning import analysis
from kubeinfer.planning.conditions import Observation

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


@dataclass(frozen=True)
class Candidate:
    """What was observed of the candidate's pods."""

    ready_replicas: int = 0
    failed: bool = False


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
    events: tuple[tuple[str, str], ...] = field(default=())


MIRROR_HOLDS = frozenset({Reason.MIRROR_UNSUPPORTED, Reason.MIRROR_SUPPORT_UNKNOWN})
"""Progressing reasons of a shadow whose gateway cannot be trusted to mirror."""
_NO_CANDIDATE_TRAFFIC = MIRROR_HOLDS | {Reason.CANDIDATE_STARTING}
"""Progressing reasons under which the candidate gets neither weight nor mirrored requests."""


def next_analysis(spec: api.InferenceServiceSpec, state: State) -> datetime | None:
    """When the next analysis is due: one interval after the last, or as the step's pause ends.

    None when no analysis will run without a change (no rollout, paused, or the candidate's pods
    have not started the step yet). The pause end counts only when it falls after the last
    analysis, so a step advances as soon as its pause is over rather than at the next interval.
    """
    if state.phase in ("Idle", "Promoted", "RolledBack", "Paused"):
        return None
    if state.last_analysis is None:
        return state.step_started
    interval = timedelta(seconds=base.duration_seconds(spec.rollout.analysis.interval))
    due = state.last_analysis + interval
    if state.step_started is not None:
        pause = timedelta(seconds=base.duration_seconds(_pause(spec.rollout, state.step)))
        pause_end = state.step_started + pause
        if state.last_analysis < pause_end < due:
            due = pause_end
    return due


def analysis_due(spec: api.InferenceServiceSpec, state: State, now: datetime) -> bool:
    """Whether the controller should query Prometheus for this pass."""
    if state.phase in ("Idle", "Promoted", "RolledBack", "Paused"):
        return False
    if state.last_analysis is None:
        return True
    due = next_analysis(spec, state)
    return due is not None and now >= due


REQUEUE_FLOOR_SECONDS = 1.0
"""Shortest requeue, so a due time already past never spins the loop."""


def requeue_after(
    spec: api.InferenceServiceSpec, decision: Decision, now: datetime
) -> float | None:
    """Seconds until a running rollout next needs a look, else None.

    That is exactly when its next analysis is due (:func:`next_analysis`). A candidate still
    starting is woken by its Deployment's watch event; one interval is the safety net then. A
    paused rollout waits for a person; a mirror hold for its Gateway or GatewayClass to change,
    which their watches report: neither needs a timer.
    """
    if decision.candidate is None or decision.state.phase == "Paused":
        return None
    note = decision.state.note
    if note is not None and note.reason in MIRROR_HOLDS:
        return None
    due = next_analysis(spec, decision.state)
    if due is None or decision.state.step_started is None:
        return base.duration_seconds(spec.rollout.analysis.interval)
    return max((due - now).total_seconds(), REQUEUE_FLOOR_SECONDS)


def candidate_replicas(spec: api.InferenceServiceSpec, step: int, stable_replicas: int) -> int:
    """Pods the candidate runs at ``step`` (the stable version keeps its autoscaled count)."""
    full = max(stable_replicas, spec.replicas.min, 1)
    rollout = spec.rollout
    if rollout.strategy == "blueGreen":
        return full
    share = rollout.mirror_percent if rollout.strategy == "shadow" else _weight(rollout, step)
    return max(1, math.ceil(full * share / 100))


def estimate(
    spec: api.InferenceServiceSpec, stable_replicas: int
) -> tuple[float, list[tuple[int, int, int]]]:
    """Seconds to promotion if every analysis passes, and (weight, candidate pods, GPUs) per step."""
    steps = spec.rollout.steps or [api.RolloutStep(weight=0)]
    seconds = sum(base.duration_seconds(s.pause) for s in steps)
    table = []
    for i, _ in enumerate(steps):
        pods = candidate_replicas(spec, i, stable_replicas)
        table.append((_traffic_weight(spec.rollout, i), pods, pods * spec.resources.gpus))
    return seconds, table


def _weight(rollout: api.Rollout, step: int) -> int:
    steps = rollout.steps
    return steps[min(step, len(steps) - 1)].weight if steps else 0


def _traffic_weight(rollout: api.Rollout, step: int) -> int:
    return _weight(rollout, step) if rollout.strategy == "canary" else 0


@dataclass(frozen=True)
class _Pass:
    """What stays fixed during one pass: the spec and the two versions involved."""

    spec: api.InferenceServiceSpec
    stable: Version
    desired: Version


def decide(
    spec: api.InferenceServiceSpec,
    *,
    state: State,
    stable: Version | None,
    candidate: Candidate,
    samples: tuple[analysis.Sample, ...] | None,
    now: datetime,
    mirror_hold: Observation | None = None,
) -> Decision:
    """Return what this pass does about the spec's model version.

    ``mirror_hold`` (from :func:`kubeinfer.planning.gateway_support.mirror_hold`) keeps a
    shadow's candidate without mirrored requests; the rollout waits with it as Progressing.
    """
    desired = Version.of(spec.model)
    if stable is None or desired == stable:
        return _settled(state, stable or desired)
    if desired.version in state.denied:
        return _denied(state, stable, desired)
    run = _Pass(spec, stable, desired)
    if state.phase in ("Idle", "Promoted", "RolledBack"):
        state = State(
            denied=state.denied, rolled_back_from=state.rolled_back_from, phase="Progressing"
        )
    if candidate.failed:
        evidence = f"Deployment of {desired.version} exceeded its progress deadline."
        return _roll_back(
            run, state, reason=Reason.CANDIDATE_FAILED, evidence=evidence, judgements=()
        )
    quiet = _without_traffic(run, state, candidate, mirror_hold)
    if quiet is not None:
        return quiet
    if state.note is not None and state.note.reason in MIRROR_HOLDS:
        state = replace(state, note=None)
    if state.step_started is None:
        state = replace(state, step_started=now)
    if state.phase == "Paused" or samples is None:
        return _running(run, state, progressing=state.note or _progressing(state, desired))
    return _judge(run, state, samples, now)


def _judge(
    run: _Pass, state: State, samples: tuple[analysis.Sample, ...], now: datetime
) -> Decision:
    settings = run.spec.rollout.analysis
    by_name = {s.metric: s for s in samples}
    judgements = tuple(
        analysis.judge(
            m, by_name.get(m.name, analysis.Sample(m.name, None)), min_samples=settings.min_samples
        )
        for m in analysis.metrics_of(run.spec)
    )
    verdict = analysis.overall(judgements)
    worst = next((j for j in judgements if j.verdict == verdict), None)
    detail = f"{worst.metric}: {worst.message}" if worst else ""
    state = replace(state, last_analysis=now)
    handler = {
        "Error": _on_error,
        "Inconclusive": _on_inconclusive,
        "Failed": _on_failed,
        "Passed": _on_passed,
    }[verdict]
    return handler(run, state, judgements=judgements, detail=detail, now=now)


def _on_error(
    run: _Pass,
    state: State,
    *,
    judgements: tuple[analysis.Judgement, ...],
    detail: str,
    now: datetime,
) -> Decision:
    del now
    state = replace(state, phase="Waiting")
    waiting = Observation.true(
        ConditionType.PROGRESSING,
        Reason.PROMETHEUS_UNAVAILABLE,
        f"Step {state.step + 1} waits: {detail}.",
    )
    return _running(run, state, progressing=waiting, judgements=judgements)


def _on_inconclusive(
    run: _Pass,
    state: State,
    *,
    judgements: tuple[analysis.Judgement, ...],
    detail: str,
    now: datetime,
) -> Decision:
    settings = run.spec.rollout.analysis
    since = state.waiting_since or now
    deadline = timedelta(seconds=base.duration_seconds(settings.insufficient_data_deadline))
    if now - since > deadline:
        state = replace(state, phase="Paused", waiting_since=since)
        paused = Observation.false(
            ConditionType.PROGRESSING,
            Reason.ROLLOUT_PAUSED,
            f"Step {state.step + 1} waited {settings.insufficient_data_deadline} for data and paused: {detail}.",
        )
        return _running(run, state, progressing=paused, judgements=judgements)
    state = replace(state, phase="Waiting", waiting_since=since)
    waiting = Observation.true(
        ConditionType.PROGRESSING,
        Reason.INSUFFICIENT_DATA,
        f"Step {state.step + 1} waits: {detail}.",
    )
    return _running(run, state, progressing=waiting, judgements=judgements)


def _on_failed(
    run: _Pass,
    state: State,
    *,
    judgements: tuple[analysis.Judgement, ...],
    detail: str,
    now: datetime,
) -> Decision:
    del detail, now
    state = replace(state, failures=state.failures + 1, phase="Progressing", waiting_since=None)
    if state.failures > run.spec.rollout.analysis.failure_limit:
        evidence = "; ".join(
            f"{j.metric}={_fmt(j.value)} ({j.message})" for j in judgements if j.verdict == "Failed"
        )
        return _roll_back(
            run, state, reason=Reason.ANALYSIS_FAILED, evidence=evidence, judgements=judgements
        )
    return _running(run, state, progressing=_progressing(state, run.desired), judgements=judgements)


def _on_passed(
    run: _Pass,
    state: State,
    *,
    judgements: tuple[analysis.Judgement, ...],
    detail: str,
    now: datetime,
) -> Decision:
    del detail
    state = replace(state, phase="Progressing", waiting_since=None)
    assert state.step_started is not None
    pause = timedelta(seconds=base.duration_seconds(_pause(run.spec.rollout, state.step)))
    if now - state.step_started < pause:
        return _running(
            run, state, progressing=_progressing(state, run.desired), judgements=judgements
        )
    next_step = state.step + 1
    if next_step >= max(len(run.spec.rollout.steps), 1):
        return _promote(state, run.desired, judgements)
    state = replace(state, step=next_step, step_started=now, failures=0)
    decision = _running(
        run, state, progressing=_progressing(state, run.desired), judgements=judgements
    )
    event = ("RolloutStepAdvanced", f"Moved {run.desired.version} to step {next_step + 1}.")
    return replace(decision, events=(event,))


def _without_traffic(
    run: _Pass, state: State, candidate: Candidate, mirror_hold: Observation | None
) -> Decision | None:
    """The pass of a candidate that gets no traffic yet, or None when it may get its share.

    A mirror hold mirrors nothing and waits; the step is judged from scratch (pause, analysis,
    data deadline) once mirroring can begin. Starting pods wait until they load the model.
    """
    if mirror_hold is not None:
        state = replace(
            state, phase="Waiting", step_started=None, last_analysis=None, waiting_since=None
        )
        return _running(run, state, progressing=mirror_hold)
    if candidate.ready_replicas == 0:
        starting = Observation.true(
            ConditionType.PROGRESSING,
            Reason.CANDIDATE_STARTING,
            f"Waiting for {run.desired.version}'s pods to load the model.",
        )
        return _running(run, replace(state, phase="Progressing"), progressing=starting)
    return None


def _pause(rollout: api.Rollout, step: int) -> str:
    return rollout.steps[step].pause if step < len(rollout.steps) else "0s"


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


def _progressing(state: State, desired: Version) -> Observation:
    return Observation.true(
        ConditionType.PROGRESSING,
        Reason.ROLLOUT_PROGRESSING,
        f"Rolling out {desired.version}: step {state.step + 1}, {state.failures} failed analyses.",
    )


def _not_rolled_back(state: State) -> Observation:
    message = (
        "No rollout was rolled back."
        if state.rolled_back_from is None
        else f"{state.rolled_back_from} was rolled back earlier and stays denied."
    )
    return Observation.false(ConditionType.ROLLED_BACK, Reason.AS_EXPECTED, message)


def _running(
    run: _Pass,
    state: State,
    *,
    progressing: Observation,
    judgements: tuple[analysis.Judgement, ...] = (),
) -> Decision:
    rollout = run.spec.rollout
    quiet = progressing.reason in _NO_CANDIDATE_TRAFFIC
    state = replace(state, note=progressing)
    return Decision(
        state=state,
        stable=run.stable,
        candidate=run.desired,
        candidate_weight=0 if quiet else _traffic_weight(rollout, state.step),
        mirror_percent=rollout.mirror_percent if rollout.strategy == "shadow" and not quiet else 0,
        preview=rollout.strategy == "blueGreen",
        judgements=judgements,
        observations=(progressing, _not_rolled_back(state)),
    )


def _settled(state: State, stable: Version) -> Decision:
    state = State(
        denied=state.denied, rolled_back_from=state.rolled_back_from, evidence=state.evidence
    )
    return Decision(
        state=state,
        stable=stable,
        candidate=None,
        observations=(
            Observation.false(
                ConditionType.PROGRESSING, Reason.NO_ROLLOUT, f"{stable.version} is stable."
            ),
            _not_rolled_back(state),
        ),
    )


def _denied(state: State, stable: Version, desired: Version) -> Decision:
    return Decision(
        state=replace(state, phase="RolledBack"),
        stable=stable,
        candidate=None,
        observations=(
            Observation.false(
                ConditionType.PROGRESSING,
                Reason.VERSION_DENIED,
                f"{desired.version} was rolled back before; change the version to roll out again.",
            ),
            Observation.true(
                ConditionType.ROLLED_BACK,
                Reason.VERSION_DENIED,
                f"Rolled back {desired.version}: {state.evidence or 'see earlier Events'}; "
                f"{stable.version} serves.",
            ),
        ),
    )


def _roll_back(
    run: _Pass,
    state: State,
    *,
    reason: Reason,
    evidence: str,
    judgements: tuple[analysis.Judgement, ...],
) -> Decision:
    version = run.desired.version
    denied = (*[v for v in state.denied if v != version], version)[-DENYLIST_LIMIT:]
    new = State(phase="RolledBack", rolled_back_from=version, denied=denied, evidence=evidence)
    message = f"Rolled back {version} to {run.stable.version}: {evidence}"
    return Decision(
        state=new,
        stable=run.stable,
        candidate=None,
        judgements=judgements,
        observations=(
            Observation.false(ConditionType.PROGRESSING, reason, message),
            Observation.true(ConditionType.ROLLED_BACK, reason, message),
        ),
        events=(("RolledBack", message),),
    )


def _promote(
    state: State, desired: Version, judgements: tuple[analysis.Judgement, ...]
) -> Decision:
    new = State(phase="Promoted", denied=state.denied, rolled_back_from=state.rolled_back_from)
    message = f"Promoted {desired.version} to stable after {state.step + 1} steps."
    return Decision(
        state=new,
        stable=desired,
        candidate=None,
        judgements=judgements,
        observations=(
            Observation.false(ConditionType.PROGRESSING, Reason.PROMOTED, message),
            _not_rolled_back(new),
        ),
        events=(("Promoted", message),),
    )


def _stamp(when: datetime | None) -> str | None:
    return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(when: str | None) -> datetime | None:
    return None if not when else datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _note(r: api.RolloutStatus) -> Observation | None:
    if not r.reason:
        return None
    return Observation(
        ConditionType.PROGRESSING, r.note_status or "True", Reason(r.reason), r.message
    )


def from_status(status: api.InferenceServiceStatus) -> tuple[State, Version | None]:
    """Read the remembered rollout state and stable version back from status."""
    r = status.rollout
    state = State(
        phase=r.phase,
        step=r.step,
        step_started=_parse(r.step_started_at),
        last_analysis=_parse(r.last_analysis_at),
        failures=r.failures,
        waiting_since=_parse(r.waiting_since),
        rolled_back_from=r.rolled_back_from,
        denied=tuple(r.denied_versions),
        evidence=r.evidence,
        note=_note(r),
    )
    stable = status.stable
    return state, (Version(stable.version, stable.uri, stable.image) if stable.version else None)


def to_status(
    spec: api.InferenceServiceSpec,
    decision: Decision,
    *,
    stable_replicas: int,
    now: datetime,
    previous: api.RolloutStatus,
) -> dict[str, object]:
    """Return the ``status.rollout`` fields (camelCase) that remember ``decision``.

    Measurements are the latest analysis's; a pass that analysed nothing keeps the previous ones.
    """
    s = decision.state
    seconds, table = estimate(spec, stable_replicas)
    measurements: list[dict[str, object]] = [
        {
            "metric": j.metric,
            "value": j.value,
            "verdict": j.verdict,
            "message": j.message,
            "time": _stamp(now),
        }
        for j in decision.judgements
    ] or [m.model_dump(by_alias=True, exclude_none=True) for m in previous.measurements]
    return {
        "phase": s.phase,
        "step": s.step,
        "stepStartedAt": _stamp(s.step_started),
        "lastAnalysisAt": _stamp(s.last_analysis),
        "waitingSince": _stamp(s.waiting_since),
        "failures": s.failures,
        "rolledBackFrom": s.rolled_back_from,
        "deniedVersions": list(s.denied),
        "evidence": s.evidence,
        "reason": s.note.reason.value if s.note else "",
        "message": s.note.message if s.note else "",
        "noteStatus": s.note.status if s.note else "",
        "measurements": measurements,
        "estimatedSeconds": seconds,
        "plan": [{"weight": w, "candidateReplicas": p, "gpus": g} for w, p, g in table],
    }
