"""The reloader's guard against repeated loads: a load recorded on a pod is not started again
while the pod's watch event has not brought the record into the store yet; another version, or
the same version after the server restarted, is."""

from __future__ import annotations

import dataclasses

from kubeinfer.api import inference_service as api
from kubeinfer.controllers import model_reload
from kubeinfer.planning import children
from kubeinfer.planning.rollout import in_place

OWNER = children.Owner(
    api_version="kubeinfer.io/v1alpha1",
    kind="InferenceService",
    name="chat",
    namespace="models",
    uid="uid-1",
)
SPEC = api.InferenceServiceSpec.model_validate(
    {
        "model": {"name": "chat", "version": "3", "uri": "s3://m/repo", "runtime": "triton"},
        "resources": {"gpus": 0, "cpu": "1", "memory": "2Gi"},
        "replicas": {"min": 2, "max": 2},
        "traffic": {"provider": "none"},
        "autoscaling": {"engine": "keda"},
        "rollout": {"reload": "inPlace"},
    }
)
LOAD = in_place.Reload(pod="chat-a", ip="127.0.0.1", version="3", previous="2", restarts=0)


async def _started(reloader: model_reload.Reloader, load: in_place.Reload) -> bool:
    reloader.start(OWNER, SPEC, {}, (load,), wake=lambda: None)
    started = bool(reloader._in_flight)
    await reloader.close()
    return started


async def test_a_load_already_recorded_on_the_pod_is_not_started_again() -> None:
    reloader = model_reload.Reloader()
    reloader._remember(OWNER, LOAD)
    assert not await _started(reloader, LOAD)


async def test_another_version_or_a_restarted_server_is_loaded() -> None:
    reloader = model_reload.Reloader()
    assert await _started(reloader, LOAD)  # nothing recorded yet
    reloader._remember(OWNER, LOAD)
    assert await _started(reloader, dataclasses.replace(LOAD, version="2", previous="3"))
    assert await _started(reloader, dataclasses.replace(LOAD, restarts=1))


def test_the_memory_of_recorded_loads_is_bounded() -> None:
    reloader = model_reload.Reloader()
    for n in range(model_reload.MAX_RECORDED + 5):
        reloader._remember(OWNER, dataclasses.replace(LOAD, pod=f"chat-{n}"))
    assert len(reloader._recorded) == model_reload.MAX_RECORDED
    assert ("models", "chat-0") not in reloader._recorded
