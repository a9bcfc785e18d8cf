-- Argo CD health of a Bosun Agent, Tool or Policy (bosun.dev/v1alpha1); the same script
-- serves all three Kinds. The operator reports readiness as the Ready condition:
--   no status yet, or a spec change not yet observed  -> Progressing
--   Ready=True                                        -> Healthy
--   Ready=False (a missing Tool or Secret, bad CEL)   -> Degraded
--   Ready=Unknown                                     -> Progressing
local hs = {}

local function ready_condition(status)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

local function describe(condition)
  local reason = condition.reason or ""
  local message = condition.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if message ~= "" then
    return message
  end
  return reason
end

local ready = ready_condition(obj.status)
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Bosun operator to report readiness"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration or ready.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Bosun operator to observe generation " .. tostring(generation)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.status == "False" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = describe(ready)
return hs
