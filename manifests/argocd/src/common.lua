-- Shared by every kubeinfer health script (common.lua). The scripts Argo CD runs are this file
-- followed by one kind's file, assembled into manifests/argocd/health/ by
-- `kubeinfer argocd-health write`.
--
-- Argo CD hands a script the resource as the global `obj` and opens only Lua's base, table and
-- package libraries and a safe `os`: no `string`, no `math`. Join text with `..` and tostring().
-- A script returns {status = "Healthy" | "Progressing" | "Degraded" | "Suspended", message = ...}.

local function health(status, message)
  return { status = status, message = message }
end

-- The condition of type `wanted` in status.conditions, or nil.
local function condition(wanted)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, found in ipairs(obj.status.conditions) do
    if found.type == wanted then
      return found
    end
  end
  return nil
end

local function isTrue(found)
  return found ~= nil and found.status == "True"
end

-- The condition's message, or `fallback` when the condition or its message is missing.
local function messageOf(found, fallback)
  if found ~= nil and found.message ~= nil and found.message ~= "" then
    return found.message
  end
  return fallback
end

-- Progressing while the status does not describe the current spec: no status yet, an
-- observedGeneration (on status or on Ready) behind metadata.generation, or no Ready condition.
local function unobserved()
  if obj.status == nil then
    return health("Progressing", "Waiting for the operator to report status")
  end
  local generation = obj.metadata.generation
  local ready = condition("Ready")
  if generation ~= nil then
    local observed = obj.status.observedGeneration
    if observed == nil or observed < generation
        or (ready ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation) then
      return health("Progressing", "Waiting for the operator to observe generation " .. tostring(generation))
    end
  end
  if ready == nil then
    return health("Progressing", "Waiting for the operator to report the Ready condition")
  end
  return nil
end

-- Health of a Ready condition that is not True. `byReason` maps the kind's reasons to a health
-- status; any other reason is Degraded when Ready is False (waiting will not fix it) and
-- Progressing when Ready is Unknown (the operator has not decided yet).
local function notReady(ready, byReason)
  local status = byReason[ready.reason]
  if status == nil then
    if ready.status == "False" then
      status = "Degraded"
    else
      status = "Progressing"
    end
  end
  return health(status, messageOf(ready, "Ready is " .. tostring(ready.status) .. ": " .. tostring(ready.reason)))
end
