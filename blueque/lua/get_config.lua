-- get_config: the queue's effective settings (the config hash over the defaults), checked as
-- the scripts that use them check them.
-- KEYS[1] config hash
-- Returns a flat list: field, value, ... for every known setting; or an error that names the
-- first field that is not a valid value.
local names = {}
for field, _ in pairs(DEFAULTS) do names[#names + 1] = field end
table.sort(names)
local settings, bad_config = read_settings(KEYS[1], names)
if bad_config then return bad_config end
local out = {}
for _, field in ipairs(names) do
  out[#out + 1] = field
  out[#out + 1] = tostring(settings[field])
end
return out
