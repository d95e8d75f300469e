#!/usr/bin/env bash
# The recipe of omnisense/shipped/roitr_small_lidar.safetensors: the shipped object weights (roitr_small_cgal)
# fine-tuned on sweep pairs (configs/registration/roitr_small_lidar.yaml) on one CPU thread. Resumable: run it again
# after an interruption and the fit goes on from its last checkpoint (saved every 25 steps).
#
#   bash tools/train_roitr_lidar.sh            # writes runs/roitr_small_lidar/fit and runs/roitr_small_lidar.safetensors
#
# Smoke test: ROITR_FIT_ARGS="--data.init_args.tiny true --trainer.max_steps 2".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DATA=${DATA:-data/sweep-pairs-small}
RUNS=${RUNS:-runs/roitr_small_lidar}
read -r -a EXTRA <<< "${ROITR_FIT_ARGS:-}"

if [ ! -f "$DATA/val.csv" ]; then
    "$PY" -m omnisense.cli data make sweep-pairs --size small --seed 0 --out "$DATA"
fi
resume=(--model.init_args.init_weights omnisense/shipped/roitr_small_cgal.safetensors)
if [ -f "$RUNS/fit/checkpoints/last.ckpt" ]; then
    resume+=(--ckpt_path "$RUNS/fit/checkpoints/last.ckpt")
fi
"$PY" -m omnisense.cli fit --config configs/registration/roitr_small_lidar.yaml --data.init_args.root "$DATA" \
    "${resume[@]}" "${EXTRA[@]}" --trainer.logger.init_args.save_dir "$(dirname "$RUNS")" \
    --trainer.logger.init_args.name "$(basename "$RUNS")" --trainer.logger.init_args.version fit
"$PY" tools/roitr_eval.py "$RUNS/fit/checkpoints/last.ckpt" --root "$DATA" --lidar --export "$RUNS.safetensors" --overwrite
echo "[roitr] weights: $RUNS.safetensors (compare: omnisense bench registration --lidar --weights ...)"
