"""Plan an InferenceService: its children and its status, from spec and observed state.

Children: a Deployment and a Service per model version (``planning.serving.model_server`` builds them,
with the PodDisruptionBudget and the ServiceMonitor), the front Service, the route (Gateway API
HTTPRoute or Istio VirtualService), the autoscaler (HPA or KEDA ScaledObject); for a server that
logs to files and LogPolicies that select it, the ConfigMap of its collector sidecars
(``planning.logs.sidecar``). Pure: the controller gathers :class:`Observed` and applies the
returned :class:`Plan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning import children, plans
from kubeinfer.planning.conditions import Observation, with_ready
from kubeinfer.planning.gpu import oom, placement_report, replica_placement
from kubeinfer.planning.labels import MODEL_VERSION_LABEL
from kubeinfer.planning.logs import sidecar as log_sidecar
from kubeinfer.planning.rollout import analysis, in_place, replica_moves, timing, version_placement
from kubeinfer.planning.rollout import gpus as rollout_gpus
from kubeinfer.planning.rollout import machine as rollout
from kubeinfer.planning.rollout import status as rollout_status
from kubeinfer.planning.rollout import steps as rollout_steps
from kubeinfer.planning.serving import autoscaling, gateway_support, model_server, runtimes, traffic

GATES = (ConditionType.PLACED, ConditionType.MODEL_LOADED, ConditionType.TRAFFIC_READY)
"""Ready's gates, in priority order. MetricsAvailable and CapacityAvailable inform; they do not
gate Ready, because the model serves traffic without an autoscaler's metrics."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""``now`` of offline renders, which never reach a time-dependent rollout decision."""

PoolView = replica_placement.PoolState
"""What the planner needs to know of the GPU pool (its nodes as placement sees them)."""


@dataclass(frozen=True)
class DeploymentView:
    """Observed state of one version's Deployment."""

    replicas: int = 0
    ready_replicas: int = 0
    available: bool = False
    failed: bool = False
    message: str = ""


@dataclass(frozen=True)
class MetricsApiView:
    """Observed state of the APIService serving the autoscaler's metrics."""

    name: str
    exists: bool
    available: bool = False
    message: str = ""


@dataclass(frozen=True)
class Observed:
    """Everything the controller read from the cluster for one InferenceService."""

    pool: PoolView | None
    previous_placement: tuple[api.ReplicaPlacement, ...] = ()
    """``status.placement`` as last written (placements are kept while still valid)."""
    deployments: dict[str, DeploymentView] = field(default_factory=dict)
    pods: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Model version -> (pods not terminating, terminating pods) of the service."""
    route_accepted: bool | None = None
    route_message: str = ""
    gateways: tuple[gateway_support.Parent, ...] = ()
    """The route's parent Gateways and their classes' features (gateway-api)."""
    metrics_api: MetricsApiView | None = None
    status: api.InferenceServiceStatus = field(default_factory=api.InferenceServiceStatus)
    """The status as last written: it remembers the stable version and the rollout's state."""
    samples: tuple[analysis.Sample, ...] | None = None
    """Rollout analysis samples, when an analysis was due (see ``rollout.timing.analysis_due``)."""
    now: datetime = EPOCH
    log_policies: tuple[log_sidecar.Policy, ...] = ()
    """The LogPolicies of the namespace (those selecting a file-logging server add sidecars)."""
    server_pods: tuple[in_place.ServerPod, ...] = ()
    """The service's model server pods (read for ``rollout.reload: inPlace`` only)."""


@dataclass(frozen=True)
class Plan(plans.Plan[api.InferenceServiceStatus]):
    """Desired children and status, the decisions' Events, the autoscaler handover (a promoted
    candidate, or stable whole again), the next timed pass, and in-place loads."""

    reloads: tuple[in_place.Reload, ...] = ()
    """Versions to load into running servers (``rollout.reload: inPlace``)."""


def for_version(
    spec: api.InferenceServiceSpec, version: rollout.Version
) -> api.InferenceServiceSpec:
    """The spec as it stood for ``version`` (stable keeps running its own model during a rollout)."""
    model = spec.model.model_copy(
        update={"version": version.version, "uri": version.uri, "image": version.image}
    )
    return spec.model_copy(update={"model": model})


