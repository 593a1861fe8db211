#!/usr/bin/env bash
# `make cuda-check`: compiles the `cuda` feature, every kernels/*.cu to PTX and the GPU tests,
# and lints them, on a machine without a GPU or a system CUDA install. Nothing is linked or run.
#
# - scripts/cuda-toolchain.sh puts a CUDA 13 nvcc from PyPI in .cuda-venv/ (once);
# - CUDARC_CUDA_VERSION=13040 names the toolkit to cudarc, whose build otherwise asks nvcc and
#   rejects a version it does not know (13.5);
# - CUDA_COMPUTE_CAP (default 80) is the PTX target of candle-kernels and of our build.rs, which
#   otherwise ask nvidia-smi.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(bash scripts/cuda-toolchain.sh)
export PATH="$BIN:$PATH"
export CUDARC_CUDA_VERSION=13040
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80}
CARGO=${CARGO:-cargo}
echo "cuda-check: $(nvcc --version | tail -1), CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP" >&2
$CARGO check --features cuda --all-targets
$CARGO clippy --features cuda --all-targets -- -D warnings
echo "cuda-check: the cuda feature, its kernels and its tests compile and pass clippy (no GPU used)" >&2
