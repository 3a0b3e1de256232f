-- wrk script for `nox -s bench`: POST pre-signed webhook bodies (one per line: "<signature>\t<body>", made by
-- scripts/bench/scenarios.py so every body carries new wamids), each thread taking every n-th line; counts status
-- codes per thread and writes a JSON summary to $BENCH_RESULT.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  lines = {}
  local n = 0
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    if n % 2 == id then
      local tab = line:find("\t", 1, true)
      table.insert(lines, {line:sub(1, tab - 1), line:sub(tab + 1)})
    end
    n = n + 1
  end
  index = 0
  ok = 0
  other = 0
end

function request()
  index = index + 1
  local item = lines[((index - 1) % #lines) + 1]
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = item[1]}, item[2])
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_other = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_other = total_other + t:get("other")
  end
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  local f = io.open(os.getenv("BENCH_RESULT"), "w")
  f:write(string.format(
    '{"requests": %d, "ok": %d, "non_200": %d, "socket_errors": %d, "requests_per_s": %.1f, "ok_per_s": %.1f, ' ..
    '"p50_ms": %.2f, "p99_ms": %.2f}',
    summary.requests, total_ok, total_other, errors, summary.requests / seconds, total_ok / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  f:close()
end
