#!/usr/bin/env bash
# Browser-test dependencies of the canvas editors: Debian's chromium, the npm package playwright-core (which drives
# it; playwright-core never downloads a browser of its own) and the newest pinned ComfyUI frontend (next to the one
# ComfyUI's requirements install). Idempotent: a second run installs nothing.
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

# The newest ComfyUI frontend the editors are tested on, beside the bundled one (the version is pinned in one place,
# tests/support/frontends.py): pip --target puts it under .venv/frontends/, outside site-packages, so ComfyUI's own
# pinned comfyui-frontend-package stays; the tests serve it with main.py --front-end-root. Nothing to do when present.
PY=.venv/bin/python
frontends() { python3 tests/support/frontends.py "$1"; } # standard library only
version=$(frontends newest)
target=$(frontends dir)
if [ -f "$(frontends root)/index.html" ]; then
  :
elif [ -x "$PY" ] && rm -rf "$target.partial" && "$PY" -m pip install -q --disable-pip-version-check --no-deps \
     --target "$target.partial" "comfyui-frontend-package==$version" 2> >(grep -v "^WARNING: Location" >&2); then
  rm -rf "$target"
  mv "$target.partial" "$target"
  echo "installed comfyui-frontend-package $version into $target for the browser tests"
else
  rm -rf "$target.partial"
  echo "could not install comfyui-frontend-package $version into $target (needs $PY and the package index):" \
       "its browser tests will skip" >&2
  if [ "${CI:-}" = true ]; then
    echo "error: CI=true needs comfyui-frontend-package $version for the browser tests" >&2
    exit 1
  fi
fi
