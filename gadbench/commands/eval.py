"""`gadbench eval RUN_DIR`: evaluate a checkpoint of a finished (or interrupted) run again, with other judges
or with lm-evaluation-harness tasks, without retraining.

The run's spec is rebuilt from RUN_DIR/config.yaml; the generator's weights come from
RUN_DIR/checkpoints/step-K/ (part "g" alone: neither D, the reference nor the optimizer states are read, unless
D's validation diagnostics of that step are missing; under `train.precision: bf16` G is held in bf16, the
weights it generates from during training). K defaults to the checkpoint the run's summary selected when
it is still on disk or its answers are stored, else the latest checkpoint; `--checkpoint 0` evaluates the
student before distillation (the base weights, no checkpoint needed). The run's eval sets (and validation
split) are evaluated into RUN_DIR/eval/step-K/ as during training; answers and judgments already stored there
for the same prompts are re-used, so adding a judge only runs that judge. A step whose checkpoint is gone
(pruned, or a run kept without checkpoints) is judged on its stored answers alone, without loading a model,
when every set's answers are stored. `--lm-eval` runs lm_eval tasks on the in-memory student and
writes RUN_DIR/eval/step-K/lm_eval.json; relative `data_files` in the task YAMLs resolve against
`--lm-eval-include`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a run's checkpoint again (other judges, lm_eval tasks)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, results/<suite>/<run_id>")
    p.add_argument("--checkpoint", type=int, default=None, metavar="K",
                   help="step to evaluate (default: the summary's selected checkpoint, else the latest; 0 = initial)")
    p.add_argument("--judges", default=None, help="comma-separated judges instead of the run's, e.g. gold,rouge-l")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of the run's config for this evaluation, e.g. "
                        "judge.base_url=http://127.0.0.1:8000/v1 (repeatable)")
    p.add_argument("--lm-eval", default=None, metavar="TASKS", help="comma-separated lm_eval task names")
    p.add_argument("--lm-eval-include", default=None, metavar="DIR", help="folder of local lm_eval task YAMLs")
    p.add_argument("--limit", type=float, default=None, help="lm_eval: documents per task (a fraction if < 1)")
    p.add_argument("--lm-eval-only", action="store_true", help="skip the run's eval sets; only run --lm-eval")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gadbench import GadbenchError, print_error
    from gadbench.config import ConfigError
    from gadbench.eval import rerun
    from gadbench.runtime import pin_portable_cpu_numerics

    judges = [j.strip() for j in args.judges.split(",") if j.strip()] if args.judges else None
    tasks = [t.strip() for t in args.lm_eval.split(",") if t.strip()] if args.lm_eval else None
    if args.lm_eval_only and not tasks:
        return print_error("--lm-eval-only needs --lm-eval TASKS.")
    if args.limit is not None and not (math.isfinite(args.limit) and args.limit > 0):
        return print_error("--limit must be above 0: a number of documents per task, or a fraction below 1.")
    if args.checkpoint is not None and args.checkpoint < 0:
        return print_error("--checkpoint must be a step of 0 or more (0: the initial student).")
    limit = None if args.limit is None else (int(args.limit) if args.limit >= 1 else args.limit)
    try:
        if rerun.load_spec(Path(args.run_dir).resolve(), judges, args.overrides).train.portable_cpu:
            pin_portable_cpu_numerics()
        out = rerun.evaluate_checkpoint(args.run_dir, args.checkpoint, judges, args.overrides,
                                        sets=not args.lm_eval_only, lm_eval_tasks=tasks,
                                        lm_eval_include=args.lm_eval_include, limit=limit)
    except (GadbenchError, ConfigError) as e:
        return print_error(e)
    step_dir = Path(args.run_dir) / "eval" / f"step-{out['step']}"
    print(f"checkpoint: step {out['step']}{' (initial student)' if out['step'] == 0 else ''}")
    if out["metrics"] is not None:
        print(rerun.metrics_table(out["metrics"]))
        print(f"written: {step_dir / 'metrics.json'}")
    if out["lm_eval"] is not None:
        print(rerun.lm_eval_table(out["lm_eval"]))
        print(f"written: {step_dir / 'lm_eval.json'}")
    return 0
