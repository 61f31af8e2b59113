"""In-place model reload: which running server loads which version (``rollout.reload: inPlace``).

An in-place service runs one Deployment whose pod template names no model version; the servers
start empty (Triton's explicit model control) and the operator loads a version into each one
through the runtime's model-control API, then labels the pod with it
(``kubeinfer.io/model-version``, with the container's restart count beside it, since a restarted
server comes back empty). The label is the record of what a pod serves: the version
Services, the front Service and the ServiceMonitor select by it, so traffic, the rollout
analysis and Prometheus' series follow each pod as it reloads, and an operator restarted
mid-rollout reads the assignment back from the pods. A pod without the label serves nothing yet.

A rollout step asks for a number of candidate pods (its weight of the pool, as a surge canary
sizes its candidate Deployment); :func:`assign` keeps the pods that already serve the candidate,
reloads stable pods up to that number (unlabelled ones first, since they need a load anyway),
and loads stable into every other pod. Promotion and rollback are the same assignment with every
pod on one version. A version a pod refused to load (the runtime answered with an error) is
recorded on the pod (:data:`LOAD_ERROR_ANNOTATION`) and never retried there; that refusal fails
the candidate, which rolls back with the runtime's message as evidence. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubeinfer.api import inference_service as api

MODE = "InPlace"
"""``status.rollout.mode`` of a rollout that reloads stable's pods."""


def enabled(spec: api.InferenceServiceSpec) -> bool:
    """Whether new model versions reach this service's pods in place."""
    return spec.rollout.reload == "inPlace"


@dataclass(frozen=True)
class ServerPod:
    """One model server pod as the assignment sees it."""

    name: str
    ip: str = ""
    ready: bool = False
    """The server answers (the pod is Ready); only then can it load a model."""
    labelled: str = ""
    """The version the pod's label names."""
    load_error: str = ""
    """The annotation: ``<version>: <message>`` of a load the runtime refused."""
    restarts: int = 0
    """The server container's restart count now."""
    loaded_at_restart: int | None = None
    """The restart count recorded with the label (None: not recorded)."""

    @property
    def version(self) -> str:
        """The version the server serves: its label's, unless the container restarted since."""
        if self.loaded_at_restart is not None and self.loaded_at_restart != self.restarts:
            return ""
        return self.labelled

    def refused(self, version: str) -> bool:
        """Whether this pod's runtime refused to load ``version``."""
        return self.load_error.partition(":")[0] == version


@dataclass(frozen=True)
class Reload:
    """Load ``version`` into the server of ``pod`` (reachable at ``ip``)."""

    pod: str
    ip: str
    version: str
    previous: str
    """What the pod served before ("" for a fresh or restarted server)."""
    restarts: int = 0
    """The server container's restart count the load is recorded with."""


@dataclass(frozen=True)
class Views:
    """Pods per version, as the rollout reads a Deployment's counts."""

    serving: dict[str, int]
    """Version -> pods labelled with it."""
    ready: dict[str, int]
    """Version -> of those, pods that are Ready."""
    refusal: dict[str, str]
    """Version -> the first pod's refusal to load it (``pod: message``)."""


def views(pods: Sequence[ServerPod]) -> Views:
    """Count the pods of each version and collect the refusals."""
    serving: dict[str, int] = {}
    ready: dict[str, int] = {}
    refusal: dict[str, str] = {}
    for pod in sorted(pods, key=lambda p: p.name):
        if pod.version:
            serving[pod.version] = serving.get(pod.version, 0) + 1
            ready[pod.version] = ready.get(pod.version, 0) + int(pod.ready)
        if pod.load_error:
            version, _, message = pod.load_error.partition(":")
            refusal.setdefault(version, f"{pod.name}:{message}")
    return Views(serving=serving, ready=ready, refusal=refusal)


def capped(wanted: int, pods: int) -> int:
    """A step's candidate pods, leaving stable at least one pod to be compared with while the
    steps run (a single-pod service reloads its one pod: its analysis then has no stable series,
    and only metrics with explicit thresholds can fail it)."""
    return max(min(wanted, pods - 1), 1) if pods else 0


def assign(
    pods: Sequence[ServerPod], *, stable: str, candidate: str | None, candidate_pods: int
) -> tuple[Reload, ...]:
    """The loads that put ``candidate_pods`` pods on ``candidate`` and the rest on ``stable``.

    Only Ready pods with an address can load. Pods already on the candidate stay there (the
    last in name order go back first when a step asks for fewer); stable pods move up to the number asked,
    in name order, after the pods that serve nothing yet. A pod never gets a version it refused.
    """
    able = sorted((p for p in pods if p.ready and p.ip), key=lambda p: p.name)
    on_candidate = [p for p in able if candidate is not None and p.version == candidate]
    others = [p for p in able if p not in on_candidate]
    wanted = min(max(candidate_pods, 0), len(able)) if candidate is not None else 0
    keep = on_candidate[:wanted]
    movable = sorted(
        (p for p in others if candidate is not None and not p.refused(candidate)),
        key=lambda p: (p.version != "", p.name),
    )
    target = {p.name: candidate for p in keep} | {
        p.name: candidate for p in movable[: wanted - len(keep)]
    }
    loads = []
    for pod in able:
        version = target.get(pod.name) or stable
        if pod.version != version and not pod.refused(version):
            loads.append(
                Reload(
                    pod=pod.name,
                    ip=pod.ip,
                    version=version,
                    previous=pod.version,
                    restarts=pod.restarts,
                )
            )
    return tuple(loads)
