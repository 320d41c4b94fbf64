#!/usr/bin/env bash
# Builds .venv from requirements.txt (the one file that pins every package).
# Order matters: mmcv's setup.py imports torch and pkg_resources, so torch and
# an older setuptools go in first and mmcv builds without isolation. pip's
# wheel cache makes a rebuild on the same machine take seconds. What only the
# tests and benchmarks need comes with `scripts/setup.sh tools` (make's tools).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
pin="-c requirements.txt"

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
# --no-compile: no bytecode for the thousands of modules nothing here imports
# (botocore's, torch's, ...); Python writes it for the ones that are, on first
# import, into the same venv
install() { pip install --no-compile "$@"; }

# each step's line, and when the next begins, how long the last one took
STEP=; STEP_START=$SECONDS
step_end() {
  [ -z "$STEP" ] || printf '[setup] %s: %d s\n' "$STEP" $((SECONDS - STEP_START))
}
step() { step_end; STEP=$1; STEP_START=$SECONDS; printf '[setup] %s\n' "$1"; }
# Debian packages, root only (CI runs as root)
apt_need() {  # PACKAGE WHO-NEEDS-IT
  step "$1 (Debian) for $2"
  if [ "$(id -u)" = 0 ]; then
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" \
      || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1"; }) >/dev/null \
      || echo "[setup] warning: $1 not installed; $2 will be skipped"
  else
    echo "[setup] warning: not root, $1 not installed; $2 will be skipped"
  fi
}
# stale DIR FILE: DIR was not installed from this FILE (a copy is kept in it)
stale() { ! cmp -s "$2" "$1/.installed-from" 2>/dev/null; }
# What only the tests and benchmarks need (scripts/setup.sh tools, make's
# tools target): perf_analyzer and libb64 (make bench), nginx (make cluster
# and the tests that start it), Python 3.10 (the image's pre/post check)
tools() {
  step "what only the tests, benchmarks and cluster need (requirements.txt's '# dev')"
  grep -E ' # dev$' requirements.txt | sed 's/ *# dev$//' > "$VENV/requirements.dev.txt"
  install $pin -r "$VENV/requirements.dev.txt"
  # perf_analyzer (make bench): the one in tritonclient 2.51 is the newest that
  # runs on this glibc (2.36); it needs libb64 (Debian) and libcudart.so.12,
  # which nvidia-pytriton bundles under a hashed name.
  PERF_TARGET="$VENV/perf_analyzer"
  if [ ! -x "$PERF_TARGET/bin/perf_analyzer" ]; then
    step "perf_analyzer from tritonclient==2.51.0 (into $PERF_TARGET)"
    pip install --no-deps --target "$PERF_TARGET" tritonclient==2.51.0
  fi
  cudart=$(ls "$VENV"/lib/python3*/site-packages/nvidia_pytriton.libs/libcudart-*.so.12* | head -1)
  mkdir -p "$PERF_TARGET/lib" && ln -sf "$(realpath "$cudart")" "$PERF_TARGET/lib/libcudart.so.12"
  ldconfig -p | grep -q libb64.so.0d || apt_need libb64-0d "perf_analyzer (make bench)"
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || apt_need nginx-light "make cluster"
  # NGC's Python (3.10) with the server image's packages, for the test that
  # runs the pre/post models' code as the image will (pyenv's 3.10 where the
  # machine has one)
  PY310=
  for candidate in python3.10 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10; do
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      PY310=$candidate; break
    fi
  done
  if [ -n "$PY310" ]; then
    if stale "$VENV/py310" deploy/server-requirements.txt; then
      step "Python 3.10 with deploy/server-requirements.txt (into $VENV/py310)"
      rm -rf "$VENV/py310" && "$PY310" -m venv "$VENV/py310"
      "$VENV/py310/bin/python" -m pip --disable-pip-version-check -q install \
        --only-binary=:all: -r deploy/server-requirements.txt
      cp deploy/server-requirements.txt "$VENV/py310/.installed-from"
    fi
  else
    echo "[setup] warning: no python3.10 here; the Python 3.10 check of the pre/post models will be skipped"
  fi
}
if [ "${1:-}" = tools ]; then
  tools
  step_end
  printf '[setup] tools done in %d s\n' "$SECONDS"
  exit 0
fi
step "pip, setuptools (<81: mmcv's setup.py needs pkg_resources)"
pip install $pin pip setuptools wheel
step "torch (CPU build)"
install $pin torch
step "mmengine and mmcv's build tools"
install $pin mmengine ninja psutil numpy
if ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
  # -g0: no debug info for mmcv's op sources, each of which includes torch's headers
  # (the same -O3 code, in about half the time: docs/results/demo-fresh.log)
  step "mmcv with compiled ops (the longest step)"
  CFLAGS="${CFLAGS:-} -g0" MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
    pip install --no-build-isolation $pin mmcv
fi
# Installed without their declared dependencies, which the lock already holds:
# - mmdeploy 1.3.1 declares protobuf<=3.20.2, but tritonclient's gRPC stubs
#   need protobuf>=6.30; mmdeploy's exporter runs fine on the newer one.
# - nvidia-pytriton is here only for the tritonserver binary it bundles; its
#   numpy<2 pin would fight the rest of the stack.
NO_DEPS="mmdeploy nvidia-pytriton"
step "mmdet, ONNX, ONNX Runtime, Triton client"
grep -v -E "^(mmcv|${NO_DEPS// /|})==| # dev$" requirements.txt > "$VENV/requirements.rest.txt"
install -r "$VENV/requirements.rest.txt"
step "$NO_DEPS (without their declared dependencies)"
install --no-deps $pin $NO_DEPS
[ -e /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ] || apt_need libjemalloc2 "the server's memory after large requests (serve/server.py)"
# The runtimes of NGC's native backends, for the local stand-in backend only
# (serve/backends/runtime.py): apart from the project's own versions.
RUNTIMES="$VENV/ngc-runtimes"
if stale "$RUNTIMES" serve/backends/ngc-runtimes.txt; then
  step "NGC 24.10's onnxruntime and openvino (into $RUNTIMES)"
  rm -rf "$RUNTIMES"
  pip install --no-deps --only-binary=:all: --target "$RUNTIMES" -r serve/backends/ngc-runtimes.txt
  cp serve/backends/ngc-runtimes.txt "$RUNTIMES/.installed-from"
fi
# the CPU plugin's defaults the server image gives NGC's OpenVINO
cp deploy/openvino-plugins.xml "$RUNTIMES/openvino/libs/plugins.xml"
# NGC's openvino backend folder holds libtbb alone, not TBB's topology
# binding: the wheel's libhwloc frees with glibc's free and aborts a server
# that runs with jemalloc (serve/server.py)
rm -f "$RUNTIMES"/openvino/libs/libtbbbind* "$RUNTIMES"/openvino/libs/libhwloc*
step "the client (./client) and this project, editable, without dependencies"
pip install --no-deps --no-build-isolation -e ./client -e .
step_end
printf '[setup] done in %d s: %s\n' "$SECONDS" "$("$VENV/bin/python" -c 'import torch, mmcv, mmdet, mmdeploy, onnxruntime; print("torch", torch.__version__, "mmcv", mmcv.__version__, "mmdet", mmdet.__version__, "mmdeploy", mmdeploy.__version__, "onnxruntime", onnxruntime.__version__)')"
