#!/usr/bin/env bash
# The GPU measurements issue 5 asks for, as one prepared command for a session that is lent a GPU
# (the device tool: one call, at most 10 minutes). Not yet run on a GPU: no session so far was lent one.
#
#   bash scripts/gpu_bench.sh            # writes into $OUT (the device tool's folder), else ./gpu-bench-out
#
# 1. --compile: ours eager, ours compiled and HuggingFace's GPT2LMHeadModel in turns at 16x256 (bf16 autocast
#    where native, fp16 + scaler on a T4), a profile of one step, and the lesson's 500 batches, compiled.
# 2. eager: the same without compilation, and the 500 batches eager.
# Each writes its printed table (.txt) and its JSON; docs/performance.md takes the figures from them.
set -uo pipefail
OUT="${OUT:-gpu-bench-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name(0))" \
  2>&1 | tee "$OUT/versions.txt"
timeout 330 "$PY" -m gpt_lesson.bench --compile --profile --repeats 10 --lesson-steps 500 \
  --json "$OUT/bench-gpu-compile.json" > "$OUT/bench-gpu-compile.txt" 2>&1
echo "compile run exit $?" | tee -a "$OUT/bench-gpu-compile.txt"
timeout 180 "$PY" -m gpt_lesson.bench --repeats 10 --lesson-steps 500 --sweep 8,32,64 \
  --json "$OUT/bench-gpu-eager.json" > "$OUT/bench-gpu-eager.txt" 2>&1
echo "eager run exit $?" | tee -a "$OUT/bench-gpu-eager.txt"
tail -n 40 "$OUT"/bench-gpu-*.txt
