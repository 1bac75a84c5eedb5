#!/usr/bin/env bash
# Run every check that needs a CUDA GPU, in one go: the core tests marked `cuda`, the
# E-I VGG-8 throughput run on MNIST with mixed precision, and the step-time benchmark
# on the GPU. Results go to $RESULTS_DIR (default: gpu-results/).
#
# On a machine with a GPU and the requirements installed (no virtual environment is
# created here, so a preinstalled CUDA PyTorch is used as it is):
#     EI_TUTORIAL_DATA=/path/to/data bash scripts/gpu-checks.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
RESULTS_DIR="${RESULTS_DIR:-gpu-results}"
mkdir -p "$RESULTS_DIR"

if ! "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "error: torch.cuda.is_available() is False; run this script on a machine with a CUDA GPU." >&2
    exit 1
fi
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))'

failed=0
run() {
    echo "== $*"
    "$@" || { echo "FAILED: $*" >&2; failed=1; }
}

run "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider tests
run "$PYTHON" benchmarks/gpu_vgg8_mnist.py --steps 300 --output "$RESULTS_DIR/gpu_vgg8_mnist.json"
run "$PYTHON" benchmarks/step_time.py --device cuda --archs vgg8 vgg11 --batch-sizes 32 128 \
    --rounds 10 --warmup 3 --no-write
exit "$failed"