def _pinned_deployment(
    owner: children.Owner,
    spec: api.InferenceServiceSpec,
    pin: version_placement.Pinning,
    log_policies: Sequence[log_sidecar.Policy] = (),
) -> tuple[children.Manifest | None, children.Manifest]:
    """A version's Deployment pinned by ``pin``, and its ResourceClaimTemplate in DRA mode; for
    an in-place service its one Deployment."""
    one_deployment = in_place.enabled(spec)
    name = (
        model_server.pool_name(owner)
        if one_deployment
        else model_server.version_name(owner, spec.model.version)
    )
    gpus = pin.gpus
    claims = (
        replica_placement.build_claim_template(owner, name, gpus)
        if gpus is not None and gpus.mode == "dra"
        else None
    )
    deployment = model_server.build_deployment(
        owner,
        spec,
        gpus,
        claims["metadata"]["name"] if claims is not None else None,
        extra_env=pin.nccl_env,
        log_policies=log_policies,
        in_place=one_deployment,
    )
    return claims, deployment


def render(
    owner: children.Owner,
    spec: api.InferenceServiceSpec,
    *,
    pins: version_placement.Versions = version_placement.UNPINNED,
    decision: rollout.Decision | None = None,
    stable_replicas: int = 0,
    log_policies: Sequence[log_sidecar.Policy] = (),
) -> tuple[children.Manifest, ...]:
    """Return every child of the InferenceService, each stamped with its content hash.

    ``pins`` pins each version's pods to their planned nodes (its NCCL environment with them)
    and, in DRA mode, adds the ResourceClaimTemplate naming their GPUs. ``decision`` adds the
    candidate version of a rollout and the traffic split, and a retired blue-green version;
    without it the spec's model is the stable one. While replicas move, the decision sizes both
    Deployments and no autoscaler is rendered (it would scale stable back up onto the
    candidate's GPUs).
    ``log_policies`` (the namespace's LogPolicies) give a file-logging server its sidecars.
    """
    stable_spec = for_version(spec, decision.stable) if decision is not None else spec
    runtime = runtimes.RUNTIMES[spec.model.runtime]
    claims, deployment = _pinned_deployment(owner, stable_spec, pins.stable_pin, log_policies)
    workload = deployment["metadata"]["name"]
    stable = model_server.version_name(owner, stable_spec.model.version)
    sized = decision is not None and decision.stable_replicas is not None
    if decision is not None and decision.stable_replicas is not None:
        deployment["spec"]["replicas"] = decision.stable_replicas
    split = traffic.Split(stable=stable)
    candidate_objs: list[children.Manifest | None] = []
    versions = [stable_spec.model.version]
    if decision is not None and decision.candidate is not None:
        candidate_spec = for_version(spec, decision.candidate)
        versions.append(candidate_spec.model.version)
        candidate_objs = _candidate_objects(
            owner,
            spec,
            candidate_spec,
            decision,
            pin=pins.candidate_pin,
            stable_replicas=stable_replicas,
            log_policies=log_policies,
        )
        split = traffic.Split(
            stable=stable,
            candidate=model_server.version_name(owner, candidate_spec.model.version),
            candidate_weight=decision.candidate_weight,
            mirror_percent=decision.mirror_percent,
        )
    if decision is not None and decision.retired is not None:
        # blue-green's previous version, rendered as it ran, until its scale-down time
        retired_spec = for_version(spec, decision.retired)
        versions.append(retired_spec.model.version)
        retired_claims, retired = _pinned_deployment(
            owner, retired_spec, pins.retired_pin, log_policies
        )
        candidate_objs += [
            retired_claims,
            retired,
            model_server.version_service(owner, retired_spec),
        ]
    sidecar_policies = {
        p.owner.name: p
        for version in versions
        for p in log_sidecar.selecting(
            log_policies, owner.name, model_server.pod_labels(owner, version)
        )
    }
    objs: list[children.Manifest | None] = [
        claims,
        deployment,
        model_server.version_service(owner, stable_spec),
        *candidate_objs,
        model_server.build_service(
            owner,
            owner.name,
            {owner.label_key: owner.name, MODEL_VERSION_LABEL: stable_spec.model.version},
            runtime.port,
        ),
        traffic.build_route(owner, spec, split),
        (
            None
            if sized
            else autoscaling.build_scaled_object(owner, spec, workload)
            if spec.autoscaling.engine == "keda"
            else autoscaling.build_hpa(owner, spec, workload)
        ),
        model_server.build_pdb(owner, spec),
        model_server.build_service_monitor(owner, spec),
        (
            log_sidecar.build_config_map(owner, tuple(sidecar_policies.values()))
            if spec.logging.mode == "file" and sidecar_policies
            else None
        ),
    ]
    return tuple(children.stamp_hash(o) for o in objs if o is not None)


