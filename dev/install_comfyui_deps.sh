#!/usr/bin/env bash
# Install a ComfyUI checkout's Python requirements into an existing interpreter
# without disturbing its torch. Safe to re-run: pip skips what is satisfied.
# Usage: dev/install_comfyui_deps.sh PYTHON COMFYUI_DIR
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 PYTHON COMFYUI_DIR" >&2
    exit 2
fi
python=$1
comfy_dir=$2
req="$comfy_dir/requirements.txt"

if [ ! -f "$req" ]; then
    echo "error: no requirements.txt in '$comfy_dir' (is it a ComfyUI checkout?)" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Drop torch and the packages built against a specific torch: the upstream
# lines would pull CUDA wheels, and torchvision/torchaudio have no CPU build
# matching our torch here (tests use a torchvision stand-in instead).
# spandrel is optional and would drag torchvision back in.
grep -Ev '^[[:space:]]*(torch|torchvision|torchaudio|spandrel)[[:space:]]*([<>=!~;[].*)?$' \
    "$req" > "$tmp/requirements.txt"
# ComfyUI imports requests but does not list it.
echo "requests" >> "$tmp/requirements.txt"

# Pin the installed torch so no requirement can upgrade or replace it.
"$python" -c "from importlib.metadata import version; print('torch==' + version('torch'))" > "$tmp/constraints.txt"

"$python" -m pip install -q -r "$tmp/requirements.txt" -c "$tmp/constraints.txt"
