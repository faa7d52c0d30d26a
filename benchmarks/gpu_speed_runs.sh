#!/usr/bin/env bash
# On a GPU machine (after `. benchmarks/gpu_env.sh`): the GPU tests, then the speed benchmarks of
# docs/benchmarks.md on the default subject at 512 px: training steps/s per preset and forward variant with
# its breakdown, syncs and kernels (benchmarks/train_speed.py), the fast preset's test PSNR against training
# time (benchmarks/time_to_quality.py) and the whole-frame render timings against the bare gsplat call
# (`thgs bench`). Writes into ${W:-out/gpu_speed}: tests.txt, train_speed.txt, ttq.txt, bench.txt, DONE at the
# end. The subject is synthesised while the tests run. Each step has a time limit (seconds: TESTS_S, SPEED_S,
# TTQ_S, BENCH_S) so that one slow step cannot eat the rest; SKIP (e.g. "ttq,bench") leaves steps out; PRESETS,
# FORWARD and BANDS pick train_speed.py's rows (its --presets, --forward, --skin-band).
set -u
W=${W:-out/gpu_speed}
SKIP=${SKIP:-}
mkdir -p "$W"
t0=$(date +%s)
step() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
skip() { [[ ",$SKIP," == *",$1,"* ]]; }
if [ ! -f "$W/default512/meta.json" ]; then
    python3 -m thgs synth "$W/default512" --size 512 --workers 8 --no-progress > "$W/synth.txt" 2>&1 &
fi
if ! skip tests; then
    timeout "${TESTS_S:-300}" python3 -m pytest -q -p no:cacheprovider -p no:logging --tb=short -rfs \
        tests/render/test_parity_gpu.py tests/render/test_normal_parity_gpu.py tests/render/test_outputs_gpu.py \
        tests/render/test_batch_gpu.py tests/animate/test_batch_frames_gpu.py tests/avatar/test_inference_gpu.py \
        tests/animate/test_recorded_gpu.py tests/train/test_step_speed_gpu.py tests/viewer/test_encode.py \
        > "$W/tests.txt" 2>&1
    step "tests: rc $? ($(tail -1 "$W/tests.txt"))"
fi
wait
step "synth done"
if ! skip speed; then
    OUT="$W" timeout "${SPEED_S:-240}" python3 benchmarks/train_speed.py --data "$W/default512" \
        --presets "${PRESETS:-fast,paper}" --forward "${FORWARD:-eager,graphs}" --skin-band "${BANDS:-default}" \
        --steps 150 --work "$W/train_speed" 2>&1 | grep -v USDT > "$W/train_speed.txt"
    step "train_speed: rc $?"
fi
if ! skip ttq; then
    timeout "${TTQ_S:-240}" python3 benchmarks/time_to_quality.py --data "$W/default512" --preset fast --target 35.9 \
        --points 6 --eval-frames 40 --work "$W/ttq" > "$W/ttq.txt" 2>&1
    step "time_to_quality: rc $?"
fi
if ! skip bench; then
    timeout "${BENCH_S:-300}" python3 -m thgs bench --body anny --gaussians 36692 --devices cuda --no-train \
        --batch 8 --compile-animation > "$W/bench.txt" 2>&1
    step "bench: rc $?"
fi
date > "$W/DONE"