def _candidate_objects(
    owner: children.Owner,
    spec: api.InferenceServiceSpec,
    candidate_spec: api.InferenceServiceSpec,
    decision: rollout.Decision,
    *,
    pin: version_placement.Pinning,
    stable_replicas: int,
    log_policies: Sequence[log_sidecar.Policy],
) -> list[children.Manifest | None]:
    """The candidate's Service and, unless it is loaded in place into stable's pods, its
    Deployment (sized by the step or the replica move) and claim template."""
    objs: list[children.Manifest | None] = [model_server.version_service(owner, candidate_spec)]
    if in_place.enabled(spec):  # in place, the candidate's pods are stable's, reloaded
        return objs
    claims, deployment = _pinned_deployment(owner, candidate_spec, pin, log_policies)
    deployment["spec"]["replicas"] = (
        decision.candidate_replicas
        if decision.candidate_replicas is not None
        else rollout_steps.candidate_replicas(spec, decision.state.step, stable_replicas)
    )
    return [*objs, claims, deployment]


def plan(owner: children.Owner, spec: api.InferenceServiceSpec, observed: Observed) -> Plan:
    """Return the children and status of an InferenceService.

    One pass: stable's GPU placement, the rollout's decision (with the candidate's GPUs), the
    placement every version keeps across it, then the conditions, status and children.
    """
    state, remembered = rollout_status.from_status(observed.status)
    reloading = in_place.enabled(spec)
    if reloading:
        observed, remembered = _in_place_view(spec, observed, remembered)
    outcome = _place(spec, observed, state, remembered, reloading=reloading)
    decision, candidate_gpus = _decide(
        spec, observed, state=state, remembered=remembered, outcome=outcome, reloading=reloading
    )
    retired = observed.status.rollout.retired
    pins = version_placement.follow(
        spec,
        observed.pool,
        outcome=outcome,
        candidate=candidate_gpus,
        state=state,
        remembered=remembered,
        decision=decision,
        retired=retired.placement if retired is not None else (),
        replicas={v: d.replicas for v, d in observed.deployments.items()},
    )
    outcome = pins.stable  # promotion or a switch back hands the placement to the new stable
    dep = observed.deployments.get(decision.stable.version, DeploymentView())
    return Plan(
        render(
            owner,
            spec,
            pins=pins,
            decision=decision,
            stable_replicas=dep.replicas,
            log_policies=observed.log_policies,
        ),
        with_ready(_observations(spec, observed, outcome, dep, decision), GATES),
        _status(owner, spec, observed, decision, pins, reloading=reloading),
        events=(*placement_report.events(outcome), *decision.events),
        handover=(
            model_server.version_name(owner, decision.stable.version)
            if decision.hand_over and not reloading
            else None
        ),
        requeue_after=timing.requeue_after(spec, decision, observed.now),
        reloads=_reloads(spec, decision, observed.server_pods) if reloading else (),
    )


def _place(
    spec: api.InferenceServiceSpec,
    observed: Observed,
    state: rollout.State,
    remembered: rollout.Version | None,
    *,
    reloading: bool,
) -> replica_placement.Outcome | None:
    """Stable's GPU placement; None for a CPU service or a pool without inventory."""
    if not (spec.resources.gpus and observed.pool is not None and observed.pool.nodes):
        return None
    before = observed.deployments.get((remembered or rollout.Version.of(spec.model)).version)
    if reloading:  # one Deployment holds every version's pods
        before = DeploymentView(replicas=len(observed.server_pods))
    # while replicas move, stable keeps its whole placement: its pod template must not change
    return replica_placement.decide(
        spec,
        observed.pool,
        previous=observed.previous_placement,
        current_pods=max((before or DeploymentView()).replicas, state.total),
        growth=replica_placement.Growth.of(observed.status.growth),
    )


