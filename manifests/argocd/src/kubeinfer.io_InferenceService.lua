-- InferenceService (kubeinfer.io/v1alpha1). Ready's gates: Placed, ModelLoaded, TrafficReady.
-- Order: stale status, then a failure waiting will not fix (Degraded), a paused rollout
-- (Suspended), anything still starting or rolling out (Progressing), else Healthy.

-- Not-Ready reasons that resolve by themselves; any other False reason is Degraded.
local WAITING = {
  Reconciling = "Progressing",
  PlacementPending = "Progressing",
  PoolNotReady = "Progressing",
  DeploymentProgressing = "Progressing",
}

local pending = unobserved()
if pending ~= nil then
  return pending
end

local ready = condition("Ready")
local progressing = condition("Progressing")
local phase = (obj.status.rollout or {}).phase
local rollingOut = phase == "Progressing" or phase == "Waiting"

if not isTrue(ready) then
  local loaded = condition("ModelLoaded")
  -- No ready pod is expected while the pods load or a rollout moves them; later it is an outage.
  if ready.reason == "NoReadyReplicas"
      and ((loaded ~= nil and loaded.reason == "DeploymentProgressing") or rollingOut) then
    return health("Progressing", messageOf(ready, "No model server pod is ready yet"))
  end
  local judged = notReady(ready, WAITING)
  if judged.status == "Degraded" or phase ~= "Paused" then
    return judged
  end
end

if phase == "Paused" then
  return health("Suspended", messageOf(progressing, "The rollout is paused"))
end
if rollingOut then
  return health("Progressing", messageOf(progressing, "A model version rollout is under way"))
end

-- Ready on stable. A rollback or a predicted OOM is named, but the service serves: Healthy.
for _, notable in ipairs({ "RolledBack", "OOMRisk" }) do
  local found = condition(notable)
  if isTrue(found) then
    return health("Healthy", messageOf(found, notable))
  end
end
return health("Healthy", messageOf(ready, "Ready"))
