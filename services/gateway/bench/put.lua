-- wrk script: PUT values of SIZE bytes to KEYS rotating keys under PREFIX.
--   wrk -t2 -c64 -d10s -s put.lua http://127.0.0.1:PORT -- SIZE [KEYS] [PREFIX]
local size, keys, prefix, body
local counter = 0
function init(args)
  size = tonumber(args[1] or "1024")
  keys = tonumber(args[2] or "1000")
  prefix = args[3] or ("httpbench/" .. size)
  body = string.rep("Z", size)
  counter = math.random(0, keys - 1)
end
function request()
  counter = (counter + 1) % keys
  return wrk.format("PUT", "/v1/records/" .. prefix .. "/" .. counter,
                    {["Content-Type"] = "application/octet-stream"}, body)
end