def _decide(
    spec: api.InferenceServiceSpec,
    observed: Observed,
    *,
    state: rollout.State,
    remembered: rollout.Version | None,
    outcome: replica_placement.Outcome | None,
    reloading: bool,
) -> tuple[rollout.Decision, rollout_gpus.CandidateGpus]:
    """The rollout's pass, with where a candidate's pods would get their GPUs."""
    wanted = observed.deployments.get(spec.model.version, DeploymentView())
    occupancy = _occupancy(observed, remembered)
    steps = [p for _, p, _, _ in rollout_steps.estimate(spec, occupancy.stable)[1]]
    candidate_gpus = rollout_gpus.plan(
        spec,
        observed.pool,
        outcome,
        largest_step=max(steps, default=1),
        promoted=steps[-1] if steps else 1,
    )
    decision = rollout.decide(
        spec,
        state=state,
        stable=remembered,
        candidate=rollout.Candidate(
            ready_replicas=wanted.ready_replicas,
            failed=wanted.failed,
            # a refused load says why; a Deployment's own message does not name the version
            failure=wanted.message if reloading else "",
        ),
        samples=observed.samples,
        now=observed.now,
        mirror_hold=gateway_support.mirror_hold(spec, observed.gateways),
        capacity=candidate_gpus.capacity,
        occupancy=occupancy,
    )
    return decision, candidate_gpus


def _observations(
    spec: api.InferenceServiceSpec,
    observed: Observed,
    outcome: replica_placement.Outcome | None,
    dep: DeploymentView,
    decision: rollout.Decision,
) -> tuple[Observation, ...]:
    return (
        placement_report.placed(spec, observed.pool, outcome),
        placement_report.capacity(spec, observed.pool, outcome),
        oom.observation(spec, observed.pool, outcome.placements if outcome else ()),
        _model_loaded(dep),
        _traffic_ready(spec, dep, observed),
        _metrics(spec, observed.metrics_api),
        *decision.observations,
    )


def _status(
    owner: children.Owner,
    spec: api.InferenceServiceSpec,
    observed: Observed,
    decision: rollout.Decision,
    pins: version_placement.Versions,
    *,
    reloading: bool,
) -> api.InferenceServiceStatus:
    dep = observed.deployments.get(decision.stable.version, DeploymentView())
    candidate = decision.candidate
    cand_dep = observed.deployments.get(candidate.version, DeploymentView()) if candidate else None
    return api.InferenceServiceStatus(
        url=f"http://{owner.name}.{owner.namespace}.svc.cluster.local:{model_server.HTTP_PORT}",
        replicas=dep.replicas + (cand_dep.replicas if cand_dep else 0),
        ready_replicas=dep.ready_replicas + (cand_dep.ready_replicas if cand_dep else 0),
        selector=f"{owner.label_key}={owner.name}",
        stable=_version_status(decision.stable, dep),
        candidate=(
            _version_status(candidate, cand_dep)
            if candidate is not None and cand_dep is not None
            else None
        ),
        traffic=api.TrafficStatus(
            stable_weight=100 - decision.candidate_weight,
            candidate_weight=decision.candidate_weight,
            mirror_percent=decision.mirror_percent,
        ),
        rollout=rollout_status.to_status(
            spec,
            decision,
            stable_replicas=len(observed.server_pods) if reloading else dep.replicas,
            now=observed.now,
            previous=observed.status.rollout,
            retired_placement=version_placement.status(pins.retired),
        ),
        placement=placement_report.status(pins.stable),
        growth=placement_report.growth_status(spec, pins.stable),
    )


def _version_status(version: rollout.Version, dep: DeploymentView) -> api.VersionStatus:
    return api.VersionStatus(
        version=version.version,
        uri=version.uri,
        image=version.image,
        replicas=dep.replicas,
        ready_replicas=dep.ready_replicas,
    )


