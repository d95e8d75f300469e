"""Calibrate the shipped classifiers' rejection rules: `omnisense.train.rejection` (see its docstring).

    python tools/calibrate_rejection.py [--models NAME ...] [--quick] [--write] [--cache DIR] [--out FILE]
"""

from omnisense.train.rejection import main

if __name__ == "__main__":
    raise SystemExit(main())
