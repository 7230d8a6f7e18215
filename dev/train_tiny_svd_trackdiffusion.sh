#!/usr/bin/env bash
# TrackDiffusion trained on the shipped tiny SVD with the official two-stage recipe, exported in the official release
# layout and converted for ComfyUI exactly as the official file is. Resumable: re-run the same command after an
# interruption and each stage continues from its newest checkpoint (a finished stage is skipped).
#
#   bash dev/train_tiny_svd_trackdiffusion.sh RUNS_DIR [STAGE1_STEPS] [STAGE2_STEPS]
#
#   1. stage 1 (coloured box outlines drawn into the targets)   -> RUNS/stage1/svd_stage1/unet (+ the delta)
#   2. stage 2 (clean targets), from the stage-1 delta          -> RUNS/stage2/svd_stage2/unet
#   3. trackdiffusion weights convert RUNS/stage2/svd_stage2/unet -> models/tiny_svd/adapters/ (fp16 delta)
#
# The trainable set is the official one (position net, fusers, conv_in, conv_out, mix factors); the base UNet, VAE
# and image encoder are the shipped fp16 files (what ComfyUI's Load Tiny SVD loads). Stage-1 outlines are half a
# latent cell wide (4 px), as the official 4 px for SVD's 8x VAE. LRs: 1e-3 then 3e-4 with 50 warm-up steps, our
# choice for runs of thousands of steps instead of the official 191,500 and 87,000 (official 2e-4, 3e-5): the fusers'
# gates start at zero, and at 3e-4 they had opened to |alpha| 0.11 after 4,500 steps. Seeds 4 and 5 are the shipped
# adapter's.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:?usage: dev/train_tiny_svd_trackdiffusion.sh RUNS_DIR [STAGE1_STEPS] [STAGE2_STEPS]}
S1=${2:-3000}
S2=${3:-1000}
PY=.venv/bin/python
W=models/tiny_svd/weights
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
COMMON=(--data syntrack --base "$W/unet" --vae "$W/vae" --image-encoder "$W/image_encoder" --size 64x64 --frames 16
        --batch 8 --save-every 250 --resume --no-progress)

$PY -m trackdiffusion train trackdiffusion-svd --stage 1 --out "$RUNS/stage1" --steps "$S1" --lr 1e-3 --warmup 50 --seed 4 \
    "${COMMON[@]}"
$PY -m trackdiffusion train trackdiffusion-svd --stage 2 --out "$RUNS/stage2" --steps "$S2" --lr 3e-4 --warmup 50 \
    --init "$RUNS/stage1/trackdiffusion_svd_stage1.safetensors" --seed 5 "${COMMON[@]}"
$PY -m trackdiffusion weights convert "$RUNS/stage2/svd_stage2/unet" \
    models/tiny_svd/adapters/tiny_svd_trackdiffusion_stage2_fp16.safetensors --force
