-- LogPolicy (kubeinfer.io/v1alpha1). Ready's gates: ConfigValid, Applied.
-- A configuration the collector refused is Degraded; agents restarting onto it is Progressing.

-- Not-Ready reasons and their health; any other False reason is Degraded. ValidatorUnavailable
-- (Unknown) is Degraded too: the operator was installed without the collector to validate with,
-- and waiting will not change that.
local WAITING = {
  Reconciling = "Progressing",
  AgentsRolling = "Progressing",
  ValidatorUnavailable = "Degraded",
}

local pending = unobserved()
if pending ~= nil then
  return pending
end

local valid = condition("ConfigValid")
if valid ~= nil and valid.status == "False" then
  return health("Degraded", messageOf(valid, "The log agent configuration is invalid"))
end
local ready = condition("Ready")
if isTrue(ready) then
  return health("Healthy", messageOf(ready, "Ready"))
end
return notReady(ready, WAITING)
