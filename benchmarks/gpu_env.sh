# Source this on a CUDA machine whose python3 already has torch, numpy, scipy, typer, rich and matplotlib
# (no network needed): entmin runs from the checkout, Fashion-MNIST comes from $ENTMIN_FASHION_MNIST_DIR
# (default .devdata/fashion-mnist, the four .gz files of Debian's package), wheels in .whl/ (optuna and
# its needs, for `entmin search`) are installed into /tmp/site.
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export ENTMIN_FASHION_MNIST_DIR="${ENTMIN_FASHION_MNIST_DIR:-$PWD/.devdata/fashion-mnist}"
export ENTMIN_CACHE="${ENTMIN_CACHE:-/tmp/entmin-cache}"
if [ -d .whl ] && ! python3 -c "import optuna" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
ENTMIN="python3 -m entmin.cli"
