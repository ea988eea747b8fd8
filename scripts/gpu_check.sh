#!/usr/bin/env bash
# GPU check: 5 GAD adversarial steps on a random-initialised Qwen2.5-0.5B-shaped student and discriminator
# (bf16 autocast), offline, killed after 8 minutes. Prints step time, rollout and training tokens/s, MFU
# and peak CUDA memory; writes the full result to $OUT/gpu-check.json (or results/bench/ without $OUT).
# Extra arguments go to `gadbench bench`, e.g. scripts/gpu_check.sh --prompts 2 --peak-tflops 756
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="${PYTHON:-python3}"
OUT_DIR="${OUT:-results/bench}"
mkdir -p "$OUT_DIR"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'transformers', transformers.__version__, 'gpu', torch.cuda.is_available())"

CMD=("$PY" -m gadbench.cli bench)

rc=0
timeout --signal=TERM --kill-after=20 480 "${CMD[@]}" --device cuda --model-shape qwen2.5-0.5b --steps 5 \
  --json "$OUT_DIR/gpu-check.json" "$@" || rc=$?
if [ "$rc" -eq 124 ]; then
  echo "gpu_check: timed out after 8 minutes" >&2
fi
exit "$rc"
