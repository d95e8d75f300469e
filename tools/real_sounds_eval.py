"""Real-sound models beside a logistic regression on fbank statistics, in one run.

    python tools/real_sounds_eval.py --root data/real-sounds \
        [--weights audio_cnn_small_real_sounds audio_cnn_small_stats_real_sounds ...] [--out FILE]

The work is `omnisense.train.real_sounds.evaluate_real_sounds`: every model and the baseline on the validation files
(choose on these) and on the held-out test files of the split by file the models were trained with; accuracy and
macro-F1, per file. `--weights` takes shipped names or `.safetensors` paths (`tools/export_audio_weights.py` output).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omnisense._io import write_json_atomic
from omnisense.train.real_sounds import evaluate_real_sounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="`omnisense data make real-sounds` folder")
    parser.add_argument("--weights", nargs="+", default=["audio_cnn_small_real_sounds",
                                                         "audio_cnn_small_stats_real_sounds"])
    parser.add_argument("--out", type=Path, default=Path("runs/real_sounds_eval.json"))
    args = parser.parse_args(argv)
    result = evaluate_real_sounds(args.weights, args.root)
    print(f"{result['train_files']} training files; "
          + "; ".join(f"{s}: {result['files'][s]} files {result['per_class'][s]}" for s in result["files"]))
    rows = {**result["models"], "logreg_fbank_stats": result["logreg_fbank_stats"]}
    for name, record in rows.items():
        print(f"  {name:40s} " + "   ".join(f"{s} accuracy {record[s]['accuracy']:.3f} macro-F1 "
                                            f"{record[s]['macro_f1']:.3f}" for s in result["files"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
