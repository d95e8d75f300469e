"""The coarse real-sound model against a logistic regression on fbank statistics, in one run.

    python tools/real_sounds_eval.py --root data/real-sounds [--weights audio_cnn_small_real_sounds] [--out FILE]

The work is `omnisense.train.real_sounds.evaluate_real_sounds`: both on the held-out test files of the split by
file the CNN was trained with; accuracy and macro-F1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omnisense._io import write_json_atomic
from omnisense.train.real_sounds import evaluate_real_sounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="`omnisense data make real-sounds` folder")
    parser.add_argument("--weights", default="audio_cnn_small_real_sounds")
    parser.add_argument("--out", type=Path, default=Path("runs/real_sounds_eval.json"))
    args = parser.parse_args(argv)
    result = evaluate_real_sounds(args.weights, args.root)
    print(f"{result['test_files']} held-out files {result['test_per_class']} ({result['train_files']} training files)")
    for name in ("cnn", "logreg_fbank_stats"):
        print(f"  {name:20s} accuracy {result[name]['accuracy']:.3f}  macro-F1 {result[name]['macro_f1']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
