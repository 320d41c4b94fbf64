#!/usr/bin/env bash
# The GPU sitting, run on a GPU host with this checkout (docs/gpu-sitting.md):
# join the parts of make gpu-pack copied into $CARRY (or take the whole
# sitting.tar there), check them, install the wheels beside the host's torch,
# run python -m bench.gpu, and leave performance-gpu.json/.md and the server's
# log in $OUT (the placed repositories stay in $WORK).
set -euo pipefail
carry=${CARRY:-/tmp/carry}; work=${WORK:-/tmp/sitting}; out=${OUT:?set OUT, the folder for the report}
started=$(date +%s)
say() { echo "gpu-sitting: $* ($(( $(date +%s) - started )) s)"; }
bring_back() {  # also when the run fails or is cut short: what it measured
  mkdir -p "$out"
  cp "$work"/out/performance-gpu.* "$out"/ 2>/dev/null || true
  cp "$work"/out/triton/*.log "$out"/ 2>/dev/null || true
}
trap bring_back EXIT
cd "$carry"
for f in $(cut -c67- SHA256SUMS); do
  [ -f "$f" ] || cat "$f".part* > "$f"   # parts, or the whole file already
done
sha256sum --check --quiet SHA256SUMS
say "sitting.tar checked"
cd - > /dev/null
rm -rf "$work"; mkdir -p "$work"
tar -C "$work" -xf "$carry/sitting.tar"
python3 -m pip install --quiet --no-index --no-deps --target "$work/site" "$work"/wheels/*.whl
# The Python stub runs isolated (PYTHONPATH ignored): a .pth puts the wheels
# first for it too (numpy 1.26 ahead of the machine's numpy 2).
site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "import sys; sys.path.insert(0, '$work/site')" > "$site/00-gpu-sitting.pth"
export PYTHONPATH=$PWD/client/src
say "installed: $(python3 -c 'import onnxruntime as o, numpy; print("onnxruntime", o.__version__, o.get_available_providers()[0], "numpy", numpy.__version__)')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || say "no nvidia-smi here"
# stopped (SIGTERM: the report so far is kept) after SITTING_S, before a
# host's own limit on a command (600 s on a lent one) kills it and the trap
timeout "${SITTING_S:-520}" python3 -m bench.gpu -r "$work/repository" --fp16 "$work/fp16" \
  --ann "$work/synthetic/annotations/val.json" --gate-images "$work/synthetic/val" \
  --out "$work/out" "$@" 2> >(grep -v -E 'it/s|s/it|batch/s|s/batch' >&2)
say "done"
