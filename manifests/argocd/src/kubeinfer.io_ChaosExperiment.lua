-- ChaosExperiment (kubeinfer.io/v1alpha1). Ready's gates: Safe, Injected; status.phase and
-- status.verdict tell where the run stands and what it found.
-- A failed or inconclusive verdict and a failed or aborted run are Degraded; a run under way is
-- Progressing; a passed verdict, a dry run that reported its targets and an experiment waiting
-- for its next scheduled run are Healthy. Nothing is Suspended: no person can resume an
-- experiment, and Argo CD counts a Suspended resource against the whole Application.

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
-- Probes that gave no answer are usually probes that ask the wrong thing: fix them.
if phase == "Completed" and verdict == "Inconclusive" then
  return health("Degraded", messageOf(steady, "The steady state could not be judged"))
end
if phase == "Failed" or phase == "Aborted" then
  return health("Degraded", messageOf(steady, messageOf(ready, "The experiment " .. phase)))
end
if phase == "Running" then
  return health("Progressing", messageOf(injected, "The fault is injected"))
end
-- Between scheduled runs an experiment is like a CronJob between Jobs: Healthy.
if phase == "Scheduled" then
  return health("Healthy", messageOf(injected, "Waiting for the next scheduled run"))
end
if phase == "Completed" and verdict == "Passed" then
  return health("Healthy", messageOf(steady, "The steady state held"))
end
-- A dry run did what it was asked once it chose and reported its targets.
if ready.reason == "DryRun" then
  return health("Healthy", messageOf(ready, "Dry run"))
end
if isTrue(ready) then
  return health("Healthy", messageOf(ready, "Ready"))
end
return notReady(ready, WAITING)
