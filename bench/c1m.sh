#!/usr/bin/env bash
# One million SSE streams on this machine in one command (or STREAMS): applies the kernel settings the
# run needs (printing each before → after, restoring them at the end, also after Ctrl-C), starts Redis,
# mio-sse with as many workers as the fd limit requires and mio-sse-load with as many processes and source
# addresses, opens the streams, holds them, and prints a progress line a second, a table, and one JSON line
# last. Needs root for the kernel settings at large counts, and redis-server.
#
#   bench/c1m.sh [STREAMS] [--hold-s S] [--rolling-restart] [--ramp R] [...]    (--help: every option)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p mio-sse -p mio-sse-load
exec target/release/c1m "$@"
