# Sourced by the RoITr recipes (tools/train_roitr_small.sh, tools/train_roitr_lidar.sh): their one `stage`, which
# reads PY, RUNS, STEPS (each stage's last step, for a smoke test; empty: the configs') and EXTRA (arguments for
# every fit) from the recipe.
#
# stage INDEX NAME CONFIG START_CKPT [extra fit arguments...]: fit into $RUNS/NAME, resuming its own last.ckpt if
# any, else START_CKPT (when not "-"); marks the stage done when the fit returns.
stage() {
    local index=$1 name=$2 config=$3 start=$4
    shift 4
    local dir=$RUNS/$name
    if [ -f "$dir/DONE" ]; then
        echo "[roitr] $name: done already ($dir/DONE)"
        return
    fi
    local resume=()
    if [ -f "$dir/checkpoints/last.ckpt" ]; then
        resume=(--ckpt_path "$dir/checkpoints/last.ckpt")
    elif [ "$start" != "-" ]; then
        resume=(--ckpt_path "$start")
    fi
    if [ ${#STEPS[@]} -gt 0 ]; then
        set -- "$@" --trainer.max_steps "${STEPS[$index]}"
    fi
    echo "[roitr] $name: $config ${resume[*]}"
    "$PY" -m omnisense.cli fit --config "$config" "$@" "${resume[@]}" "${EXTRA[@]}" \
        --trainer.logger.init_args.save_dir "$(dirname "$RUNS")" --trainer.logger.init_args.name "$(basename "$RUNS")" \
        --trainer.logger.init_args.version "$name"
    touch "$dir/DONE"
}
