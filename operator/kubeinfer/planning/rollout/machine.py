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
  :mod:`kubeinfer.planning.serving.gateway_support`) nothing is mirrored and the step waits; its pause,
  analysis and data deadline start over once mirroring begins;
- ``blueGreen``: the candidate runs at full size behind a preview Service, is judged, then takes
  all traffic in one switch.

A canary whose candidate cannot run beside a full stable (no free GPUs) moves replicas one at a
time instead (:mod:`kubeinfer.planning.rollout.replica_moves`): the pass then also sizes both
Deployments, and the autoscaler steps aside until stable is whole again or the candidate is.

A canary with ``rollout.reload: inPlace`` runs in mode :data:`in_place.MODE`: the step's candidate
pods are stable's own servers, reloaded with the candidate version (:mod:`kubeinfer.planning.rollout.in_place`).

A failed analysis beyond ``failureLimit`` rolls back at once and the version joins a denylist,
so the same commit is not rolled out again (``Ready`` stays True on stable). Prometheus errors
and too little traffic wait instead of failing. The state lives in ``status.rollout``, so an
operator restarted mid-rollout resumes at the same step. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from kubeinfer.api import base
from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning.conditions import Observation
from kubeinfer.planning.plans import Event
from kubeinfer.planning.rollout import analysis, in_place, replica_moves, retirement, steps, timing
from kubeinfer.planning.rollout import state as rollout_state

# the shapes live in rollout_state; callers name them through this module
Phase = rollout_state.Phase
Version = rollout_state.Version
State = rollout_state.State
Candidate = rollout_state.Candidate
Decision = rollout_state.Decision
DENYLIST_LIMIT = rollout_state.DENYLIST_LIMIT


_NO_CANDIDATE_TRAFFIC = timing.MIRROR_HOLDS | {Reason.CANDIDATE_STARTING}
"""Progressing reasons under which the candidate gets neither weight nor mirrored requests."""


@dataclass(frozen=True)
class _Pass:
    """What stays fixed during one pass: the spec and the two versions involved."""

    spec: api.InferenceServiceSpec
    stable: Version
    desired: Version
    candidate: Candidate = field(default_factory=Candidate)
    mirror_hold: Observation | None = None


def _moving(state: State) -> bool:
    """Replicas move one at a time (zero spare) rather than the candidate running beside stable."""
    return state.mode == replica_moves.ZERO_SPARE and state.total > 0


def decide(
    spec: api.InferenceServiceSpec,
    *,
    state: State,
    stable: Version | None,
    candidate: Candidate,
    samples: tuple[analysis.Sample, ...] | None,
    now: datetime,
    capacity: replica_moves.Capacity | None = None,
    occupancy: replica_moves.Occupancy | None = None,
    mirror_hold: Observation | None = None,
) -> Decision:
    """Return what this pass does about the spec's model version.

    ``capacity`` (whether the candidate fits beside stable) picks the mode of a starting rollout;
    ``occupancy`` (the pods that still hold GPUs) sizes both Deployments while replicas move.
    ``mirror_hold`` (from :func:`kubeinfer.planning.serving.gateway_support.mirror_hold`) keeps a
    shadow's candidate without mirrored requests; the rollout waits with it as Progressing.
    """
    occupancy = occupancy or replica_moves.Occupancy()
    if retirement.switching_back(spec, state, stable, now):
        return retirement.switch_back(spec, state, stable, now)
    decision = _decide(
        spec,
        state=state,
        stable=stable,
        candidate=candidate,
        samples=samples,
        now=now,
        capacity=capacity or replica_moves.Capacity(),
        occupancy=occupancy,
        mirror_hold=mirror_hold,
    )
    return retirement.retiring(_sized(decision, occupancy), now)


def _sized(decision: Decision, occupancy: replica_moves.Occupancy) -> Decision:
    """Size both Deployments while replicas move; hand stable back once it is whole again."""
    state = decision.state
    if state.mode != replica_moves.ZERO_SPARE or not state.total:
        return decision
    total = state.total
    if decision.candidate is None:
        if occupancy.stable >= total and occupancy.holding <= total:
            return replace(decision, state=replace(state, mode="", total=0), hand_over=True)
        return replace(
            decision,
            stable_replicas=replica_moves.capped(
                total, active=occupancy.stable, total=total, holding=occupancy.holding
            ),
        )
    moved = replica_moves.candidate_at(total, state.step)
    return replace(
        decision,
        candidate_replicas=replica_moves.capped(
            moved, active=occupancy.candidate, total=total, holding=occupancy.holding
        ),
        stable_replicas=replica_moves.capped(
            total - moved, active=occupancy.stable, total=total, holding=occupancy.holding
        ),
    )


