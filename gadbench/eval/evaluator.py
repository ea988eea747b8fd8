"""Evaluation at a checkpoint: greedy answers on each eval set (and the validation split) -> judges ->
per-item rows in `eval/step-K/<dataset>.jsonl` and summary statistics in `eval/step-K/metrics.json`.

Every judge is a record of gadbench.judge.records, run in the order `eval.judges` names them: its judgment of
each row is stored under its name, and each metric it declares becomes `<judge>/<metric>` (mean and interval
over items), beside its record's extra statistics. A judge that reads the student (e.g. `gold-sampled`) is
given the run's model context. The data's own reference answer (`meta["reference"]`, e.g. GPT-4's MT-bench
answers) and question category (`meta["category"]`) are stored in the row as `reference` and `category` and
passed to the judges (mtbench-single reads both); items without a teacher response are judged against that
reference where a judge needs an answer to compare with (pairwise, rouge-l, embedding).

What the judges spent is added to `eval/step-K/usage.json` after each set (gadbench.judge.usage.add_usage), so
usage survives a kill and every pass over a step (a resumed run's, `gadbench eval`'s) adds to it; a run's
summary adds up its steps' files (`stored_usage`). A judgment whose call failed (an API error, e.g. a judge
outage) is stored invalid and never scored; re-evaluating a step with its stored answers (`reask`, and
`gadbench eval`) asks the judge again for those judgments only.

Step 0 is the same student for every run of a student and seed (the `before` row), so with `eval.share_step0`
its rows, judgments included, are kept in `<cache>/step-0/<fingerprint>/` once a run has judged them, and a
later run whose step-0 evaluation would be identical (same student, seed, data, teacher, evaluation, judge and
generation settings: `step0_fingerprint`) takes them instead of answering and judging again; its statistics
are computed from them as usual.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

from gadbench.config import RunSpec
from gadbench.config.schema import to_dict
from gadbench.io import (
    DamagedFileError,
    atomic_write_json,
    atomic_write_text,
    kill_point,
    read_json,
    read_jsonl,
)
from gadbench.judge.aggregation import judge_statistics
from gadbench.judge.records import JUDGES
from gadbench.judge.types import JudgeItem, call_failed
from gadbench.judge.usage import add_usage
from gadbench.metrics import corpus_ngram_f1, summarize
from gadbench.models import response_tokens

log = logging.getLogger("gadbench")
USAGE = "usage.json"
PENDING = "pending.json"  # an evaluation whose answers are stored and whose judging is not done (D's diagnostics)


def stored_metrics(out_dir: Path, damaged: str = "evaluating that step again") -> dict | None:
    """`out_dir`/metrics.json, or None when there is none or it is damaged (with a warning ending in `damaged`,
    what the caller does instead)."""
    path = Path(out_dir) / "metrics.json"
    if not path.exists():
        return None
    try:
        return read_json(path)
    except DamagedFileError as e:
        log.warning("%s; %s", e.problem, damaged)
        return None


def failed_steps(run_dir: Path, judges) -> list[int]:
    """Steps of run `run_dir` with a complete evaluation holding a judgment of one of `judges` whose call
    failed (an API error)."""
    out = []
    for out_dir in Path(run_dir).glob("eval/step-*"):
        step = out_dir.name.split("-")[1]
        if not step.isdigit() or not (out_dir / "metrics.json").exists():
            continue
        try:
            rows = [r for path in sorted(out_dir.glob("*.jsonl")) for r in read_jsonl(path)]
        except DamagedFileError as e:
            log.warning("%s; its failed judgments, if any, are not asked again", e.problem)
            continue
        if any(call_failed(j) for r in rows for n, j in (r.get("judgments") or {}).items() if n in judges):
            out.append(int(step))
    return sorted(out)


def stored_usage(run_dir: Path, steps: str = "eval/step-*") -> dict:
    """The judge usage of every evaluation of run `run_dir` (eval/step-K/usage.json) added up; `steps` "."
    reads the one evaluation folder `run_dir`."""
    total: dict = {}
    for path in sorted(Path(run_dir).glob(f"{steps}/{USAGE}")):
        try:
            total = add_usage(total, read_json(path))
        except DamagedFileError as e:
            log.warning("%s; its judge usage is left out of the summary", e.problem)
    return total


def eval_seed(spec: RunSpec, step: int) -> int:
    """The torch seed of the evaluation of `step` (sampled answers), the same at training time and in
    `gadbench eval`; evaluation forks the RNG, so it never shifts training's stream."""
    return spec.seed + 7919 * step


