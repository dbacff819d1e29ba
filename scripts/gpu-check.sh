#!/usr/bin/env bash
# The GPU path, checked and measured on a machine with an NVIDIA GPU (issue 19):
#
#   bash scripts/gpu-check.sh [VIDEO]     # VIDEO default: the H.264 TV edit (built if missing)
#   bash scripts/gpu-check.sh --restore   # put the CPU onnxruntime wheel back
#
# 1. installs onnxruntime-gpu in place of onnxruntime in .venv (the same version; CUDA 12 and
#    cuDNN 9 come as pip wheels with its [cuda,cudnn] extra: no system CUDA needed);
# 2. runs the tests marked gpu (tests/test_gpu.py: both models on CUDA against the CPU, NVDEC
#    frames against software decoding);
# 3. runs the benchmark: the video with the CPU defaults, with --providers cuda, and with
#    --providers cuda and NVDEC decoding (FACEPIPE_HWACCEL=cuda), and prints wall time, the
#    per-unit costs from summary.json and how many faces equal the CPU run's.
# Prints what it measures; exits non-zero at the first failed check.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-/tmp/facepipe-gpu-check}
mkdir -p "$OUT"

if [[ "${1:-}" == "--restore" ]]; then
    ver=$("$PY" -c 'import importlib.metadata as m; print(m.version("onnxruntime-gpu"))')
    "$PY" -m pip uninstall -y onnxruntime-gpu && "$PY" -m pip install "onnxruntime==$ver"
    exit 0
fi
VIDEO=${1:-/tmp/facepipe-bench/tv720_h264.mp4}

echo "== GPU"
command -v nvidia-smi >/dev/null || { echo "gpu-check: no nvidia-smi here: not a GPU machine" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

echo "== onnxruntime-gpu"
if ! "$PY" -c 'import onnxruntime as o, sys; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())'; then
    ver=$("$PY" -c 'import importlib.metadata as m; print(m.version("onnxruntime"))')
    "$PY" -m pip uninstall -y onnxruntime
    "$PY" -m pip install "onnxruntime-gpu[cuda,cudnn]==$ver" || "$PY" -m pip install "onnxruntime-gpu[cuda,cudnn]"
fi
"$PY" -c 'import onnxruntime as o; print(o.get_available_providers())'

echo "== tests that need a GPU"
"$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py

echo "== benchmark"
[[ -f "$VIDEO" ]] || "$PY" bench/make_video.py --tv
run() {  # name, flags...
    local name=$1; shift
    local start end
    start=$(date +%s.%N)
    "$PY" -m facepipe run "$VIDEO" --out "$OUT/$name" --no-progress "$@" >"$OUT/$name.log" 2>&1
    end=$(date +%s.%N)
    echo "$name: $(echo "$end - $start" | bc) s wall"
}
run cpu --providers cpu
run cuda --providers cuda
FACEPIPE_HWACCEL=cuda run cuda-nvdec --providers cuda
"$PY" - "$OUT" <<'PYTHON'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
def faces(name):
    lines = (out / name / "faces.jsonl").read_text().splitlines()
    return [(f["frame"], tuple(round(v) for v in f["bbox"]), f["identity"]) for f in map(json.loads, lines)]
reference = faces("cpu")
for name in ("cpu", "cuda", "cuda-nvdec"):
    summary = json.loads((out / name / "summary.json").read_text())
    mine = faces(name)
    same = sum(a == b for a, b in zip(reference, mine))
    print(f"{name}: {summary['elapsed_s']} s, {summary['faces']} faces / {summary['identities']} identities, "
          f"{same}/{max(len(reference), len(mine))} faces equal to the CPU run's; models {summary['runtimes']}; "
          f"CPU ms per frame {summary.get('cpu_ms_per_frame')}, per face {summary.get('cpu_ms_per_face')}")
PYTHON
