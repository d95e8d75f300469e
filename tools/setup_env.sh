#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv and install the Debian packages the
# stack needs. Safe to run twice: it does nothing when the environment matches pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${OMNISENSE_VENV:-.venv}
PY=${PYTHON:-python3}

need_apt=()
# open3d needs libusb at import time (shared/reference/dependencies.md).
ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' || need_apt+=(libusb-1.0-0)
# The sample-data fetcher unpacks Debian packages with dpkg-deb, which every Debian machine has.
# Optional: Debian's chromium for the browser tests and tools/screenshots.py (OMNISENSE_WITH_CHROMIUM=1).
if [ "${OMNISENSE_WITH_CHROMIUM:-0}" = 1 ] && ! command -v chromium >/dev/null; then need_apt+=(chromium); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

[ -x "$VENV/bin/python" ] || { echo "[setup] creating $VENV"; "$PY" -m venv "$VENV"; }
stamp="$VENV/.omnisense-installed"
want=$(cat pyproject.toml tools/setup_env.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] $VENV is up to date"
  exit 0
fi
echo "[setup] installing omnisense and its pinned stack into $VENV (a few minutes the first time)"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[dev,tensorboard]"
"$VENV/bin/python" - <<'PY'
# spconv's CPU build asks torch for a CUDA stream in backward; make that a no-op without a GPU.
# The fix lives in perception3d._spconv_compat and is applied at use; here we only check it imports.
import importlib, sys
for name in ("torch", "torchvision", "torchaudio", "lightning", "timm", "open3d", "decord", "av", "soundfile", "spconv.pytorch", "roma"):
    try:
        importlib.import_module(name)
    except Exception as exc:  # report all at once, then fail
        print(f"[setup] import {name} failed: {exc}", file=sys.stderr)
        sys.exit(1)
PY
echo "$want" > "$stamp"
echo "[setup] done"
