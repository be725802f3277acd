#!/usr/bin/env bash
# Topic figures (docs/protocol.md, "Topics"): STREAMS streams over TOPICS topics on enough workers (one
# Redis backplane), the load generator in as many processes, EVENTS events published to the topics in
# turn, by a publisher that waits for each answer and by one that pipelines; then 19,000 streams over
# 1,900 topics in one process (no Redis), and 19,000 streams on one topic, the shape of every run before
# topics (BEFORE=path/to/an/older/mio-sse runs that one on the older binary too).
# Prints deliveries/s, server CPU per delivery, the server's memory, and the load generator's verdict.
# Needs redis-server; loopback only.
#
#   bench/topics.sh [STREAMS] [TOPICS] [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
streams=${1:-100000}
topics=${2:-10000}
events=${3:-20000}
workers=$(( (streams + 18999) / 19000 ))
. bench/lib.sh
# CPU seconds (user + system) of a process and its children, from /proc.
cpu_s() { local t=0; for p in "$1" $(pgrep -P "$1" || true); do
  t=$(( t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0) )); done
  python3 -c "print($t / $(getconf CLK_TCK))"; }
# Memory of a process and its children: RSS and PSS in MB (PSS shares the binary's pages fairly).
mem_mb() { local rss=0 pss=0; for p in "$1" $(pgrep -P "$1" || true); do
  rss=$(( rss + $(awk '/^Rss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0) ))
  pss=$(( pss + $(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0) )); done
  echo "RSS $(( rss / 1024 )) MB, PSS $(( pss / 1024 )) MB"; }
metric() { curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

# One fan-out: prints its figures. $1 server pid, $2 port, $3 streams, then the load generator's flags.
fanout() {
  local pid=$1 port=$2 want=$3; shift 3
  local out; out=$(mktemp)
  $bin/mio-sse-load fanout --url "http://127.0.0.1:$port/home/events" --streams "$want" --events "$events" \
    --rate 0 --publisher "${publisher:-wait}" --connect-timeout-s 60 --duration-s 600 --json --quiet "$@" > "$out" &
  local load=$!
  # Publishing starts once every stream is open: take the CPU reading then.
  until [ "$(metric "$port" mio_sse_open_streams || echo 0)" -ge "$want" ] 2>/dev/null; do
    kill -0 "$load" 2>/dev/null || break; sleep 0.2; done
  local cpu0; cpu0=$(cpu_s "$pid")
  echo "  server memory with $want streams open: $(mem_mb "$pid"); topics: $(metric "$port" mio_sse_topics)"
  wait "$load" || true
  local cpu1; cpu1=$(cpu_s "$pid")
  python3 - "$out" "$cpu0" "$cpu1" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
cpu = float(sys.argv[3]) - float(sys.argv[2])
d = r["delivered"]
t = r.get("topics") or {}
print(f"  delivered {d:,} of {r['expected']:,} expected; {r['rates']['deliveries_per_s']:,.0f} deliveries/s; "
      f"server CPU {cpu:.2f} s = {cpu * 1e6 / max(d, 1):.2f} µs per delivery (connections open, publishing)")
if t:
    p = t["deliveries_per_topic"]
    print(f"  topics {t['count']} ({t['dist']}), {t['with_streams']} with streams; deliveries per topic "
          f"min {p['min']} p50 {p['p50']} p99 {p['p99']} max {p['max']}; wrong topic {t['wrong_topic']}")
lat = r["latency_ms"]
print(f"  publish → receive p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms; failures {sum(r['failures'].values())}; "
      f"verdict {r['verdict']}")
PY
  rm -f "$out"
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
pids+=($!)
sleep 0.3

for publisher in wait pipeline; do
  echo "== $streams streams over $topics topics on $workers workers (Redis backplane), $events events," \
    "publisher: $publisher, load generator in $workers processes"
  port=$(free_port)
  $bin/mio-sse --workers "$workers" --redis "redis://127.0.0.1:$redis_port/topics$RANDOM" --listen "127.0.0.1:$port" \
    --request-timeout-ms 60000 --interval-ms 0 --log-level warn --static-dir /nonexistent &
  pids+=($!)
  wait_http "$port"
  fanout "${pids[-1]}" "$port" "$streams" --topics "$topics" --procs "$workers" \
    --source-ips "127.0.0.1-127.0.0.$workers" --ramp 5000
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
done
publisher=wait

echo "== 19000 streams over 1900 topics, one process, $events events"
port=$(free_port)
$bin/mio-sse --listen "127.0.0.1:$port" --interval-ms 0 --log-level warn --static-dir /nonexistent &
pids+=($!)
wait_http "$port"
fanout "${pids[-1]}" "$port" 19000 --topics 1900 --source-ips 127.0.0.1-127.0.0.2
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

events=200
for server in "$bin/mio-sse" ${BEFORE:+"$BEFORE"}; do
  echo "== 19000 streams on one topic, one process, $events events ($server)"
  port=$(free_port)
  "$server" --listen "127.0.0.1:$port" --interval-ms 0 --log-level warn --static-dir /nonexistent &
  pids+=($!)
  wait_http "$port"
  fanout "${pids[-1]}" "$port" 19000 --source-ips 127.0.0.1-127.0.0.2
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
done
