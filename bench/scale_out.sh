#!/usr/bin/env bash
# Scale-out figures (README, "Scaling out"): streams held by 4 workers on one Redis backplane, driven by
# the load generator in 4 processes from 4 source addresses; then publish-to-receive latency at 10,000
# streams and 5 events/s, in-process against through Redis. Needs redis-server; loopback only.
#
#   bench/scale_out.sh [STREAMS]
set -euo pipefail
cd "$(dirname "$0")/.."
streams=${1:-70000}
. bench/lib.sh

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
pids+=($!)
sleep 0.3

echo "== $streams streams on 4 workers (Redis backplane), load generator in 4 processes"
port=$(free_port)
$bin/mio-sse --workers 4 --redis "redis://127.0.0.1:$redis_port" --listen "127.0.0.1:$port" --request-timeout-ms 30000 \
  --interval-ms 30000 --log-level warn --static-dir /nonexistent &
pids+=($!)
wait_http "$port"
$bin/mio-sse-load hold --url "http://127.0.0.1:$port/home/events" --streams "$streams" --procs 4 \
  --source-ips 127.0.0.1-127.0.0.4 --ramp 2000 --duration-s 75 --connect-timeout-s 30 --quiet || true
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

for mode in in-process redis; do
  echo "== 10000 streams, 100 events at 5/s, $mode"
  port=$(free_port)
  extra=()
  [ "$mode" = redis ] && extra=(--redis "redis://127.0.0.1:$redis_port/bench$RANDOM")
  $bin/mio-sse --listen "127.0.0.1:$port" --interval-ms 0 --log-level warn --static-dir /nonexistent "${extra[@]}" &
  pids+=($!)
  wait_http "$port"
  $bin/mio-sse-load fanout --url "http://127.0.0.1:$port/home/events" --streams 10000 --events 100 --rate 5 --quiet \
    --source-ips 127.0.0.5-127.0.0.8 \
    | grep -E "delivered|publish → receive|failures" || true
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
done
