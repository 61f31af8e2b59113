-- ChaosExperiment (kubeinfer.io/v1alpha1). Ready's gates: Safe, Injected; status.phase and
-- status.verdict tell where the run stands and what it found.
-- A failed verdict or run is Degraded; a run under way is Progressing; a dry run that reported
-- its targets or a passed verdict is Healthy; waiting for the schedule or for a person to judge
-- an inconclusive verdict is Suspended.

local WAITING = {
  Reconciling = "Progressing",
}

local pending = unobserved()
if pending ~= nil then
  return pending
end

local ready = condition("Ready")
local injected = condition("Injected")
local steady = condition("SteadyState")
local phase = obj.status.phase
local verdict = obj.status.verdict

if verdict == "Failed" then
  return health("Degraded", messageOf(steady, "The steady state did not hold"))
end
if phase == "Failed" or phase == "Aborted" then
  return health("Degraded", messageOf(steady, messageOf(ready, "The experiment " .. phase)))
end
if phase == "Running" then
  return health("Progressing", messageOf(injected, "The fault is injected"))
end
if phase == "Scheduled" then
  return health("Suspended", messageOf(injected, "Waiting for the next scheduled run"))
end
if phase == "Completed" and verdict == "Passed" then
  return health("Healthy", messageOf(steady, "The steady state held"))
end
if phase == "Completed" and verdict == "Inconclusive" then
  return health("Suspended", messageOf(steady, "The verdict is inconclusive; a person must judge the run"))
end
-- A dry run did what it was asked once it chose and reported its targets.
if ready.reason == "DryRun" then
  return health("Healthy", messageOf(ready, "Dry run"))
end
if isTrue(ready) then
  return health("Healthy", messageOf(ready, "Ready"))
end
return notReady(ready, WAITING)
