#!/usr/bin/env bash
# The whole GPU check in one call of the device tool (one command, at most 10 minutes, no network):
#
#   bash scripts/gpu_check.sh          # carry [".whl"] (made by scripts/fetch_gpu_wheels.sh); results in $OUT
#   GPU_CHECK_DRY=1 bash scripts/gpu_check.sh    # the plumbing on a CPU, tiny sizes, under 2 minutes
#
# Steps, most valuable first, each bounded by `timeout` and by what is left of GPU_CHECK_BUDGET (seconds for the
# whole check, default 540); a step that would get less than 30 s is skipped:
#   setup          install .whl/*.whl into $GPU_CHECK_SITE (/tmp/site) when Jupyter's pieces are missing;
#                  PYTHONPATH=$GPU_CHECK_SITE:<repo>
#   env            nvidia-smi, versions (python, torch, CUDA, GPU, transformers, nbval...), CPUs, memory
#   notebooks      every notebook in FULL mode (GPT_LESSON_QUICK=0, GPT_LESSON_OFFLINE=1) with
#                  scripts/run_notebooks.py, 06 first (it trains Model 5; 07 loads its checkpoint), then 07, 05
#                  (its CPU timing is bounded by the per-cell timeout), 01-04; outputs compared with the stored ones
#   bench-compile  python -m gpt_lesson.bench --compile --profile --repeats 10 --lesson-steps 500 (ours eager,
#                  ours compiled, HuggingFace's GPT-2, the lesson's 500 batches compiled)
#   bench-eager    python -m gpt_lesson.bench --repeats 10 --lesson-steps 500 --sweep 8,32,64
#   nbval          pytest --nbval (pyproject's addopts: the tests' quick mode) of the GPU notebooks 05-07 here
#   nbval-cpu      the same for 01-04 (they do not touch the GPU), if time is left
#   watch          what watching Model 5's run costs on this GPU (scripts/measure_watch.py --preset model5): the
#                  extraction probe and the two samples against a training step. The figures themselves (the
#                  sample's shape and the recitation at every evaluation of the lesson's 500 batches) are in the
#                  full-mode notebook 06 (its Watch) and 07 (the probe of 06's checkpoint), step "notebooks"
# After every step: scripts/gpu_summary.py writes summary.txt, and everything is packed again into
# $OUT/gpu-check.tar.gz, so a later step that hangs or a kill of the whole command loses nothing finished.
# $OUT holds only gpu-check.tar.gz, summary.txt and log.txt (the device tool brings back at most 8 files);
# the work folder ($GPU_CHECK_WORK, default a fresh /tmp folder) holds the rest and is what the tarball contains.
#
# Environment: OUT (default ./gpu-check-out), PYTHON (python3), GPU_CHECK_DRY (0), GPU_CHECK_BUDGET (540;
# 170 dry), GPU_CHECK_STEPS (default all: "env notebooks bench-compile bench-eager nbval nbval-cpu"; dry:
# "env notebooks bench-compile nbval", with 01 for the notebooks and nbval, 02 for nbval-cpu;
# setup always runs; e.g. GPU_CHECK_STEPS="env nbval" GPU_CHECK_BUDGET=200 for a second, shorter call),
# GPU_CHECK_SITE (/tmp/site), GPU_CHECK_WORK, GPU_CHECK_INSTALL (auto|1|0).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY="${PYTHON:-python3}"
DRY="${GPU_CHECK_DRY:-0}"
if [ "$DRY" = 1 ]; then BUDGET="${GPU_CHECK_BUDGET:-170}"; else BUDGET="${GPU_CHECK_BUDGET:-540}"; fi
if [ "$DRY" = 1 ]; then ALL="env notebooks bench-compile nbval"; else ALL="env notebooks bench-compile bench-eager nbval nbval-cpu watch"; fi
STEPS=" ${GPU_CHECK_STEPS:-$ALL} "
SITE="${GPU_CHECK_SITE:-/tmp/site}"
OUT="${OUT:-$ROOT/gpu-check-out}"
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
WORK="${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu-check-work.XXXXXX)}"
mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd)
RESERVE=20            # seconds kept for the last summary and pack
MIN_STEP=30           # a step that would get less is skipped
RUN_TAG="gpu-check-$$-$RANDOM"
LOG="$WORK/log.txt"
START=$SECONDS
: > "$LOG"
: > "$WORK/steps.tsv"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYDEVD_DISABLE_FILE_VALIDATION=1
export MPLBACKEND="${MPLBACKEND:-Agg}"

say() { echo "[$(printf '%4d' $((SECONDS - START))) s] $*" | tee -a "$LOG"; }

