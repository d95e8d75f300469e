"""Run `omnisense test` on a recognition config + checkpoint and write the held-out metrics as JSON.

    PYTHONPATH=. python tools/test_recognition.py configs/recognition/uniformer_tiny_synthetic.yaml \
        runs/uniformer-tiny-synthetic/version_0/checkpoints/last.ckpt data/actions runs/uniformer_test.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    import argparse
    import tempfile

    from omnisense.engine import run_lightning_cli

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="the run's recipe (configs/recognition/<name>.yaml)")
    ap.add_argument("ckpt", help="the run's Lightning checkpoint")
    ap.add_argument("root", help="the dataset folder (data.init_args.root)")
    ap.add_argument("out", type=Path, help="JSON to write the test/ metrics to (tools/export_recognition.py --metrics)")
    args = ap.parse_args(argv)
    results = run_lightning_cli(["test", "--config", args.config, "--ckpt_path", args.ckpt,
                                 "--data.init_args.root", args.root, "--trainer.logger", "false",
                                 "--trainer.enable_progress_bar", "false",
                                 "--trainer.default_root_dir", tempfile.mkdtemp(prefix="omnisense-test-")],
                                return_results=True)
    metrics = {k: v for k, v in results[0].items() if k.startswith("test/")}
    args.out.write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
