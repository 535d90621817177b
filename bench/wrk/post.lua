-- wrk script for bench/cmd/rpcbench -wrk: POSTs the body in the file named
-- by $BENCH_BODY with Content-Type $BENCH_CTYPE over wrk's keep-alive
-- connections. No per-response Lua callback, to keep the client light:
-- rpcbench checks the answers with its Go client before each run, and
-- done() reports wrk's own error counts (non-2xx status, socket errors).
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CTYPE")

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("RESULT requests=%d duration_us=%d bytes=%d status_errors=%d socket_errors=%d\n",
      summary.requests, summary.duration, summary.bytes, e.status,
      e.connect + e.read + e.write + e.timeout))
end
