# What the bench scripts share (sourced, not run): the release binaries built, a free loopback port, the
# processes started kept in `pids` and stopped on exit, and a wait until a server answers /metrics.
cargo build --release --quiet -p mio-sse -p mio-sse-load
bin=target/release
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
# Up to 20 s: workers with many streams to come may take a while to listen.
wait_http() { for _ in $(seq 400); do curl -sf "http://127.0.0.1:$1/metrics" >/dev/null && return 0; sleep 0.05; done; return 1; }