pack() {  # summary.txt, log.txt and the tarball of the work folder into $OUT
  "$PY" "$ROOT/scripts/gpu_summary.py" "$WORK" > "$WORK/summary.txt" 2>&1
  cp -f "$WORK/summary.txt" "$OUT/summary.txt"
  cp -f "$LOG" "$OUT/log.txt"
  tar -czf "$OUT/gpu-check.tar.gz.part" -C "$WORK" . 2>/dev/null && mv -f "$OUT/gpu-check.tar.gz.part" "$OUT/gpu-check.tar.gz"
}

reap() {  # kill what step $1 left running (a Jupyter kernel starts its own session: `timeout` misses it)
  local tag="GPU_CHECK_STEP=$RUN_TAG-$1" f pid n=0
  for f in /proc/[0-9]*/environ; do
    pid=${f#/proc/}; pid=${pid%/environ}
    [ "$pid" = "$$" ] && continue
    if grep -qazx -- "$tag" "$f" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null && n=$((n + 1))
    fi
  done
  [ "$n" -gt 0 ] && say "  killed $n leftover process(es) of step $1"
  return 0
}

CURRENT="" CURRENT_PID="" STEP_T0=0
on_signal() {
  say "check killed by a signal during step '${CURRENT:-none}': packing what there is"
  if [ -n "$CURRENT_PID" ]; then kill -TERM "$CURRENT_PID" 2>/dev/null; sleep 2; kill -KILL "$CURRENT_PID" 2>/dev/null; fi
  [ -n "$CURRENT" ] && reap "$CURRENT" && printf '%s\t%s\t%s\t%s\n' "$CURRENT" 143 $((SECONDS - STEP_T0)) "" >> "$WORK/steps.tsv"
  pack
  exit 143
}
trap on_signal TERM INT HUP

# step NAME CAP LOGFILE CMD...: run CMD for at most min(CAP, what the budget has left) seconds, output to LOGFILE.
step() {
  local name=$1 cap=$2 logfile=$3 left limit t0 rc
  shift 3
  left=$((BUDGET - (SECONDS - START) - RESERVE))
  limit=$(( cap < left ? cap : left ))
  if [ "$limit" -lt "$MIN_STEP" ]; then
    say "step $name SKIPPED: ${left} s of the budget left"
    printf '%s\tskip\t0\t%s\n' "$name" "$limit" >> "$WORK/steps.tsv"
    return 0
  fi
  say "step $name: up to $limit s -> $(basename "$logfile")"
  t0=$SECONDS STEP_T0=$SECONDS
  CURRENT=$name
  GPU_CHECK_STEP="$RUN_TAG-$name" timeout -k 10 "$limit" "$@" > "$logfile" 2>&1 < /dev/null &
  CURRENT_PID=$!
  wait "$CURRENT_PID"
  rc=$?
  CURRENT="" CURRENT_PID=""
  reap "$name"
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" $((SECONDS - t0)) "$limit" >> "$WORK/steps.tsv"
  case $rc in
    0) say "step $name done in $((SECONDS - t0)) s" ;;
    124|137) say "step $name TIMED OUT after $((SECONDS - t0)) s (limit $limit s); last lines:"; tail -n 5 "$logfile" | sed '$a\' | tee -a "$LOG" ;;
    *) say "step $name FAILED (exit $rc) after $((SECONDS - t0)) s; last lines:"; tail -n 8 "$logfile" | sed '$a\' | tee -a "$LOG" ;;
  esac
  pack
  return 0
}
want() { [[ "$STEPS" == *" $1 "* ]]; }

say "gpu_check: dry=$DRY budget=${BUDGET}s steps:${STEPS% } work=$WORK out=$OUT"

# --- setup: the wheels of what the machine lacks (nbval, nbclient, ipykernel and their dependencies) ---
install="${GPU_CHECK_INSTALL:-auto}"
if [ "$install" = auto ]; then
  if "$PY" -c "import nbval, nbclient, nbformat, ipykernel" 2>/dev/null; then install=0; else install=1; fi
fi
if [ "$install" = 1 ]; then
  t0=$SECONDS
  timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$ROOT"/.whl/*.whl > "$WORK/setup.log" 2>&1
  rc=$?
  if [ "$rc" = 0 ]; then
    say "setup: installed $(ls "$ROOT"/.whl/*.whl | wc -l) wheels into $SITE in $((SECONDS - t0)) s"
  else
    say "setup: pip install FAILED (exit $rc):"; tail -n 8 "$WORK/setup.log" | tee -a "$LOG"
  fi
  printf 'setup\t%s\t%s\t120\n' "$rc" $((SECONDS - t0)) >> "$WORK/steps.tsv"
  export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
else
  say "setup: nbval, nbclient, nbformat and ipykernel importable already: nothing installed"
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi

# --- env ---
read -r -d '' VERSIONS_PY <<'PY'
import os, platform
from importlib.metadata import version

import torch

