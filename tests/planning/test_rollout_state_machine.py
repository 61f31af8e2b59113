"""The rollout planner driven by Hypothesis through arbitrary histories, as the controller drives it.

A ``RuleBasedStateMachine`` plays the world around ``rollout.decide``: Git changes the model
version (back to a stable or a rolled-back one too), time passes, the candidate's pods start,
fail or stay unready, the pool has room for a surge or not, a shadow's gateway holds the mirror,
and Prometheus answers healthy, failing, with too little traffic or not at all. Every pass starts
from what the previous one wrote into ``status`` (validated by the API model), exactly as an
operator restarted at any moment would. The invariants after every pass:

- weights and the mirror percentage stay within 0-100;
- a version that was rolled back is never run as the candidate again, nor becomes stable;
- after a promotion, stable is the version the spec asks for;
- the decision's state and stable version round-trip through ``status`` and the API model.

``make unit`` runs the ``unit`` profile (``tests/conftest.py``); ``HYPOTHESIS_PROFILE=thorough``
runs a few thousand histories.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning.conditions import Observation
from kubeinfer.planning.rollout import analysis, replica_moves, timing
from kubeinfer.planning.rollout import machine as rollout
from kubeinfer.planning.rollout import status as rollout_status

T0 = datetime(2026, 1, 1, tzinfo=UTC)
VERSIONS = ("v1", "v2", "v3", "v4", "v5")
HOLD = Observation.true(
    ConditionType.PROGRESSING, Reason.MIRROR_UNSUPPORTED, "The Gateway's class cannot mirror."
)
TRAFFIC = {
    "healthy": ({"success-rate": (0.999, 0.999), "latency-p95": (120.0, 118.0)}, 500.0, ""),
    "failing": ({"success-rate": (0.5, 0.999), "latency-p95": (900.0, 118.0)}, 500.0, ""),
    "quiet": ({"success-rate": (1.0, 0.999), "latency-p95": (100.0, 118.0)}, 1.0, ""),
    "down": ({"success-rate": (None, None), "latency-p95": (None, None)}, 0.0, "unreachable"),
}


def _spec(version: str, *, strategy: str, gpu_surge: str) -> api.InferenceServiceSpec:
    return api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "version": version, "uri": f"hf://org/m@{version}"},
            "resources": {"gpus": 1},
            "placement": {"gpuPool": "p"},
            "replicas": {"min": 2, "max": 4},
            "traffic": {"provider": "none"},
            "rollout": {
                "strategy": strategy,
                "gpuSurge": gpu_surge,
                "steps": [{"weight": 10, "pause": "30s"}, {"weight": 50, "pause": "30s"}],
                "scaleDownDelay": "20s",
            },
        }
    )


class RolloutWorld(RuleBasedStateMachine):
    """One InferenceService's history: its spec in Git, its status, its pods and Prometheus."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.version = "v1"
        self.strategy = "canary"
        self.gpu_surge = "auto"
        self.status: dict[str, Any] = {}
        self.rolled_back: set[str] = set()
        self.occupancy = replica_moves.Occupancy(stable=2, holding=2)

    @initialize(
        strategy=st.sampled_from(["canary", "shadow", "blueGreen"]),
        gpu_surge=st.sampled_from(["auto", "always", "never"]),
    )
    def start(self, strategy: str, gpu_surge: str) -> None:
        self.strategy = strategy
        # a CEL rule admits gpuSurge: never only for canaries
        self.gpu_surge = gpu_surge if strategy == "canary" else "auto"
        self._pass(ready=0, traffic="healthy", surge_fits=True, hold=False)

    def _spec(self) -> api.InferenceServiceSpec:
        return _spec(self.version, strategy=self.strategy, gpu_surge=self.gpu_surge)

    @rule(version=st.sampled_from(VERSIONS))
    def git_changes_the_version(self, version: str) -> None:
        self.version = version

    @rule(
        seconds=st.integers(min_value=1, max_value=90),
        ready=st.integers(min_value=0, max_value=2),
        traffic=st.sampled_from(sorted(TRAFFIC)),
        surge_fits=st.booleans(),
        hold=st.booleans(),
        failed=st.integers(min_value=0, max_value=9).map(lambda n: n == 0),
    )
    def time_passes(
        self,
        *,
        seconds: int,
        ready: int,
        traffic: str,
        surge_fits: bool,
        hold: bool,
        failed: bool,
    ) -> None:
        self.now += timedelta(seconds=seconds)
        self._pass(ready=ready, traffic=traffic, surge_fits=surge_fits, hold=hold, failed=failed)

    @rule(
        minutes=st.integers(min_value=1, max_value=4),
        traffic=st.sampled_from(["healthy", "healthy", "failing"]),
        surge_fits=st.booleans(),
    )
    def steady_traffic(self, minutes: int, traffic: str, surge_fits: bool) -> None:
        """A pass every 10 s with ready pods, the same metrics and a gateway that mirrors: what
        takes a rollout to promotion, or a degraded candidate to its rollback."""
        for _ in range(minutes * 6):
            self.now += timedelta(seconds=10)
            self._pass(ready=2, traffic=traffic, surge_fits=surge_fits, hold=False)

    def _pass(
        self, *, ready: int, traffic: str, surge_fits: bool, hold: bool, failed: bool = False
    ) -> None:
        spec = self._spec()
        model = api.InferenceServiceStatus.model_validate(self.status)
        state, stable = rollout_status.from_status(model)
        mirror_hold = HOLD if hold and self.strategy == "shadow" else None
        samples = None
        if mirror_hold is None and timing.analysis_due(spec, state, self.now):
            values, count, error = TRAFFIC[traffic]
            samples = tuple(
                analysis.Sample(metric, value, stable_value, count=count, error=error)
                for metric, (value, stable_value) in values.items()
            )
        decision = rollout.decide(
            spec,
            state=state,
            stable=stable,
            candidate=rollout.Candidate(
                ready_replicas=ready, failed=failed, failure="CrashLoopBackOff" if failed else ""
            ),
            samples=samples,
            now=self.now,
            capacity=replica_moves.Capacity(surge_fits=surge_fits, free_gpus=0, surge_gpus=1),
            occupancy=self.occupancy,
            mirror_hold=mirror_hold,
        )
        self._check(spec, decision)
        self._remember(spec, decision, model)

    def _check(self, spec: api.InferenceServiceSpec, decision: rollout.Decision) -> None:
        assert 0 <= decision.candidate_weight <= 100, decision.candidate_weight
        assert 0 <= decision.mirror_percent <= 100, decision.mirror_percent
        if decision.candidate is not None:
            assert decision.candidate.version not in self.rolled_back, (
                f"{decision.candidate.version} runs again after its rollback"
            )
        assert decision.stable.version not in self.rolled_back, (
            f"{decision.stable.version} became stable after its rollback"
        )
        if any(e.reason == Reason.PROMOTED for e in decision.events):
            event("promoted")
            assert decision.stable == rollout.Version.of(spec.model), decision.stable
        if any(e.reason == Reason.ROLLED_BACK for e in decision.events):
            event("rolled back")
            self.rolled_back.add(spec.model.version)
        if decision.state.mode:
            event(f"mode {decision.state.mode}")

    def _remember(
        self,
        spec: api.InferenceServiceSpec,
        decision: rollout.Decision,
        previous: api.InferenceServiceStatus,
    ) -> None:
        """Write the status the controller would, read it back through the API model, and
        require the same state; the pods then become what the decision asked for."""
        stable = decision.stable
        self.status = {
            "stable": {"version": stable.version, "uri": stable.uri, "image": stable.image},
            "rollout": rollout_status.to_status(
                spec, decision, stable_replicas=2, now=self.now, previous=previous.rollout
            ),
        }
        read = rollout_status.from_status(api.InferenceServiceStatus.model_validate(self.status))
        assert read == (decision.state, stable), "status.rollout lost part of the state"
        stable_pods = 2 if decision.stable_replicas is None else decision.stable_replicas
        candidate_pods = (decision.candidate_replicas or 0) if decision.candidate else 0
        self.occupancy = replica_moves.Occupancy(
            stable=stable_pods, candidate=candidate_pods, holding=stable_pods + candidate_pods
        )


TestRolloutWorld = RolloutWorld.TestCase
