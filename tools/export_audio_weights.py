"""Evaluate a trained audio checkpoint on its held-out splits and export it to omnisense/shipped/.

    python tools/export_audio_weights.py CONFIG CKPT NAME [--root DATA] [--overwrite]

e.g. `python tools/export_audio_weights.py configs/audio/audio_cnn_small_sonic_pi.yaml \
      runs/audio-cnn-small-sonic-pi/version_0/checkpoints/last.ckpt audio_cnn_small_sonic_pi`
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omnisense.train.audio import export_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("ckpt", type=Path)
    parser.add_argument("name", help="file stem under omnisense/shipped/")
    parser.add_argument("--root", help="dataset folder (overrides data.init_args.root)")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[1] / "omnisense" / "shipped")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    result = export_weights(args.config, args.ckpt, args.out_dir / f"{args.name}.safetensors", root=args.root,
                            overwrite=args.overwrite)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
