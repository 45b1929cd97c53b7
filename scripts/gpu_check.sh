#!/usr/bin/env bash
# What to run on a machine with a CUDA GPU (none of it runs in CI): build
# with the CUDA kernels, run the whole suite (the `cuda` tests included; the
# CPU-only `cuda_sim` tests, which CI runs, are left out), benchmark, and run
# compute-sanitizer over the kernels' tests. Logs go to $OUT (default
# ./gpu-check-out); the benchmark JSON (device, versions and date in its
# meta) to $OUT and to benchmarks/results/<gpu>.json, to be committed.
#
#   bash scripts/gpu_check.sh [build] [test] [bench] [sanitize]   (default: all four)
#
# Each stage is sized to finish in a few minutes on an H100: call it one stage
# at a time where a command's time is limited. `bench` writes
# $OUT/<gpu name>.json; copy it to benchmarks/results/ and commit it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(build test bench sanitize)
status=0

run() {  # run NAME COMMAND...: the command's output to the screen and $OUT/NAME.log
  echo "== $1: ${*:2}"
  local t0=$SECONDS
  "${@:2}" 2>&1 | tee "$OUT/$1.log"
  local rc=${PIPESTATUS[0]}
  echo "== $1: exit $rc after $((SECONDS - t0)) s"
  [ "$rc" -eq 0 ] || status=1
}

for stage in "${stages[@]}"; do
  case "$stage" in
    build)
      nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
      # Build for this GPU only: quicker than the default list.
      cap=$(python3 -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
      run build env TORCH_CUDA_ARCH_LIST="$cap" MAX_JOBS=16 \
        python3 -m pip install --no-build-isolation --no-deps -e . ;;
    test)
      run test python3 -m pytest -q -p no:cacheprovider -x -m "not cuda_sim" tests benchmarks ;;
    bench)
      name=$(python3 -c "import torch, re; print(re.sub('[^a-z0-9]+', '-', torch.cuda.get_device_name().lower()).strip('-'))")
      run bench python3 -m scorekern bench --device cuda --json "$OUT/$name.json"
      cp "$OUT/$name.json" "benchmarks/results/$name.json" ;;
    sanitize)
      # memcheck over every CUDA test; racecheck and synccheck (shared memory,
      # barriers) over the kernels that use shared memory: the mixture
      # kernels and the block reductions of the corrector and the losses.
      run memcheck compute-sanitizer --tool memcheck --error-exitcode 1 \
        python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py
      for tool in racecheck synccheck; do
        run "$tool" compute-sanitizer --tool "$tool" --error-exitcode 1 \
          python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py -k "mixture or snr or sums"
      done ;;
    *)
      echo "unknown stage: $stage (build, test, bench, sanitize)"; exit 2 ;;
  esac
done
exit $status
