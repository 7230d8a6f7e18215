#!/usr/bin/env bash
# Prepares .gpu_bundle/ for dev/benchmarks/bench_gpu.py on the device machine, which reaches no network, has torch,
# numpy and safetensors in its python3 but not diffusers or torchsde, and gets only the repository (ComfyUI beside
# the checkout does not travel). Run here, once, from anywhere:
#
#     bash dev/benchmarks/gpu_bundle.sh
#
# It writes (git-ignored through .git/info/exclude, so it is never committed; the device tool carries it):
#   .gpu_bundle/ComfyUI.tar.gz   the ComfyUI checkout the tests use (tests/support/comfyui.py), without .git
#   .gpu_bundle/wheels/*.whl     pure-Python wheels: diffusers (this .venv's version), torchsde, trampoline
# bench_gpu.py unpacks both into a temporary folder by itself. Then, with the device tool:
#     run(command="bash -c 'PYTHONUNBUFFERED=1 python3 dev/benchmarks/bench_gpu.py --out $OUT'",
#         carry=[".gpu_bundle"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.gpu_bundle/' "$exclude" 2>/dev/null || echo '/.gpu_bundle/' >> "$exclude"

comfy=$("$PY" tests/support/comfyui.py) || { echo "ComfyUI not found: set COMFYUI_PATH" >&2; exit 1; }
rm -rf .gpu_bundle
mkdir -p .gpu_bundle/wheels
tar --exclude=.git --exclude=__pycache__ -czf .gpu_bundle/ComfyUI.tar.gz -C "$(dirname "$comfy")" "$(basename "$comfy")"

diffusers=$("$PY" -c 'import diffusers; print(diffusers.__version__)')
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform any --platform manylinux2014_x86_64 -d .gpu_bundle/wheels \
    "diffusers==$diffusers" torchsde==0.2.6 trampoline==0.1.2
du -sh .gpu_bundle .gpu_bundle/* .gpu_bundle/wheels/*