def _in_place_view(
    spec: api.InferenceServiceSpec, observed: Observed, remembered: rollout.Version | None
) -> tuple[Observed, rollout.Version | None]:
    """An in-place service seen as the rollout sees Deployments: each version's pods counted
    from the pods' labels, a candidate some pod refused to load failed with the runtime's answer,
    and stable carrying the spec's URI and image (only model.version rolls out in place)."""
    seen = in_place.views(observed.server_pods)
    refused = seen.refusal.get(spec.model.version, "")
    deployments = {
        version: DeploymentView(replicas=count, ready_replicas=seen.ready.get(version, 0))
        for version, count in seen.serving.items()
    }
    if refused:
        deployments[spec.model.version] = replace(
            deployments.get(spec.model.version, DeploymentView()),
            failed=True,
            message=f"The server refused to load {spec.model.version} in place ({refused}).",
        )
    if remembered is not None:
        remembered = rollout.Version(remembered.version, spec.model.uri, spec.model.image)
    return replace(observed, deployments=deployments), remembered


def _reloads(
    spec: api.InferenceServiceSpec,
    decision: rollout.Decision,
    pods: Sequence[in_place.ServerPod],
) -> tuple[in_place.Reload, ...]:
    """The loads that give the pods the versions this pass decided."""
    candidate = decision.candidate.version if decision.candidate is not None else None
    wanted = (
        in_place.capped(
            rollout_steps.candidate_replicas(spec, decision.state.step, len(pods)), len(pods)
        )
        if candidate is not None
        else 0
    )
    return in_place.assign(
        pods, stable=decision.stable.version, candidate=candidate, candidate_pods=wanted
    )


def _occupancy(observed: Observed, stable: rollout.Version | None) -> replica_moves.Occupancy:
    """The service's pods that hold GPUs: stable's, every other version's, and the claims."""
    version = stable.version if stable is not None else ""
    active = {v: n for v, (n, _) in observed.pods.items()}
    pods = sum(n + dying for n, dying in observed.pods.values())
    claims = len(observed.pool.held) if observed.pool is not None else 0
    return replica_moves.Occupancy(
        stable=active.get(version, 0),
        candidate=sum(n for v, n in active.items() if v != version),
        holding=max(pods, claims),
    )


def _model_loaded(dep: DeploymentView) -> Observation:
    kind = ConditionType.MODEL_LOADED
    if dep.failed:
        return Observation.false(
            kind, Reason.DEPLOYMENT_FAILED, dep.message or "Progress deadline exceeded."
        )
    if dep.ready_replicas == 0:
        return Observation.false(
            kind, Reason.DEPLOYMENT_PROGRESSING, f"0 of {dep.replicas} model server pods are ready."
        )
    return Observation.true(
        kind,
        Reason.AS_EXPECTED,
        f"{dep.ready_replicas} of {dep.replicas} model server pods are ready.",
    )


def _traffic_ready(
    spec: api.InferenceServiceSpec, dep: DeploymentView, observed: Observed
) -> Observation:
    kind = ConditionType.TRAFFIC_READY
    if dep.ready_replicas == 0:
        return Observation.false(
            kind, Reason.NO_READY_REPLICAS, "No model server pod is ready to take traffic."
        )
    if spec.traffic.provider == "none":
        return Observation.true(
            kind, Reason.TRAFFIC_DISABLED, "The Service routes to ready pods; no route is managed."
        )
    if spec.traffic.provider == "istio":
        return Observation.true(
            kind, Reason.AS_EXPECTED, "The VirtualService routes to ready pods."
        )
    if observed.route_accepted:
        return Observation.true(
            kind, Reason.AS_EXPECTED, "The HTTPRoute is accepted by its Gateway."
        )
    return Observation.false(
        kind,
        Reason.ROUTE_NOT_ACCEPTED,
        observed.route_message or "No Gateway has accepted the HTTPRoute yet.",
    )


def _metrics(spec: api.InferenceServiceSpec, view: MetricsApiView | None) -> Observation:
    kind = ConditionType.METRICS_AVAILABLE
    needed = autoscaling.metrics_api_for(spec)
    if view is None or not view.exists:
        return Observation.false(
            kind,
            Reason.METRICS_API_MISSING,
            f"No APIService {needed} is registered; the {spec.autoscaling.engine} autoscaler for "
            f"tier {spec.sla.tier} would show <unknown>.",
        )
    if not view.available:
        return Observation.false(
            kind,
            Reason.METRICS_API_UNAVAILABLE,
            f"APIService {needed} is unavailable: {view.message}",
        )
    return Observation.true(kind, Reason.AS_EXPECTED, f"APIService {needed} is available.")
