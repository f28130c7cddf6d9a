-- One wrk script for every scenario; BENCH_MODE picks the request shape.
--   transfer: POST transfers between random seeded users, unique Idempotency-Key each
--   balance:  GET a random user's balance
--   history:  GET one user's newest history page
local mode = os.getenv("BENCH_MODE")
local path = os.getenv("BENCH_PATH")
local token = os.getenv("BENCH_TOKEN") or ""
local users = {}
local counter = 0

local thread_counter = 0
function setup(thread)
  thread_counter = thread_counter + 1
  thread:set("tid", tostring(thread_counter) .. "-" .. tostring(os.time()))
end

function init(args)
  local f = io.open(os.getenv("BENCH_USERS"), "r")
  for line in f:lines() do users[#users + 1] = line end
  f:close()
  math.randomseed(os.time() + #tostring(tid) + counter)
end

local function headers()
  local h = {["Content-Type"] = "application/json"}
  if token ~= "" then h["Authorization"] = "Bearer " .. token end
  return h
end

function request()
  counter = counter + 1
  if mode == "transfer" then
    local a = math.random(#users)
    local b = math.random(#users - 1)
    if b >= a then b = b + 1 end
    local h = headers()
    h["Idempotency-Key"] = tid .. "-" .. counter
    local body = string.format('{"from_user_id":"%s","to_user_id":"%s","amount":1}', users[a], users[b])
    return wrk.format("POST", path, h, body)
  elseif mode == "balance" then
    return wrk.format("GET", path .. users[math.random(#users)], headers())
  else
    return wrk.format("GET", path, headers())
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.mean))
end
