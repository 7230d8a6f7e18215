#!/usr/bin/env bash
# Browser-test dependencies of the canvas editors: Debian's chromium and the npm package playwright-core (which
# drives it; playwright-core never downloads a browser of its own). Idempotent: a second run installs nothing.
# Without them the browser tests skip with the reason (CI=true: an error); the Python tests need neither.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing Debian chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  else
    echo "chromium missing and apt-get not usable as this user: the browser tests will skip" >&2
    [ "${CI:-}" = true ] && { echo "error: CI=true needs chromium for the browser tests" >&2; exit 1; }
  fi
fi

if command -v npm >/dev/null 2>&1; then
  # npm ci wipes node_modules; skip it when the installed playwright-core already is the locked one.
  locked=$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version')
  installed=$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch { "" }')
  if [ "$locked" != "$installed" ]; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
  fi
else
  echo "npm missing: the browser tests will skip" >&2
  [ "${CI:-}" = true ] && { echo "error: CI=true needs node and npm for the browser tests" >&2; exit 1; }
fi
