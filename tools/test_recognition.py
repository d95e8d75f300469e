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
    import tempfile

    from omnisense.engine import run_lightning_cli

    config, ckpt, root, out = (argv or sys.argv[1:])[:4]
    results = run_lightning_cli(["test", "--config", config, "--ckpt_path", ckpt, "--data.init_args.root", root,
                                 "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                                 "--trainer.default_root_dir", tempfile.mkdtemp(prefix="omnisense-test-")],
                                return_results=True)
    metrics = {k: v for k, v in results[0].items() if k.startswith("test/")}
    Path(out).write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
