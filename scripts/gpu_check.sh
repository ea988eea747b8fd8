#!/usr/bin/env bash
# Device check, one call, offline, under 8 minutes: GAD adversarial steps on ALL visible GPUs (FSDP, one process
# per GPU, a colocated vLLM engine in each when `vllm` imports, else transformers' generate, which is then said)
# at the paper's lengths (prompts of 2,048 tokens, 1,536 new tokens, group 8, bf16) on a random-weight
# Qwen2.5-0.5B-shaped student, through a real `gadbench run`. Prints measured step time, rollout and training
# tokens/s, MFU and (where the run records them) each phase's peak memory, beside the plan's predictions: the
# throughput model's seconds per step, and the dry run's plan (with the memory model's table where this version
# has it). Writes everything under $OUT/gpu-check (or results/bench/gpu-check without $OUT).
#
# Preinstalled on the device: torch (CUDA build), transformers, accelerate, and this project's requirements
# (requirements.txt); for the vLLM path, vllm==0.30.0 and its pins (docs/scale.md, "Installing it"), carried as
# wheels since the device has no network. Nothing is downloaded: the model and the data are made here.
#
#   scripts/gpu_check.sh                                     # the device check
#   scripts/gpu_check.sh --device cpu --processes 2 --shape tiny --prompt-tokens 64 --response-tokens 24
#                                                            # its CPU path (tests/test_gpu_check.py)
# Other arguments go to `python -m gadbench.commands.devicecheck prepare` (--prompts-per-process, --steps, --micro-batch,
# --engine hf|vllm).
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="${PYTHON:-python3}"
OUT_DIR="${OUT:-results/bench}"
LIMIT="${GPU_CHECK_SECONDS:-420}"  # the run itself; preparing and reporting take well under a minute more
DEVICE=cuda PROCS="" SHAPE=qwen2.5-0.5b
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --processes) PROCS="$2"; shift 2 ;;
    --shape) SHAPE="$2"; shift 2 ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done

if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  PROCS="${PROCS:-$("$PY" -c 'import torch; print(torch.cuda.device_count())')}"
  if [ "$PROCS" -lt 1 ]; then
    echo "gpu_check: no CUDA GPU is visible; run it on a GPU machine, or pass --device cpu." >&2
    exit 2
  fi
fi
PROCS="${PROCS:-1}"
"$PY" -c "import torch, transformers, accelerate, importlib.util as u; print('torch', torch.__version__, 'cuda', \
torch.version.cuda, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__, 'gpus', \
torch.cuda.device_count(), 'vllm', 'yes' if u.find_spec('vllm') else 'no (the hf path runs instead)')"

WORK="$OUT_DIR/gpu-check"
rm -rf "$WORK"
mkdir -p "$WORK"
"$PY" -m gadbench.commands.devicecheck prepare "$WORK" --device "$DEVICE" --processes "$PROCS" --shape "$SHAPE" \
  ${EXTRA[@]+"${EXTRA[@]}"}

if [ "$PROCS" -gt 1 ]; then
  PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  LAUNCH=("$PY" -m accelerate.commands.launch --multi_gpu --num_processes "$PROCS" --num_machines 1
          --mixed_precision no --dynamo_backend no --main_process_port "$PORT" -m gadbench.cli)
else
  LAUNCH=("$PY" -m gadbench.cli)
fi
rc=0
timeout --signal=TERM --kill-after=20 "$LIMIT" "${LAUNCH[@]}" run --suite "$WORK/check.yaml" --out "$WORK/results" \
  > "$WORK/run.log" 2>&1 || rc=$?
tail -n 12 "$WORK/run.log"
if [ "$rc" -ne 0 ]; then
  [ "$rc" -eq 124 ] && echo "gpu_check: the run was stopped after $LIMIT s" >&2
  echo "gpu_check: the run failed (exit $rc); its log: $WORK/run.log" >&2
  exit "$rc"
fi
"$PY" -m gadbench.commands.devicecheck report "$WORK" --device "$DEVICE"
echo
echo "the plan for the same run (gadbench run --dry-run):"
DRY=(run --suite "$WORK/check.yaml" --dry-run)
if [ "$DEVICE" = cuda ]; then
  KIND="$("$PY" -c 'import torch; n = torch.cuda.get_device_name(0).lower(); print(next((k for k in ("h100", "h200", "a100") if k in n), ""))')"
  [ -n "$KIND" ] && DRY+=(--gpu "$KIND" --gpus "$PROCS")
  if "$PY" -m gadbench.cli run --help | grep -q -- --gpu-mem; then
    DRY+=(--gpu-mem "$("$PY" -c 'import torch; print(round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))')")
  fi
fi
"$PY" -m gadbench.cli "${DRY[@]}"
