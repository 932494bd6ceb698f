-- wrk script: GET KEYS rotating keys under PREFIX (written beforehand).
--   wrk -t2 -c64 -d10s -s get.lua http://127.0.0.1:PORT -- KEYS PREFIX
local keys, prefix
local counter = 0
function init(args)
  keys = tonumber(args[1] or "100")
  prefix = args[2] or "bench/1024"
  counter = math.random(0, keys - 1)
end
function request()
  counter = (counter + 1) % keys
  return wrk.format("GET", "/v1/records/" .. prefix .. "/" .. counter)
end