def _decide(
    spec: api.InferenceServiceSpec,
    *,
    state: State,
    stable: Version | None,
    candidate: Candidate,
    samples: tuple[analysis.Sample, ...] | None,
    now: datetime,
    capacity: replica_moves.Capacity,
    occupancy: replica_moves.Occupancy,
    mirror_hold: Observation | None,
) -> Decision:
    desired = Version.of(spec.model)
    if stable is None or desired == stable:
        return _settled(state, stable or desired)
    if desired.version in state.denied:
        return _denied(state, stable, desired)
    run = _Pass(spec, stable, desired, candidate, mirror_hold)
    if state.phase in ("Idle", "Promoted", "RolledBack"):
        state = State(
            denied=state.denied,
            rolled_back_from=state.rolled_back_from,
            phase="Progressing",
            total=state.total,
            retired=state.retired,
            scale_down_at=state.scale_down_at,
        )
    if not state.mode and in_place.enabled(spec):
        state = replace(state, mode=in_place.MODE, total=0)
    if not state.mode:
        mode = replica_moves.choose(spec.rollout, capacity)
        if mode is None:
            return _no_surge(run, state, capacity)
        if mode == replica_moves.ZERO_SPARE:
            total = max(occupancy.stable, state.total, spec.replicas.min, 1)
            state = replace(state, mode=mode, total=total)
            started = _running_moves(run, state, samples, now)
            event = Event(
                Reason.ZERO_SPARE_ROLLOUT,
                f"Moving replicas of {desired.version} one at a time ({total} pods, no extra "
                f"GPU): {replica_moves.why(spec.rollout, capacity)}.",
            )
            return replace(started, events=(event, *started.events))
        state = replace(state, mode=mode, total=0)
    if _moving(state):
        return _running_moves(run, state, samples, now)
    return _progress(run, state, samples, now)


def _running_moves(
    run: _Pass, state: State, samples: tuple[analysis.Sample, ...] | None, now: datetime
) -> Decision:
    """A zero-spare pass: wait for the move's pod, promote after the last move, else judge."""
    if run.candidate.failed:
        return _progress(run, state, samples, now)
    moved = replica_moves.candidate_at(state.total, state.step)
    ready = run.candidate.ready_replicas
    if ready < moved:
        message = (
            f"Moving replica {moved} of {state.total} to {run.desired.version}: {ready} of "
            f"{moved} candidate pods ready, stable down to {state.total - moved}."
        )
        moving = Observation.true(ConditionType.PROGRESSING, Reason.REPLICA_MOVING, message)
        return _running(run, replace(state, step_started=None), progressing=moving)
    if state.step >= replica_moves.moves(state.total):
        return _promote(run, state, (), now)
    return _progress(run, state, samples, now)


def _no_surge(run: _Pass, state: State, capacity: replica_moves.Capacity) -> Decision:
    """Shadow and blue-green need the candidate beside a full stable: wait for free GPUs."""
    message = (
        f"{run.spec.rollout.strategy} runs {run.desired.version} beside a full stable, but "
        f"{replica_moves.why(run.spec.rollout, capacity)}; the canary strategy moves replicas "
        "one at a time instead."
    )
    return Decision(
        state=replace(state, phase="Waiting"),
        stable=run.stable,
        candidate=None,
        observations=(
            Observation.true(ConditionType.PROGRESSING, Reason.SURGE_UNAVAILABLE, message),
            rollout_state.not_rolled_back(state),
        ),
    )


def _progress(
    run: _Pass, state: State, samples: tuple[analysis.Sample, ...] | None, now: datetime
) -> Decision:
    """Wait for the candidate's pods, then judge the step when an analysis is due."""
    desired = run.desired
    candidate = run.candidate
    if candidate.failed:
        evidence = (
            candidate.failure or f"Deployment of {desired.version} exceeded its progress deadline."
        )
        return _roll_back(
            run, state, reason=Reason.CANDIDATE_FAILED, evidence=evidence, judgements=()
        )
    quiet = _without_traffic(run, state)
    if quiet is not None:
        return quiet
    if state.note is not None and state.note.reason in timing.MIRROR_HOLDS:
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
    pause = timedelta(seconds=base.duration_seconds(steps.pause(run.spec.rollout, state)))
    if now - state.step_started < pause:
        return _running(
            run, state, progressing=_progressing(state, run.desired), judgements=judgements
        )
    next_step = state.step + 1
    if _moving(state):
        # the move after the last analysed one takes stable to 0, then promotion follows
        state = replace(state, step=next_step, step_started=None, failures=0)
        moved = replica_moves.candidate_at(state.total, next_step)
        event = Event(
            Reason.REPLICA_MOVING,
            f"Moving replica {moved} of {state.total} from {run.stable.version} to "
            f"{run.desired.version}: stable {state.total - moved}, candidate {moved}.",
        )
    elif next_step >= max(len(run.spec.rollout.steps), 1):
        return _promote(run, state, judgements, now)
    else:
        state = replace(state, step=next_step, step_started=now, failures=0)
        event = Event(
            Reason.ROLLOUT_STEP_ADVANCED, f"Moved {run.desired.version} to step {next_step + 1}."
        )
    decision = _running(
        run, state, progressing=_progressing(state, run.desired), judgements=judgements
    )
    return replace(decision, events=(event,))


