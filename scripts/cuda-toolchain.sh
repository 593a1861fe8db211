#!/usr/bin/env bash
# A CUDA 13 compiler from PyPI in a local venv (.cuda-venv/, ignored by git), for the compile
# check (`make cuda-check`) on a machine without a GPU or a system CUDA install. Idempotent: a
# venv that already has the pinned versions is left as it is. Prints the toolkit's bin/ folder.
#
# The cu12 wheels ship no nvcc; the CUDA 13 ones (nvidia-cuda-nvcc with its crt, nvvm and
# runtime parts) do, laid out as one toolkit under site-packages/nvidia/cu13/. nvidia-cuda-cccl
# brings the C++ core libraries (cuda/std, cub) the headers include. About 124 MB to download.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${CUDA_VENV:-.cuda-venv}
CUDA_VER=13.4.92     # nvcc, crt, nvvm and runtime: one release, matching CUDARC_CUDA_VERSION=13040
CCCL_VER=13.3.5.0.6  # the newest nvidia-cuda-cccl on PyPI when this was pinned
PKGS=(
  "nvidia-cuda-nvcc==$CUDA_VER"
  "nvidia-cuda-crt==$CUDA_VER"
  "nvidia-nvvm==$CUDA_VER"
  "nvidia-cuda-runtime==$CUDA_VER"
  "nvidia-cuda-cccl==$CCCL_VER"
)
STAMP="$VENV/.dlhist-cuda-$CUDA_VER-$CCCL_VER"
if [ ! -f "$STAMP" ]; then
  PY=${PYTHON:-python3}
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PKGS[@]}" >&2
  touch "$STAMP"
fi
BIN=$(cd "$VENV" && pwd)/$(cd "$VENV" && ls -d lib/python3*/site-packages/nvidia/cu13/bin | head -1)
[ -x "$BIN/nvcc" ] || { echo "cuda-toolchain: no nvcc under $BIN" >&2; exit 1; }
echo "$BIN"
