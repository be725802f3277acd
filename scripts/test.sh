#!/usr/bin/env bash
# Runs every test of mio-sse: unit, integration over real sockets, curl, and the demo page in headless
# Chromium. Installs what the tests need when it is missing (Debian's chromium package, the npm packages
# pinned in tests/browser/package-lock.json, Python's prometheus_client), so a fresh machine needs only
# this command.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -z "${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  echo "test.sh: installing Debian's chromium for the browser tests"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
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

cargo test "$@"
