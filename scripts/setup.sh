#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine: Debian's Fashion-MNIST package, a virtual environment
# (.venv) with torch (the CPU build where one lies on disk) and entmin in editable mode with its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${ENTMIN_FASHION_MNIST_DIR:-}" ] && [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "[setup] installing Debian package dataset-fashion-mnist" >&2
  $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null; }
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv" >&2
  "$PY" -m venv .venv
fi
# torch first and pinned, so that nothing later resolves to a multi-GB CUDA build on a CPU machine.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing torch==2.13.0" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2> >(grep -v "^WARNING: Location" >&2)
fi
stamp=".venv/.entmin-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing entmin (editable) with test tools" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" 2> >(grep -v "^WARNING: Location" >&2)
  touch "$stamp"
fi
