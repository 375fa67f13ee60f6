-- get_config: the queue's effective settings (the config hash over the defaults).
-- KEYS[1] config hash
-- Returns a flat list: field, value, ... for every known setting.
local out = {}
for field, _ in pairs(DEFAULTS) do
  out[#out + 1] = field
  out[#out + 1] = tostring(config(KEYS[1], field))
end
return out
