#!/usr/bin/env bash
# On a GPU machine (after `. benchmarks/gpu_env.sh`): the GPU tests, then the speed benchmarks of
# docs/benchmarks.md on the default subject at 512 px: training steps/s per preset with its breakdown,
# syncs and kernels (benchmarks/train_speed.py), and the whole-frame render timings against the bare gsplat
# call (`thgs bench`). Writes into ${W:-out/gpu_speed}: tests.txt, train_speed.txt, bench.txt, DONE at the end.
# Each step has a time limit (seconds: TESTS_S, SPEED_S, BENCH_S) so that one slow step cannot eat the rest.
set -u
W=${W:-out/gpu_speed}
mkdir -p "$W"
t0=$(date +%s)
step() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
[ -f "$W/default512/meta.json" ] || python3 -m thgs synth "$W/default512" --size 512 --workers 8 --no-progress
step "synth done"
timeout "${TESTS_S:-240}" python3 -m pytest -q -p no:cacheprovider -rs tests/render/test_parity_gpu.py \
    tests/render/test_normal_parity_gpu.py tests/render/test_outputs_gpu.py tests/avatar/test_inference_gpu.py \
    tests/train/test_step_speed_gpu.py tests/viewer/test_encode.py > "$W/tests.txt" 2>&1
step "tests: rc $? ($(tail -1 "$W/tests.txt"))"
OUT="$W" timeout "${SPEED_S:-200}" python3 benchmarks/train_speed.py --data "$W/default512" --presets fast,paper \
    --work "$W/train_speed" > "$W/train_speed.txt" 2>&1
step "train_speed: rc $?"
timeout "${BENCH_S:-150}" python3 -m thgs bench --body anny --gaussians 36692 --devices cuda --no-train \
    --batch 8 > "$W/bench.txt" 2>&1
step "bench: rc $?"
date > "$W/DONE"
