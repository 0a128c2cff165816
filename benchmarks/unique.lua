-- wrk script: every request head differs (a counter in the path and a cookie),
-- as real traffic does, so no cache of recent heads carries the figure.
local counter = 0

request = function()
  counter = counter + 1
  return wrk.format("GET", "/?n=" .. counter, {["Cookie"] = "session=" .. counter})
end
