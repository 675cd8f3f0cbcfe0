#!/usr/bin/env bash
# Download the wheels the GPU machine lacks into .whl/ (ignored by git through .git/info/exclude), for
# scripts/gpu_check.sh, which installs them there with `pip install --no-index --no-deps --target /tmp/site`.
#
#   bash scripts/fetch_gpu_wheels.sh          # run here, where PyPI is reachable; then carry [".whl"]
#
# The GPU machine has no network and runs Python 3.12 (x86_64 Linux) with torch, transformers, tiktoken,
# requests, tqdm, matplotlib, numpy, pytest, psutil, packaging, pygments, python-dateutil, attrs,
# typing-extensions, ... but nothing of Jupyter. The list below is what nbval, nbclient and ipykernel import,
# closed over their dependencies, one pinned version each (the versions of the local .venv, tested together).
# Left out on purpose (never imported when executing notebooks, and they weigh the most):
#   debugpy (ipykernel's debugger, guarded by try/except ImportError), jedi + parso (IPython's tab completion,
#   looked up with find_spec), widgetsnbextension + jupyterlab_widgets (front-end files only).
# ipywidgets is in: tqdm.auto (gpt_lesson.train) draws a widget progress bar with it, as in the committed 06.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
DEST="${1:-.whl}"

WHEELS=(
  # running notebooks
  nbval==0.11.0
  coverage==7.17.5            # nbval imports it at start
  nbclient==0.11.0
  nbformat==5.11.1
  fastjsonschema==2.22.3
  jsonschema==4.26.0
  jsonschema-specifications==2025.9.1
  referencing==0.37.0
  rpds-py==2026.9.1
  jupyter_client==8.10.0
  jupyter_core==5.9.1
  platformdirs==4.14.8
  traitlets==5.16.1
  pyzmq==27.3.0
  tornado==6.6.1
  # the kernel
  ipykernel==7.4.0
  comm==0.2.3
  nest-asyncio2==1.7.4
  matplotlib-inline==0.2.2
  ipython==9.18.1
  ipython_pygments_lexers==1.1.1
  prompt_toolkit==3.0.53
  wcwidth==0.9.4
  pexpect==4.9.0
  ptyprocess==0.7.0
  stack_data==0.6.3
  executing==2.3.0
  asttokens==3.0.2
  pure_eval==0.2.4
  ipywidgets==8.1.9
)

mkdir -p "$DEST"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_26_x86_64 --platform manylinux_2_31_x86_64 \
  -d "$DEST" "${WHEELS[@]}"
# Nothing else may lie there: the device installs .whl/*.whl.
expected=${#WHEELS[@]}
found=$(ls "$DEST"/*.whl | wc -l)
if [ "$found" -ne "$expected" ]; then
  echo "expected $expected wheels in $DEST, found $found: remove the stale ones" >&2
  ls "$DEST" >&2
  exit 1
fi
ls -l "$DEST"
du -ch "$DEST"/*.whl | tail -n 1
