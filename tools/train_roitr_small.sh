#!/usr/bin/env bash
# The recipe of the shipped omnisense/shipped/roitr_small_cgal.safetensors, from scratch, in three stages on one CPU
# thread (about 44 + 20 + 85 minutes on the 2-core development machine). Resumable: run it again after an
# interruption and each stage goes on from its last checkpoint (saved every 50 steps); finished stages are skipped.
#
#   bash tools/train_roitr_small.sh            # writes runs/roitr_small_cgal/{stage1,stage2,stage3}
#
# Stage 1: configs/registration/roitr_small_cgal.yaml, 2700 steps, 32 points per patch, lr 3e-4.
# Stage 2: configs/registration/roitr_small_cgal_stage2.yaml, stage 1's optimiser and schedule resumed with the
#          paper's 64 points per patch, to step 4350; exported to runs/roitr_small_cgal/stage2.safetensors.
# Stage 3: configs/registration/roitr_small_cgal_stage3.yaml, a fresh Adam (lr 1e-4) from stage 2's weights;
#          exported (with its validation figures) to runs/roitr_small_cgal/roitr_small_cgal.safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DATA=${DATA:-data/registration-pairs-small}
RUNS=${RUNS:-runs/roitr_small_cgal}
# A smoke test of the recipe: ROITR_FIT_ARGS="--data.init_args.tiny true" (extra arguments for every fit) and
# ROITR_STEPS="2 4 2" (each stage's last step instead of the configs' 2700, 4350 and theirs).
read -r -a EXTRA <<< "${ROITR_FIT_ARGS:-}"
read -r -a STEPS <<< "${ROITR_STEPS:-}"

if [ ! -f "$DATA/val.csv" ]; then
    "$PY" -m omnisense.cli data make registration-pairs --size small --out "$DATA"
fi

source tools/_roitr_stage.sh  # after the cd above: from the repository root

stage 0 stage1 configs/registration/roitr_small_cgal.yaml -
stage 1 stage2 configs/registration/roitr_small_cgal_stage2.yaml "$RUNS/stage1/checkpoints/last.ckpt"
if [ ! -f "$RUNS/stage2.safetensors" ]; then
    "$PY" tools/roitr_eval.py "$RUNS/stage2/checkpoints/last.ckpt" --root "$DATA" --export "$RUNS/stage2.safetensors"
fi
stage 2 stage3 configs/registration/roitr_small_cgal_stage3.yaml - --model.init_args.init_weights "$RUNS/stage2.safetensors"
"$PY" tools/roitr_eval.py "$RUNS/stage3/checkpoints/last.ckpt" --root "$DATA" \
    --export "$RUNS/roitr_small_cgal.safetensors" --overwrite
echo "[roitr] weights: $RUNS/roitr_small_cgal.safetensors (compare: omnisense bench registration --weights ...)"
