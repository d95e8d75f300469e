"""Evaluate a trained audio checkpoint on its held-out splits and export it to omnisense/shipped/.

    python tools/export_audio_weights.py CONFIG CKPT NAME [--root DATA] [--licence TEXT] [--overwrite]

e.g. `python tools/export_audio_weights.py configs/audio/audio_cnn_small_sonic_pi.yaml \
      runs/audio-cnn-small-sonic-pi/version_0/checkpoints/last.ckpt audio_cnn_small_sonic_pi`

The work is `omnisense.train.audio.export_weights`: a `WeightsMeta` (task audio_classification, the config's model
spec, the classes, the `AudioSpec` with the training split's statistics, val/test metrics, the config as recipe).
The licence is `--licence`, else the one recorded for the shipped NAME in `LICENCES`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omnisense.train.audio import export_weights

LICENCES = {  # the shipped files' data and its licence
    "audio_cnn_small_audio_events": "trained by omnisense on its own generated data; Apache-2.0 like the code",
    "audio_cnn_small_sonic_pi": ("trained by omnisense on the sonic-pi-samples recordings "
                                 "(Debian sonic-pi-samples, CC0)"),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("ckpt", type=Path)
    parser.add_argument("name", help="file stem under --out-dir")
    parser.add_argument("--root", help="dataset folder (overrides data.init_args.root)")
    parser.add_argument("--licence", help="the weights' licence (default: LICENCES[name], else 'trained by omnisense')")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[1] / "omnisense" / "shipped")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    licence = args.licence or LICENCES.get(args.name, "trained by omnisense")
    result = export_weights(args.config, args.ckpt, args.out_dir / f"{args.name}.safetensors", root=args.root,
                            licence=licence, overwrite=args.overwrite)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