gpu = "none"
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    gpu = f"{props.name} ({props.total_memory / 2**30:.0f} GiB, capability {props.major}.{props.minor})"
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda, "| GPU", gpu)
memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
print(f"cpus {os.cpu_count()}, torch threads {torch.get_num_threads()}, memory {memory:.0f} GiB")
print(", ".join(f"{p} {version(p)}" for p in ("transformers", "tiktoken", "nbval", "nbclient", "ipykernel", "pytest")))
import gpt_lesson

print("gpt_lesson", gpt_lesson.__version__, "from", os.path.dirname(gpt_lesson.__file__))
PY
if want env; then
  timeout 30 nvidia-smi > "$WORK/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi here (or it failed)" >> "$WORK/nvidia-smi.txt"
  step env 60 "$WORK/versions.txt" "$PY" -c "$VERSIONS_PY"
  [ -f "$WORK/versions.txt" ] && tee -a "$LOG" < "$WORK/versions.txt"
fi

# --- notebooks, full mode ---
if want notebooks; then
  if [ "$DRY" = 1 ]; then
    NBS=(notebooks/01_download_and_clean.ipynb)
  else
    NBS=(notebooks/06_*.ipynb notebooks/07_*.ipynb notebooks/05_*.ipynb notebooks/0[1-4]_*.ipynb)
  fi
  left=$((BUDGET - (SECONDS - START) - RESERVE)); cap=240; [ "$left" -lt "$cap" ] && cap=$left
  step notebooks 240 "$WORK/notebooks.log" "$PY" scripts/run_notebooks.py --out "$WORK/notebooks" \
    --report "$WORK/notebooks-report.json" --budget $((cap - 10)) --cell-timeout 180 "${NBS[@]}"
  [ -f "$WORK/notebooks.log" ] && grep -E "^[0-9]{2}_|^# |^ {20,}" "$WORK/notebooks.log" | tee -a "$LOG"
fi

# --- benchmark ---
if [ "$DRY" = 1 ]; then
  # Tiny sizes, no --compile (compiling takes minutes on a CPU); bench-eager only when GPU_CHECK_STEPS names it.
  BENCH_COMPILE=(--preset tiny --batch-size 2 --seq-len 16 --repeats 1 --gen-tokens 4 --no-hf --lesson-steps 5
                 --vocab-variant 0 --chunk-variant 0 --profile)
  BENCH_EAGER=(--preset tiny --batch-size 2 --seq-len 16 --repeats 1 --gen-tokens 4 --no-hf --lesson-steps 5 --sweep 1,4)
else
  BENCH_COMPILE=(--compile --profile --repeats 10 --lesson-steps 500)
  BENCH_EAGER=(--repeats 10 --lesson-steps 500 --sweep 8,32,64)
fi
if want bench-compile; then
  step bench-compile 200 "$WORK/bench-gpu-compile.txt" "$PY" -m gpt_lesson.bench "${BENCH_COMPILE[@]}" \
    --json "$WORK/bench-gpu-compile.json"
fi
if want bench-eager; then
  step bench-eager 130 "$WORK/bench-gpu-eager.txt" "$PY" -m gpt_lesson.bench "${BENCH_EAGER[@]}" \
    --json "$WORK/bench-gpu-eager.json"
fi

# --- nbval, the tests' quick mode, on this machine: the GPU notebooks, then the others if time is left ---
if [ "$DRY" = 1 ]; then
  NBV=(notebooks/01_download_and_clean.ipynb) NBV_CPU=(notebooks/02_tokenize.ipynb)
else
  NBV=(notebooks/05_*.ipynb notebooks/06_*.ipynb notebooks/07_*.ipynb) NBV_CPU=(notebooks/0[1-4]_*.ipynb)
fi
if want nbval; then
  step nbval 150 "$WORK/nbval.log" "$PY" -m pytest -v -rfE --junitxml "$WORK/nbval.xml" "${NBV[@]}"
  [ -f "$WORK/nbval.log" ] && tail -n 1 "$WORK/nbval.log" | sed '$a\' | tee -a "$LOG"
fi
if want nbval-cpu; then
  step nbval-cpu 90 "$WORK/nbval-cpu.log" "$PY" -m pytest -v -rfE --junitxml "$WORK/nbval-cpu.xml" "${NBV_CPU[@]}"
  [ -f "$WORK/nbval-cpu.log" ] && tail -n 1 "$WORK/nbval-cpu.log" | sed '$a\' | tee -a "$LOG"
fi

if want watch; then
  if [ "$DRY" = 1 ]; then WATCH=(--preset tiny --repeats 1); else WATCH=(--preset model5 --repeats 2 --device cuda); fi
  step watch 60 "$WORK/watch-cost.txt" "$PY" scripts/measure_watch.py "${WATCH[@]}"
  [ -f "$WORK/watch-cost.txt" ] && tail -n 3 "$WORK/watch-cost.txt" | tee -a "$LOG"
fi

trap - TERM INT HUP
pack
say "gpu_check done in $((SECONDS - START)) s; summary:"
cat "$OUT/summary.txt"
cp -f "$LOG" "$OUT/log.txt"
