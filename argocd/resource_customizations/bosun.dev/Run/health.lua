-- Argo CD health of a Bosun Run (bosun.dev/v1alpha1), from status.phase (derived by the
-- operator from the conditions) with the message of the condition that explains it:
--   Succeeded                                          -> Healthy
--   Duplicate (its idempotencyKey already ran)         -> Healthy
--   Cancelled (spec.cancel, as the spec asked)         -> Healthy
--   Failed, DeadLettered                               -> Degraded
--   Suspended (spec.suspend)                           -> Suspended
--   Pending, Queued, Running, Retrying,
--   AwaitingApproval, no status yet                    -> Progressing
-- A Run that has not finished and whose spec change the operator has not yet observed is
-- Progressing. A finished Run keeps its health whatever happens to its spec afterwards.
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, item in ipairs(obj.status.conditions) do
    if item.type == kind then
      return item
    end
  end
  return nil
end

local function explain(kind, fallback)
  local found = condition(kind)
  if found ~= nil and found.message ~= nil and found.message ~= "" then
    return found.message
  end
  return fallback
end

local phase = nil
if obj.status ~= nil then
  phase = obj.status.phase
end

if phase == nil or phase == "" then
  hs.status = "Progressing"
  hs.message = "Waiting for the Bosun operator to admit the Run"
  return hs
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = explain("Succeeded", "Succeeded")
  return hs
end
if phase == "Duplicate" then
  hs.status = "Healthy"
  hs.message = explain("Queued", "Duplicate of Run " .. tostring(obj.status.duplicateOf))
  return hs
end
if phase == "Cancelled" then
  hs.status = "Healthy"
  hs.message = explain("Failed", "Cancelled")
  return hs
end
if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = explain("Failed", "Failed")
  return hs
end
if phase == "DeadLettered" then
  hs.status = "Degraded"
  hs.message = explain("DeadLettered", "Dead-lettered")
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Bosun operator to observe generation " .. tostring(generation)
  return hs
end

if phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = explain("Queued", "Suspended")
  return hs
end
if phase == "Running" then
  hs.status = "Progressing"
  hs.message = explain("Running", "Running")
  return hs
end
if phase == "AwaitingApproval" then
  hs.status = "Progressing"
  hs.message = explain("AwaitingApproval", "Awaiting approval")
  return hs
end
if phase == "Pending" or phase == "Queued" or phase == "Retrying" then
  hs.status = "Progressing"
  hs.message = explain("Queued", phase)
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown phase " .. tostring(phase)
return hs
