#!/usr/bin/env bash
# GPU check of the online RL path: the transformers backend and TRL's GRPO/RLOO trainers on CUDA, with a
# 1B-shaped Llama built from a config (random weights), in one call of under 8 minutes.
#
#   bash benchmarks/gpu_check.sh fetch     # here, once: the wheels cai needs beyond the device image -> .whl/
#   bash benchmarks/gpu_check.sh           # on the CUDA machine (carry .whl): checks, $OUT/gpu_check.json
#   bash benchmarks/gpu_check.sh --tiny    # the CPU fallback at tiny size (what CI's smoke test runs)
#
# The device image has torch, transformers, accelerate, peft, rich, typer, pyyaml; not pydantic, TRL or
# datasets, which travel as wheels (about 5 MB). Without CUDA the script says so and runs at tiny size on
# the CPU. What it measures and checks: benchmarks/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = fetch ]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 pydantic==2.14.4 pydantic_core==2.50.5 \
    annotated-types==0.8.0 typing-inspection==0.4.5
  ls .whl
  exit 0
fi

if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/cai-site .whl/*.whl
  export PYTHONPATH="/tmp/cai-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
out="${OUT:-${TMPDIR:-/tmp}/cai-gpu-check}"
mkdir -p "$out"
timeout 470 python3 benchmarks/gpu_check.py --out "$out" "$@" 2>&1 | tee "$out/gpu_check.log"
