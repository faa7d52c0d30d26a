#!/usr/bin/env bash
# On a GPU machine (after `. benchmarks/gpu_env.sh`): the default subject at 512 px, the full and the vanilla
# avatar trained side by side with the fast preset, then benchmarks/speech_drive.py on them.
# Writes into ${W:-out/gpu_speech}; speech_table.txt holds the table, DONE marks the end.
set -u
W=${W:-out/gpu_speech}
mkdir -p "$W"
t0=$(date +%s)
[ -f "$W/default512/meta.json" ] || python3 -m thgs synth "$W/default512" --size 512 --workers 8 --no-progress
echo "synth: $(( $(date +%s) - t0 )) s"
t1=$(date +%s)
python3 -m thgs train "$W/default512" --out "$W/full" --preset fast --no-progress > "$W/train_full.log" 2>&1 &
python3 -m thgs train "$W/default512" --out "$W/vanilla" --preset fast --vanilla --no-progress > "$W/train_vanilla.log" 2>&1 &
wait
echo "train (two runs side by side): $(( $(date +%s) - t1 )) s"
python3 benchmarks/speech_drive.py --run "$W/full" --vanilla "$W/vanilla" --device cuda > "$W/speech_table.txt" 2>&1
echo "total: $(( $(date +%s) - t0 )) s"
date > "$W/DONE"
