#!/usr/bin/env bash
# The tiny SVD's recipe, end to end and resumable: re-run the same command after an interruption and every stage
# continues from its newest checkpoint (a finished stage is skipped). CPU: OMP_NUM_THREADS=2 on this 2-core machine.
#
#   bash dev/train_tiny_svd.sh RUNS_DIR [BASE2_STEPS]
#
#   1. VAE (TAESD architecture, 32 channels) on SynTrack frames        -> RUNS/vae/vae
#   2. a fresh UNet folder with that VAE and the stand-in image encoder -> RUNS/init/{unet,vae,image_encoder}
#   3. the base: the whole UNet, SVD's EDM objective (trackdiffusion train svd-base) -> RUNS/base/unet (1750 steps),
#      then a second run from it with a fresh schedule (LR 2e-4, linear decay) -> RUNS/base2/unet (BASE2_STEPS)
#   4. the shipped files: fp16 copies in models/tiny_svd/weights/
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:?usage: dev/train_tiny_svd.sh RUNS_DIR [BASE2_STEPS]}
BASE2_STEPS=${2:-2750}
PY=.venv/bin/python
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

[ -f "$RUNS/vae/vae/config.json" ] || $PY -m trackdiffusion.training.tiny_svd_vae --out "$RUNS/vae" --steps 2500 \
    --lr 5e-4 --save-every 250
[ -f "$RUNS/init/unet/config.json" ] || $PY -c "import sys; from trackdiffusion.models.tiny_svd.files import init_folder; \
init_folder(sys.argv[1], sys.argv[2])" "$RUNS/init" "$RUNS/vae/vae"
$PY -m trackdiffusion train svd-base --data syntrack --out "$RUNS/base" --base "$RUNS/init/unet" \
    --vae "$RUNS/init/vae" --image-encoder "$RUNS/init/image_encoder" --size 64x64 --frames 16 --batch 8 \
    --steps 1750 --lr 3e-4 --warmup 200 --save-every 250 --resume --no-progress
$PY -m trackdiffusion train svd-base --data syntrack --out "$RUNS/base2" --base "$RUNS/base/unet" \
    --vae "$RUNS/init/vae" --image-encoder "$RUNS/init/image_encoder" --size 64x64 --frames 16 --batch 8 \
    --steps "$BASE2_STEPS" --lr 2e-4 --warmup 100 --save-every 250 --seed 1 --resume --no-progress
$PY -c "import sys; from trackdiffusion.models.tiny_svd.files import write_shipped; \
write_shipped(sys.argv[1], sys.argv[2], sys.argv[3])" "$RUNS/base2/unet" "$RUNS/init/vae" "$RUNS/init/image_encoder"
