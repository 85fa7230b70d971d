#!/usr/bin/env bash
# Builds llama-cpp-python (with its OpenAI-compatible server) from source for a portable CPU baseline, then checks it.
#
# Why: llama.cpp's default build uses -march=native. On CPUs that advertise AMX (amx_tile/amx_int8/amx_bf16, common on
# cloud Xeons) that compiles its AMX kernels, and the first decode crashes with SIGSEGV in ggml_backend_amx_mul_mat.
# A native build also runs only on CPUs like the one that built it. So we build for a baseline every x86-64 server
# of the last decade has (AVX, AVX2, FMA, F16C), with AMX off; on arm64 only GGML_NATIVE=OFF (llama.cpp then targets
# the generic armv8 baseline).
#
# pip keys its wheel cache by version, not by CMAKE_ARGS, so a cached native build would be reused silently: the
# build runs with --no-binary and --no-cache-dir, and a stamp in the venv records the flags that were used.
# Usage: scripts/install_llama.sh VENV_DIR
set -euo pipefail
VENV=${1:-.venv}
VERSION=0.3.36
case "$(uname -m)" in
  x86_64|amd64)
    FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF"
    FLAGS="$FLAGS -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" ;;
  *)
    FLAGS="-DGGML_NATIVE=OFF" ;;
esac
STAMP="$VENV/.llama-cpp-$VERSION-$(printf '%s' "$FLAGS" | sha256sum | cut -c1-12)"
if [ ! -f "$STAMP" ]; then
  echo "building llama-cpp-python $VERSION for a portable CPU baseline (about 5 minutes): $FLAGS"
  CMAKE_ARGS="$FLAGS" FORCE_CMAKE=1 "$VENV/bin/pip" install --disable-pip-version-check -q \
    --no-binary llama-cpp-python --no-cache-dir --force-reinstall --no-deps "llama-cpp-python==$VERSION"
  "$VENV/bin/pip" install --disable-pip-version-check -q "llama-cpp-python[server]==$VERSION"
  rm -f "$VENV"/.llama-cpp-*
  printf '%s\n' "$FLAGS" > "$STAMP"
fi
