-- GPUPool (kubeinfer.io/v1alpha1). Ready's gates: Discovered, Healthy.
-- An unhealthy GPU is Degraded even before Ready says so; waiting for inventory is Progressing.

-- Not-Ready reasons that resolve by themselves; any other False reason is Degraded.
local WAITING = {
  Reconciling = "Progressing",
  NoInventory = "Progressing",
}

local pending = unobserved()
if pending ~= nil then
  return pending
end

local gpus = condition("Healthy")
if gpus ~= nil and gpus.status == "False" then
  return health("Degraded", messageOf(gpus, "A GPU of the pool is unhealthy"))
end
local ready = condition("Ready")
if isTrue(ready) then
  return health("Healthy", messageOf(ready, "Ready"))
end
return notReady(ready, WAITING)