def _without_traffic(run: _Pass, state: State) -> Decision | None:
    """The pass of a candidate that gets no traffic yet, or None when it may get its share.

    A mirror hold mirrors nothing and waits; the step is judged from scratch (pause, analysis,
    data deadline) once mirroring can begin. Starting pods wait until they load the model.
    """
    if run.mirror_hold is not None:
        state = replace(
            state, phase="Waiting", step_started=None, last_analysis=None, waiting_since=None
        )
        return _running(run, state, progressing=run.mirror_hold)
    if run.candidate.ready_replicas == 0:
        starting = Observation.true(
            ConditionType.PROGRESSING,
            Reason.CANDIDATE_STARTING,
            f"Waiting for {run.desired.version}'s pods to load the model.",
        )
        return _running(run, replace(state, phase="Progressing"), progressing=starting)
    return None


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


def _progressing(state: State, desired: Version) -> Observation:
    return Observation.true(
        ConditionType.PROGRESSING,
        Reason.ROLLOUT_PROGRESSING,
        f"Rolling out {desired.version}: step {state.step + 1}, {state.failures} failed analyses.",
    )


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
    weight = (
        replica_moves.weight(state.total, run.candidate.ready_replicas)
        if _moving(state)
        else 0
        if quiet
        else steps.traffic_weight(rollout, state.step)
    )
    return Decision(
        state=state,
        stable=run.stable,
        candidate=run.desired,
        candidate_weight=weight,
        mirror_percent=rollout.mirror_percent if rollout.strategy == "shadow" and not quiet else 0,
        preview=rollout.strategy == "blueGreen",
        judgements=judgements,
        observations=(progressing, rollout_state.not_rolled_back(state)),
    )


def _settled(state: State, stable: Version) -> Decision:
    state = _restoring(
        State(
            denied=state.denied, rolled_back_from=state.rolled_back_from, evidence=state.evidence
        ),
        state,
    )
    return Decision(
        state=state,
        stable=stable,
        candidate=None,
        observations=(
            Observation.false(
                ConditionType.PROGRESSING, Reason.NO_ROLLOUT, f"{stable.version} is stable."
            ),
            rollout_state.not_rolled_back(state),
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
    new = _restoring(
        State(phase="RolledBack", rolled_back_from=version, denied=denied, evidence=evidence),
        state,
    )
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
        events=(Event(Reason.ROLLED_BACK, message),),
    )


def _restoring(new: State, old: State) -> State:
    """Carry what outlives a rollout: the move bookkeeping until stable is whole again, and a
    retired version until its scale-down time."""
    new = replace(new, retired=old.retired, scale_down_at=old.scale_down_at)
    return replace(new, mode=old.mode, total=old.total) if _moving(old) else new


def _promote(
    run: _Pass, state: State, judgements: tuple[analysis.Judgement, ...], now: datetime
) -> Decision:
    desired = run.desired
    new = State(phase="Promoted", denied=state.denied, rolled_back_from=state.rolled_back_from)
    message = (
        f"Promoted {desired.version} to stable after moving {state.total} replicas one at a time."
        if _moving(state)
        else f"Promoted {desired.version} to stable after {state.step + 1} steps."
    )
    delay = retirement.delay(run.spec)
    if run.spec.rollout.strategy == "blueGreen" and delay:
        new = replace(new, retired=run.stable, scale_down_at=now + delay)
        message += (
            f" {run.stable.version} keeps running for {run.spec.rollout.scale_down_delay} "
            "(rollout.scaleDownDelay)."
        )
    return Decision(
        state=new,
        stable=desired,
        candidate=None,
        judgements=judgements,
        observations=(
            Observation.false(ConditionType.PROGRESSING, Reason.PROMOTED, message),
            rollout_state.not_rolled_back(new),
        ),
        events=(Event(Reason.PROMOTED, message),),
        hand_over=True,
    )
