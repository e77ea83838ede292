#!/usr/bin/env bash
# Debian's Chromium, for the browser tests (tests/test_demo_server.py drives it with Playwright; no browser is
# downloaded from anywhere else). Does nothing when /usr/bin/chromium exists. Called by .ci/run, which runs as
# root on Debian; elsewhere it only says what is missing, and the browser tests are skipped with that reason.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium.sh: /usr/bin/chromium is missing; run 'apt-get install chromium' as root to enable the browser tests." >&2
    exit 0
fi
echo "Installing Chromium with apt-get (for the browser tests)" >&2
LOG="$(mktemp)"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-liberation; } >"$LOG" 2>&1; then
    tail -n 20 "$LOG" >&2
    echo "install-chromium.sh: apt-get could not install chromium (see above); the browser tests will be skipped." >&2
fi
rm -f "$LOG"
