#!/usr/bin/env bash
# Runs every test of mio-sse: unit and property tests, integration over real sockets, curl, a client
# library, a real Redis, the load generator, and the demo page in headless Chromium. Installs what the tests
# need when it is missing (Debian's chromium and redis-server, the npm packages pinned in
# tests/browser/package-lock.json, Python's prometheus_client), so a fresh machine needs only this command.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -z "${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  echo "test.sh: installing Debian's chromium for the browser tests"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi
if ! command -v redis-server >/dev/null; then
  echo "test.sh: installing Debian's redis-server for the backplane tests"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
  # The tests start their own redis-server on a free port; the packaged service is not needed.
  (as_root systemctl disable --now redis-server || as_root service redis-server stop) >/dev/null 2>&1 || true
fi
if ! command -v curl >/dev/null; then
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq curl >/dev/null
fi
if ! python3 -c "import prometheus_client" 2>/dev/null; then
  echo "test.sh: installing prometheus_client (the reference parser the metrics test checks against)"
  python3 -m pip install --quiet --disable-pip-version-check prometheus_client 2>&1 | grep -v "Running pip as the 'root' user" || true
fi
if ! (cd tests/browser && npm ls --loglevel=error >/dev/null 2>&1); then
  echo "test.sh: installing tests/browser's npm packages"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# Run every test target, then one closing line that adds up all of cargo's per-target "test result" lines
# (cargo's own last line is the doc-tests', which alone says little).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