def step0_fingerprint(spec: RunSpec) -> str:
    """What decides a run's step-0 rows: the student, the seed (eval_seed), the data and teacher, the evaluation
    and judge settings, and what shapes generation (rollout settings, precision, prompt cut, device, threads)."""
    t = spec.train
    decides = {"student": to_dict(spec.student), "seed": spec.seed, "data": to_dict(spec.data),
               "teacher": to_dict(spec.teacher), "eval": to_dict(spec.eval), "judge": to_dict(spec.judge),
               "rollout": to_dict(spec.rollout), "train": [t.precision, t.max_prompt_tokens, t.device, t.cpu_threads]}
    return hashlib.sha256(json.dumps(decides, sort_keys=True, default=str).encode()).hexdigest()[:16]


def tokenizer_only(ctx) -> SimpleNamespace:
    """What judging stored answers reads of a run's context: G's tokenizer (teacher lengths), so a background
    thread never holds the step's weights (with `hf` under FSDP, a gathered full copy of G)."""
    return SimpleNamespace(g=SimpleNamespace(tokenizer=ctx.g.tokenizer))


class Evaluator:
    """Callable hook for the trainer: `evaluator(step, ctx)`.

    With an LLM judge and `eval.judge_in_background`, a call answers every set with the step's weights (and runs
    the judges that read the student), stores the answers (`<set>.jsonl`), and hands the other judges to one
    background thread, which judges the stored answers and writes metrics.json last, as a synchronous evaluation
    would (`evaluate` with `reuse`); training goes on meanwhile. The answers are complete once `pending.json`
    (D's validation diagnostics of the step, which judging stores with the metrics) is written, and it is removed
    after metrics.json. `wait` joins them and then judges any step left pending without metrics.json (a process
    killed while judging: the judge cache re-asks nothing already answered)."""

    def __init__(self, spec: RunSpec, data, run_dir: Path, cache_dir: Path):
        self.spec, self.data, self.run_dir = spec, data, Path(run_dir)
        self.judges = {n: JUDGES[n].build(spec, cache_dir) for n in spec.eval.judges}
        self.usage: dict = {}  # gadbench.judge.usage.add_usage over every judge call
        self.background = spec.eval.judge_in_background and any(JUDGES[n].llm for n in self.judges)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._failed: BaseException | None = None  # the error that ended a background evaluation
        self.shared = Path(cache_dir) / "step-0" / step0_fingerprint(spec) if spec.eval.share_step0 else None

    def sets(self) -> dict[str, list]:
        out = {"validation": self.data.validation} if self.data.validation else {}
        return {**out, **self.data.eval}

    def __call__(self, step: int, ctx, extra: dict | None = None) -> dict | None:
        stored = stored_metrics(self.run_dir / "eval" / f"step-{step}")
        if stored is not None:
            return stored
        shared = step == 0 and self._take_shared()
        if not self.background:
            return self.evaluate(step, ctx, reuse=shared, extra=extra)
        if self._failed is not None:  # e.g. a rejected API key: the run stops at its next evaluation point
            raise self._failed
        out_dir = self.run_dir / "eval" / f"step-{step}"
        now = {n: j for n, j in self.judges.items() if JUDGES[n].reads_student}
        for name, examples in self.sets().items():  # the answers need this step's weights: now
            cached = self.cached_rows(out_dir, name, examples) if shared else None
            self._evaluate_set(name, examples, ctx, out_dir, step, cached, judges=now)
        atomic_write_json(out_dir / PENDING, {"extra": extra})  # what judging the stored answers needs besides them
        self._pool = self._pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="gadbench-judge")
        self._pending.append(self._pool.submit(self._judge_stored, step, tokenizer_only(ctx), extra))
        return None

    def _take_shared(self) -> bool:
        """Copy the shared step-0 rows of every set into this run's step 0 (module docstring); False when some
        set has none."""
        if self.shared is None or not all((self.shared / f"{n}.jsonl").exists() for n in self.sets()):
            return False
        out_dir = self.run_dir / "eval" / "step-0"
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in self.sets():
            atomic_write_text(out_dir / f"{name}.jsonl", (self.shared / f"{name}.jsonl").read_text())
        log.info("%s: step 0 takes the rows another run of the same student and seed judged (%s)",
                 self.spec.run_id, self.shared)
        return True

    def _share(self, out_dir: Path) -> None:
        """Publish step 0's rows for the runs that share them (each file written whole, then renamed)."""
        self.shared.mkdir(parents=True, exist_ok=True)
        for name in self.sets():
            tmp = self.shared / f".{name}.jsonl.{self.spec.run_id}"
            shutil.copyfile(out_dir / f"{name}.jsonl", tmp)
            tmp.replace(self.shared / f"{name}.jsonl")

    def _judge_stored(self, step: int, ctx, extra: dict | None) -> dict:
        """Judge step `step`'s stored answers; after an earlier background evaluation failed, ask nothing more."""
        if self._failed is not None:
            raise self._failed
        try:
            results = self.evaluate(step, ctx, reuse=True, extra=extra)
        except BaseException as e:
            self._failed = e
            raise
        (self.run_dir / "eval" / f"step-{step}" / PENDING).unlink(missing_ok=True)
        return results

    def wait(self, ctx) -> None:
        """Every background evaluation finished (the first error raised), then every step whose answers are
        stored without metrics.json judged on them; `ctx` gives the tokenizer (teacher lengths)."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        for out_dir in sorted(self.run_dir.glob("eval/step-*")):
            step = out_dir.name.split("-")[1]
            if step.isdigit() and not (out_dir / "metrics.json").exists() and (out_dir / PENDING).exists():
                log.info("%s: judging the stored answers of step %s", self.spec.run_id, step)
                self._judge_stored(int(step), tokenizer_only(ctx), read_json(out_dir / PENDING)["extra"])

    def reask(self) -> list[int]:
        """Judge again, on their stored answers, the judgments whose call failed; returns the steps redone."""
        steps = failed_steps(self.run_dir, self.judges)
        for step in steps:
            log.info("%s: asking the judges again for the failed judgments of step %d", self.spec.run_id, step)
            try:
                self.evaluate(step, None, reuse=True)
            except ValueError as e:  # stored answers that no longer match the run's sets
                log.warning("%s: step %d was not judged again (%s)", self.spec.run_id, step, e)
        return steps

    def evaluate(self, step: int, ctx, reuse: bool = True, extra: dict | None = None) -> dict:
        """Evaluate every set at `step` and (re)write metrics.json. With `reuse`, a set whose stored rows
        (`<set>.jsonl`) hold the same ids and prompts keeps its answers and the judgments already made; only
        missing judges run, and judgments whose call failed are asked again; the statistics of judges not
        asked are kept (`gadbench eval`). `extra` (the
        trainer's discriminator diagnostics) is stored with the validation split's metrics; a re-evaluation
        keeps the stored ones. `ctx` None judges stored answers only (every set must have them), and keeps the
        stored teacher lengths."""
        out_dir = self.run_dir / "eval" / f"step-{step}"
        stored = stored_metrics(out_dir) or {}
        results = {}
        for name, examples in self.sets().items():
            results[name] = self._evaluate_set(name, examples, ctx, out_dir, step,
                                               self.cached_rows(out_dir, name, examples) if reuse else None)
            kill_point("mid-eval", step)
        if reuse:  # a judge not asked this time keeps its stored statistics
            results = {name: {**stored.get(name, {}), **stats} for name, stats in results.items()}
        if "validation" in results:
            kept = {k: v for k, v in stored.get("validation", {}).items() if k == "d"}
            results["validation"].update(extra or kept)
        atomic_write_json(out_dir / "metrics.json", results)
        if step == 0 and self.shared is not None and ctx is not None:
            self._share(out_dir)
        kill_point("after-eval", step)
        return results

    @staticmethod
    def cached_rows(out_dir: Path, name: str, examples: list) -> list[dict] | None:
        """The rows stored for set `name` when they answer exactly `examples` (same ids and prompts), else None."""
        path = out_dir / f"{name}.jsonl"
        if not path.exists():
            return None
        try:
            rows = list(read_jsonl(path))
        except DamagedFileError as e:
            log.warning("%s; answering that set again", e.problem)
            return None
        same = len(rows) == len(examples) and all(
            r.get("id") == str(ex.meta.get("id", i)) and r.get("prompt") == ex.prompt
            for i, (r, ex) in enumerate(zip(rows, examples, strict=False)))
        return rows if same else None

    def _evaluate_set(self, name: str, examples: list, ctx, out_dir: Path, step: int,
                      cached: list[dict] | None = None, judges: dict | None = None) -> dict:
        """Answer set `name` (or take `cached` rows), judge it with `judges` (default: all) and store its rows;
        returns its statistics."""
        e = self.spec.eval
        judges = self.judges if judges is None else judges
        if cached is not None:
            rows = cached
        elif ctx is None:
            raise ValueError(f"no stored answers for {name} and no model to answer with")
        else:
            prompts = [ctx.prompt_ids(ex.prompt) for ex in examples]
            roll = ctx.engine.generate(ctx.g.model, prompts, 1, 0.0, e.max_new_tokens)
            rows = [
                {"id": str(ex.meta.get("id", i)), "prompt": ex.prompt, "answer": text, "answer_tokens": len(ids),
                 "teacher_response": ex.teacher_response, "judgments": {}}
                for i, (ex, text, ids) in enumerate(zip(examples, roll.texts, roll.response_ids, strict=True))
            ]
        for r, ex in zip(rows, examples, strict=True):  # the data's own reference answer and category
            r.update({k: ex.meta[k] for k in ("reference", "category") if ex.meta.get(k)})
        items = [JudgeItem(r["id"], r["prompt"], r["answer"], r["teacher_response"] or r.get("reference"),
                           reference=r.get("reference"), category=r.get("category")) for r in rows]
        stats: dict[str, dict] = {}
        spent: dict = {}
        for jname, judge in judges.items():
            record = JUDGES[jname]
            todo = [i for i, r in enumerate(rows) if jname not in r["judgments"] or call_failed(r["judgments"][jname])]
            if todo:
                if record.reads_student and ctx is None:
                    raise ValueError(f"no stored {jname} judgments for {name} and no model for the judge to read")
                asked = [items[i] for i in todo]
                judgments = judge.judge(asked, ctx) if record.reads_student else judge.judge(asked)
                spent = add_usage(spent, getattr(judgments, "usage", {}))
                for i, j in zip(todo, judgments, strict=True):
                    rows[i]["judgments"][jname] = j.to_json()
                failed = sum(call_failed(rows[i]["judgments"][jname]) for i in todo)
                if failed:
                    log.warning("%s: step %d, %s: %d of %d %s judgments failed (%s); they are left out of the "
                                "scores, and `gadbench run --resume` or `gadbench eval` asks them again",
                                self.spec.run_id, step, name, failed, len(rows), jname,
                                next(rows[i]["judgments"][jname]["details"]["error"] for i in todo
                                     if call_failed(rows[i]["judgments"][jname])))
            stats.update(judge_statistics(record, [r["judgments"][jname] for r in rows], e.bootstrap))
        stats["length"] = summarize([r["answer_tokens"] for r in rows], e.bootstrap)
        with_teacher = [r for r in rows if r["teacher_response"]]
        if with_teacher and ctx is not None:
            tok = ctx.g.tokenizer
            stats["teacher_length"] = sum(response_tokens(tok, r["teacher_response"]) for r in with_teacher) / len(
                with_teacher)
            stats["ngram_f1"] = corpus_ngram_f1([r["answer"] for r in with_teacher],
                                                [r["teacher_response"] for r in with_teacher])
        if spent:  # before the rows: a kill between the two counts the re-judging as cache hits, losing nothing
            self.usage = add_usage(self.usage, spent)
            atomic_write_json(out_dir / USAGE, add_usage(stored_usage(out_dir, "."), spent))
        atomic_write_text(out_dir / f"{name}.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        return stats
