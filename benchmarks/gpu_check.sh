#!/usr/bin/env bash
# All GPU evidence in one command (<= 8 min on one GPU; safe to rerun: every step rebuilds or overwrites its own output).
#
#   bash benchmarks/gpu_check.sh            # on a CUDA machine: build plugins for this GPU, kernel tests, fused-vs-unfused
#                                           # kernel timings, offline_eval --device cuda, streaming latency
#   bash benchmarks/gpu_check.sh --dry-run  # the same code paths on the CPU, tiny sizes, GPU-only steps reported skipped
#
# Writes benchmarks/results/gpu-<device>-<date>.md and .json (README "GPU results") and prints the .md.
# Extra arguments go to benchmarks/gpu_check.py (--out DIR, --only build,tests,kernels,offline,streaming).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c "import vadedge.train" 2>/dev/null; then  # a fresh machine: install this tree (no downloads)
  echo "[gpu_check] vadedge not importable by $PY: pip install --no-deps --no-build-isolation -e ." >&2
  "$PY" -m pip install --quiet --no-deps --no-build-isolation -e . >&2
fi
export OMP_WAIT_POLICY=PASSIVE  # idle OpenMP threads must not spin while the GPU works
dry=0
for a in "$@"; do [[ "$a" == "--dry-run" ]] && dry=1; done

# Optional extra from the package registry, only on a GPU machine and into a private folder (the project's
# environment is left as it is); without registry access the streaming step uses PyTorch CUDA for the head.
if [[ $dry == 0 ]] && "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null \
   && ! "$PY" -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; then
  deps=build-gpu-check/pydeps
  if [[ ! -d $deps/onnxruntime ]]; then
    echo "[gpu_check] onnxruntime CUDA provider absent: trying 'pip install onnxruntime-gpu' into $deps (60 s limit)" >&2
    timeout 60 "$PY" -m pip install --quiet --no-deps --target "$deps" onnxruntime-gpu >/dev/null 2>&1 \
      || { rm -rf "$deps"; echo "[gpu_check] onnxruntime-gpu not installed (no registry access?)" >&2; }
  fi
  [[ -d $deps/onnxruntime ]] && export PYTHONPATH="$PWD/$deps${PYTHONPATH:+:$PYTHONPATH}"
fi
exec "$PY" benchmarks/gpu_check.py "$@"
