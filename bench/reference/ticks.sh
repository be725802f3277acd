#!/usr/bin/env bash
# Tick lateness of mio-sse against a minimal C epoll server (tick_server.c), each read by two clients:
# mio-sse-load and a minimal C client (tick_client.c). STREAMS streams opened at once, 1 s ticks, SECONDS
# of reading, ROUNDS rounds interleaved. If the C server shows the same tail, the tail is the machine's
# (cores, kernel, the client), not the loop's. First, the floor: how late a loop that does nothing but
# sleep to a deadline every millisecond wakes on this machine (wakes.c). Needs a C compiler (cc).
#
#   bench/reference/ticks.sh [STREAMS=19000] [SECONDS=15] [ROUNDS=2]
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/lib.sh
ulimit -n "$(ulimit -Hn)" # a stream is an fd, on both sides (the C programs do not raise it themselves)
streams=${1:-19000} seconds=${2:-15} rounds=${3:-2}
out=target/reference
mkdir -p "$out"
cc -O2 -o "$out/tick_server" bench/reference/tick_server.c
cc -O2 -o "$out/tick_client" bench/reference/tick_client.c
cc -O2 -o "$out/wakes" bench/reference/wakes.c
start_server() { # c|mio-sse PORT: starts it in the background, its pid in `server`
    if [ "$1" = c ]; then "$out/tick_server" 127.0.0.1 "$2" & else
        "$bin/mio-sse" --listen "127.0.0.1:$2" --interval-ms 1000 --log-level warn --static-dir /nonexistent \
            2>/dev/null &
    fi
    server=$!
    pids+=("$server")
    # Until it accepts (the C server has no /metrics for `wait_http`); this probe connection just closes.
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0; sleep 0.05; done
    echo "the $1 server did not listen on port $2 within 10 s" >&2
    return 1
}
lateness() { # CLIENT PORT: one line of percentiles, or FAILED and why (never an empty cell)
    if [ "$1" = c ]; then
        # It prints "FAILED: ..." itself and exits 1 when a stream had no tick.
        "$out/tick_client" 127.0.0.1 "$2" "$streams" "$seconds" | sed 's/.*measured; lateness ms: //' || true
        return
    fi
    local report status=0 line at_send
    report=$("$bin/mio-sse-load" hold --url "http://127.0.0.1:$2/home/events" --streams "$streams" \
        --tick-interval-ms 1000 --duration-s "$seconds" 2>/dev/null) || status=$?
    line=$(grep '^tick lateness' <<<"$report" | sed 's/tick lateness *//') || true
    # The server's share: each tick's own stamp (both servers stamp a tick when they write it).
    at_send=$(grep '^  of it at send' <<<"$report" | sed 's/ *of it at send *//') || true
    if [ "$status" -ne 0 ] || [ -z "$line" ]; then
        echo "FAILED: mio-sse-load exited $status ($(grep -m1 '^attempts' <<<"$report" | tr -s ' ' || echo 'no report')) $line"
    else
        echo "$line; at send: $at_send"
    fi
}
# The floor: a loop that only sleeps to a deadline every ms, on this machine with nothing else running.
echo "machine alone, a loop waking every 1 ms for $seconds s: $("$out/wakes" "$seconds")"
echo
echo "| round | client | server | tick lateness |"
echo "|---|---|---|---|"
for round in $(seq "$rounds"); do
    for client in mio-sse-load c; do
        for server_kind in c mio-sse; do
            port=$(free_port)
            start_server "$server_kind" "$port"
            echo "| $round | $client | $server_kind | $(lateness "$client" "$port") |"
            kill "$server" 2>/dev/null || true
            wait "$server" 2>/dev/null || true
            sleep 2 # the closed connections' TIME_WAIT and memory settle
        done
    done
done
