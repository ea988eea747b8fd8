"""Suite configuration: validation messages, `extends`, `--set`, run ids, the dry-run plan and requirements."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gadbench.config import ConfigError, SuiteConfig
from gadbench.runner import plan
from gadbench.suite import get_suite, load_suite, runs_of

REPO = Path(__file__).resolve().parent.parent
FIX = Path(__file__).resolve().parent / "fixtures" / "config"


def _error(name: str, overrides: list[str] = ()) -> str:
    with pytest.raises(ConfigError) as e:
        load_suite(FIX / f"{name}.yaml", overrides)
    msg = str(e.value)
    assert "\n" not in msg, msg  # one line
    return msg


def _message(path: Path, overrides: list[str] = ()) -> str:
    """The one-line ConfigError of loading `path`; it names the file."""
    with pytest.raises(ConfigError) as e:
        load_suite(path, overrides)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and str(path) in msg, msg
    return msg


# ------------------------------------------------------------------------------------------- validation


def test_base_fixture_loads():
    s = load_suite(FIX / "base.yaml")
    assert s.name == "base" and s.train.steps == 8 and s.train.batch_size == 4
    assert list(s.methods) == ["seqkd", "gad", "gad-ce"]
    assert s.methods["gad-ce"].d_loss == "ce" and s.methods["gad"].d_loss == "bt"
    assert s.train.lr_generator == 1e-6  # an unset key keeps its default
    assert s.seeds == (0, 1)


def test_misspelled_key_names_key_file_and_closest_valid_key():
    msg = _error("typo")
    assert "`train.stepz`" in msg
    assert str(FIX / "typo.yaml") in msg
    assert "did you mean `train.steps`?" in msg


def test_wrong_type():
    msg = _error("wrongtype")
    assert "`train.batch_size` = 'sixteen'" in msg and "type int" in msg and "wrongtype.yaml" in msg


def test_bool_is_not_an_int():
    msg = _error("base", ["train.steps=true"])
    assert "`train.steps` = True" in msg and "type int" in msg


def test_bad_enum_with_suggestion():
    msg = _error("badenum")
    assert "`methods.gad.discriminator` = 'onlin'" in msg
    assert "online, frozen-after-warmup, none" in msg
    assert "did you mean `online`?" in msg


def test_out_of_range():
    msg = _error("range")
    assert "`train.top_p` = 1.5 is out of range [0.0, 1.0]" in msg and "range.yaml" in msg
    msg = _error("base", ["train.group_size=1"])  # GRPO needs at least 2 samples per group
    assert "`train.group_size` = 1 is out of range [2, inf]" in msg


def test_malformed_yaml_names_line_and_column():
    # line 4 is "   batch_size: 2", indented one space deeper than "steps: 4": the ':' at column 14 is illegal
    msg = _error("malformed")
    assert "malformed.yaml: malformed YAML at line 4, column 14" in msg


def test_missing_required_key(tmp_path):
    (tmp_path / "s.yaml").write_text("description: no name\n")
    with pytest.raises(ConfigError, match="missing required key `name`"):
        load_suite(tmp_path / "s.yaml")


# ---------------------------------------------------------------------------------------------- extends


def test_extends_child_overrides_parent_and_null_deletes_a_method():
    s = load_suite(FIX / "child.yaml")
    assert s.name == "child"
    assert s.train.steps == 12  # overridden
    assert s.train.warmup_steps == 4 and s.train.batch_size == 4  # inherited siblings of the overridden key
    assert list(s.methods) == ["seqkd", "gad", "gad-frozen"]  # gad-ce deleted by `null`, gad-frozen added
    assert s.methods["gad-frozen"].discriminator == "frozen-after-warmup"
    assert s.data.eval["world-id"].limit == 8  # inherited nested mapping


def test_extends_cycle_and_missing_parent(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a\nname: b\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_suite(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nowhere\nname: c\n")
    with pytest.raises(ConfigError, match="`extends: nowhere` names no suite file"):
        load_suite(tmp_path / "c.yaml")


def test_extends_a_file_by_path(tmp_path):
    """`extends: b.yaml` is a path (relative to the extending file), not a suite name that gets `.yaml` again."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("name: b\nseeds: [7]\ntrain: {steps: 3}\n")
    (tmp_path / "a.yaml").write_text("extends: sub/b.yaml\nname: a\ntrain: {warmup_steps: 1}\n")
    s = load_suite(tmp_path / "a.yaml", search_dir=tmp_path / "elsewhere")
    assert (s.name, s.seeds, s.train.steps, s.train.warmup_steps) == ("a", (7,), 3, 1)
    (tmp_path / "sub" / "c.yaml").write_text(f"extends: {tmp_path / 'a.yaml'}\nname: c\n")  # absolute, chained
    assert load_suite(tmp_path / "sub" / "c.yaml").train.steps == 3
    (tmp_path / "d.yaml").write_text("extends: b.yaml\nname: d\n")
    msg = _message(tmp_path / "d.yaml")
    assert f"`extends: b.yaml` names no suite file {tmp_path / 'b.yaml'} (a path is read from the folder of d.yaml)" in msg
    (tmp_path / "e.yaml").write_text("extends: ./sub/../e.yaml\nname: e\n")  # a cycle spelt another way
    assert "`extends` forms a cycle" in _message(tmp_path / "e.yaml")


@pytest.mark.parametrize("parent", ["3", "[smoke]", "{name: x}", "''", '"a\\0b"'])
def test_extends_must_be_a_name_or_a_yaml_path(tmp_path, parent):
    (tmp_path / "s.yaml").write_text(f"extends: {parent}\nname: s\n")
    assert "is neither a suite name nor a .yaml path; write e.g. `extends: smoke`" in _message(tmp_path / "s.yaml")


def test_a_suite_file_that_is_not_utf8_names_the_line(tmp_path):
    (tmp_path / "s.yaml").write_bytes(b"name: s\ndescription: caf\xe9\n")  # Latin-1
    msg = _message(tmp_path / "s.yaml")
    assert "byte 0xe9 at line 2 is not UTF-8 text; save the file as UTF-8" in msg
    (tmp_path / "bom.yaml").write_bytes(b"\xef\xbb\xbfname: bom\n")
    assert load_suite(tmp_path / "bom.yaml").name == "bom"


@pytest.mark.parametrize("value, needle", [
    ("2025-13-45", "a value cannot be read (month must be in 1..12); fix it, or quote it"),
    ("9" * 5000, "a value cannot be read (Exceeds the limit (4300 digits) for integer string conversion"),
    ("[" * 600 + "]" * 600, "the YAML is nested too deeply to read"),
    ("\x00", "malformed YAML (special characters are not allowed)"),
])
def test_yaml_values_python_cannot_hold_stop_in_one_line(tmp_path, value, needle):
    (tmp_path / "s.yaml").write_text(f"name: s\ndescription: {value}\n")
    assert needle in _message(tmp_path / "s.yaml")


def test_messages_stay_one_line_whatever_the_input_holds(tmp_path):
    (tmp_path / "s.yaml").write_text('name: s\n"tra\\nin": {steps: 2}\n')
    assert "unknown key `tra\\nin`; did you mean `train`?" in _message(tmp_path / "s.yaml")  # shown escaped
    huge = "0x" + "f" * 5000  # a 20000-bit integer: its decimal repr() raises
    msg = _message(FIX / "base.yaml", [f"train.top_p={huge}"])
    assert "`train.top_p` = <a 20000-bit integer> is too large for a float" in msg
    msg = _message(FIX / "base.yaml", [f"train.batch_size=[{huge}]"])
    assert "`train.batch_size` = <a list holding a huge integer> should be of type int" in msg


@pytest.mark.parametrize("override", ["train.steps=0x" + "f" * 5000, "seeds=[0x" + "f" * 20 + "]",
                                      "train.steps=-0x" + "f" * 20])
def test_integer_settings_are_at_most_64_bit(override):
    """A larger integer passed validation, then stopped the run ids (its decimal form is over Python's limit)."""
    assert "is out of range [-9223372036854775807, 9223372036854775807]" in _message(FIX / "base.yaml", [override])


def test_set_values_python_cannot_hold_are_strings():
    s = load_suite(FIX / "base.yaml", ["description=2025-13-45"])
    assert s.description == "2025-13-45"
    msg = _message(FIX / "base.yaml", ["train.steps=" + "9" * 5000])
    assert "`train.steps` = '99999" in msg and "9... should be of type int" in msg and len(msg) < 300


def test_float_settings_reject_nan_and_numbers_too_large():
    assert "`train.lr_generator` is NaN; write a number" in _message(FIX / "base.yaml", ["train.lr_generator=.nan"])
    msg = _message(FIX / "base.yaml", ["train.lr_generator=1" + "0" * 400])
    assert "`train.lr_generator` = <a 1329-bit integer> is too large for a float" in msg


# ------------------------------------------------------------------------------------------------ --set


def test_set_overrides_with_type_checking():
    s = load_suite(FIX / "base.yaml", ["train.steps=5", "train.lr_generator=3e-6",
                                       "methods.gad.discriminator=frozen-after-warmup"])
    assert s.train.steps == 5
    # YAML 1.1 reads "3e-6" as a string; float settings accept it as a number
    assert s.train.lr_generator == 3e-6 and isinstance(s.train.lr_generator, float)
    assert s.methods["gad"].discriminator == "frozen-after-warmup"
    msg = _error("base", ["train.steps=five"])
    assert "`train.steps` = 'five'" in msg and "type int" in msg
    msg = _error("base", ["train.stepz=3"])
    assert "unknown key `train.stepz`" in msg and "did you mean `train.steps`?" in msg
    msg = _error("base", ["methods.gad.discriminator=frozen"])
    assert "did you mean `frozen-after-warmup`?" in msg
    msg = _error("base", ["methods.gad.kind=gad-offpolcy"])
    assert "kind `gad-offpolcy` is not a method (did you mean `gad-offpolicy`?)" in msg


def test_set_null_removes_a_method_or_resets_a_setting():
    s = load_suite(FIX / "base.yaml", ["methods.gad-ce=null", "train.steps=null"])
    assert list(s.methods) == ["seqkd", "gad"]
    assert s.train.steps == 2400  # the TrainConfig default
    s = load_suite(FIX / "base.yaml", ["methods.gad-new={kind: gad, d_loss: ce}"])
    assert s.methods["gad-new"].d_loss == "ce"


def test_set_reaches_names_with_dots():
    """Student names such as Qwen2.5-14B-Instruct hold dots: `--set` takes the name whole where the suite has it."""
    suite = get_suite("paper", ["students.Qwen2.5-14B-Instruct.cpu_offload=false",
                                "students.Qwen2.5-7B-Instruct.path=local/qwen7b"])
    assert suite.students["Qwen2.5-14B-Instruct"].cpu_offload is False
    assert suite.students["Qwen2.5-7B-Instruct"].path == "local/qwen7b"
    assert "Qwen2.5-3B-Instruct" not in get_suite("paper", ["students.Qwen2.5-3B-Instruct=null"]).students


def test_set_malformed_items():
    with pytest.raises(ConfigError, match="expected key=value"):
        load_suite(FIX / "base.yaml", ["train.steps"])
    msg = _error("base", ["train.steps.x=1"])
    assert "train.steps is a single value" in msg


# ----------------------------------------------------------------------------------------------- run ids


def _ids(overrides: list[str] = ()) -> dict[str, str]:
    return {f"{r.method_name}/{r.seed}": r.run_id for r in runs_of(load_suite(FIX / "base.yaml", overrides))}


def test_run_id_is_stable_and_well_formed():
    a, b = _ids(), _ids()
    assert a == b
    assert len(a) == 6  # 1 student x 3 methods x 2 seeds
    for key, rid in a.items():
        method, seed = key.split("/")
        student, m, s, h = rid.split("--")
        assert (student, m, s) == ("tiny", method, f"s{seed}")
        assert len(h) == 8 and all(c in "0123456789abcdef" for c in h)
    assert len(set(a.values())) == 6


@pytest.mark.parametrize(
    "override",
    ["train.lr_generator=2e-6", "train.steps=9", "train.temperature=0.7", "eval.every=5", "eval.samples=2",
     "data.train.limit=32", "data.validation_size=4", "teacher.spec=program:world", "judge.model=gpt-4o-mini",
     "budget.assumed_prompt_tokens=9", "rollout.batch_size=3", "students.tiny.template=plain"],
)
def test_run_id_changes_when_any_shared_setting_changes(override):
    base, changed = _ids(), _ids([override])
    for key in base:
        assert base[key] != changed[key], (override, key)


def test_run_id_depends_on_its_own_method_only():
    base, changed = _ids(), _ids(["methods.gad.d_loss=ce", "methods.extra={kind: gad}"])
    assert changed["gad/0"] != base["gad/0"] and changed["gad/1"] != base["gad/1"]
    for key in ("seqkd/0", "seqkd/1", "gad-ce/0", "gad-ce/1"):
        assert changed[key] == base[key]


# ------------------------------------------------------------------------------------------ plan, requires


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "gadbench.cli", "-q", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_plan_flops_by_hand():
    p = plan(load_suite(FIX / "base.yaml"))
    rows = {(r["method"], r["seed"]): r for r in p["runs"]}
    # world:tiny params: v*h + L*(4h^2 + 3h*i), v = 105 + 6 specials = 111, h = 64, L = 2, i = 192
    #   = 7104 + 2 * (16384 + 36864) = 113600
    P = 113600
    seq = 100 + 350  # assumed prompt + response tokens (defaults)
    sft = rows[("seqkd", 0)]
    assert sft["params"] == P and sft["stages"] == "sft 8"
    assert sft["flops"] == 8 * 6 * P * 4 * seq == 9_815_040_000
    assert sft["g_trained_tokens"] == 8 * 4 * seq and sft["generated_tokens"] == 0
    gad = rows[("gad", 1)]
    assert gad["stages"] == "warmup 4 + adversarial 4"
    B, N = 4, 2
    g_train, roll, d_train = 6 * P * B * seq, 2 * P * B * N * seq, 6 * P * B * (N + 1) * seq
    # d_only_steps defaults to 10 >= 4 warmup steps, so every warmup step trains D alone (no g_train)
    warm_d_only = roll + d_train
    adv = roll + d_train + 6 * P * B * N * seq + 2 * P * B * N * seq  # + G train + reference log-probs
    assert gad["flops"] == pytest.approx(4 * warm_d_only + 4 * adv)
    assert gad["g_trained_tokens"] == 4 * B * N * seq  # adversarial only
    s = load_suite(FIX / "base.yaml", ["train.d_only_steps=1"])
    gad = next(r for r in plan(s)["runs"] if r["method"] == "gad")
    assert gad["flops"] == pytest.approx(warm_d_only + 3 * (g_train + roll + d_train) + 4 * adv)
    assert gad["d_trained_tokens"] == 8 * B * (N + 1) * seq
    # the paper's off-policy D: SeqKD for the warmup, D alone for offpolicy_d_steps (G frozen: rollouts + D
    # training), then GRPO against the frozen D (D scores but does not train)
    s = load_suite(FIX / "base.yaml", ["methods.off={kind: gad-offpolicy}", "train.offpolicy_d_steps=3"])
    off = next(r for r in plan(s)["runs"] if r["method"] == "off")
    assert off["stages"] == "sft 4 + d-fit 3 + adversarial 4"
    d_score = 2 * P * B * (N + 1) * seq
    frozen_adv = roll + d_score + 6 * P * B * N * seq + 2 * P * B * N * seq
    assert off["flops"] == pytest.approx(4 * g_train + 3 * (roll + d_train) + 4 * frozen_adv)
    assert off["d_trained_tokens"] == 3 * B * (N + 1) * seq and off["steps"] == 11


def test_dry_run_prints_the_plan(tmp_path):
    r = _cli("run", "--suite", str(FIX / "base.yaml"), "--dry-run", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "suite base: 6 runs (student x method x seed)" in r.stdout
    assert "sft 8" in r.stdout and "warmup 4 + adversarial 4" in r.stdout
    assert "9.8G" in r.stdout  # the seqkd FLOPs computed by hand above
    assert not (tmp_path / "results").exists()  # a dry run writes nothing


def test_dry_run_of_the_paper_suite(tmp_path):
    r = _cli("run", "--suite", "paper", "--dry-run", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "suite paper: 10 runs" in out
    assert "sft 2400" in out and "warmup 800 + adversarial 1600" in out
    # Qwen2.5-3B SeqKD: 2400 steps * 6 * 3e9 params * 256 prompts * 450 tokens = 4.98e18 -> "5.0E"
    # Qwen2.5-3B GAD: 790 warmup steps with G (2.62656e16) + 10 D-only (2.4192e16) + 1600 adversarial
    #   (4.63104e16) = 9.5088e19 -> "95.1E"
    line = next(x for x in out.splitlines() if "Qwen2.5-3B-Instruct" in x and "| seqkd" in x)
    assert "5.0E" in line and "276.5M" in line
    line = next(x for x in out.splitlines() if "Qwen2.5-3B-Instruct" in x and "| gad" in x)
    assert "95.1E" in line
    assert "judge calls:" in out and "estimated cost $" in out


def test_judge_cost_follows_the_judge_model():
    """The plan prices judge calls at judge.price_per_mtok, else at the judge model's list price (gpt-4o: $2.50
    and $10 per million tokens, 900 + 300 tokens per call), else not at all: a local judge has no price. Planning
    loads no API client, and a price that is not two numbers stops the suite."""
    base = ["judge.model=gpt-4o", "data.eval.sharegpt-test.limit=10", "data.eval.mtbench=null", "seeds=[0]",
            "methods.gad=null", "methods.gad-offpolicy=null", "methods.grpo-rouge=null", "eval.judges=[gad-paper]"]
    p = plan(get_suite("sharegpt-smol", base))
    assert p["judge_calls"] > 0
    assert p["judge_cost_usd"] == pytest.approx(round(p["judge_calls"] * (900 * 2.5 + 300 * 10.0) / 1e6, 2))
    assert plan(get_suite("sharegpt-smol", base + ["judge.model=smollm2"]))["judge_cost_usd"] is None
    own = plan(get_suite("sharegpt-smol", base + ["judge.model=smollm2", "judge.price_per_mtok=[1.0, 2.0]"]))
    assert own["judge_cost_usd"] == pytest.approx(round(p["judge_calls"] * (900 * 1.0 + 300 * 2.0) / 1e6, 2))
    with pytest.raises(ConfigError, match=r"price_per_mtok = \[1.0\] must be two prices >= 0"):
        get_suite("sharegpt-smol", base + ["judge.price_per_mtok=[1.0]"])
    code = ("import sys; from gadbench.suite import get_suite; from gadbench.runner import plan; "
            "plan(get_suite('sharegpt-smol', ['eval.judges=[gad-paper]'])); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'openai'))")  # httpx2 is also the hub's
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_requires_gpu_stops_with_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible; the requirement is met")
    r = _cli("run", "--suite", str(FIX / "gpu.yaml"), "--out", str(tmp_path / "out"), tmp_path=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("gadbench: suite `gpu` needs a CUDA GPU (none is visible)")
    assert "--dry-run" in lines[0]
    assert not (tmp_path / "out").exists()  # stopped before creating anything


def test_vllm_engine_without_vllm_stops_with_one_line(tmp_path):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed; the requirement is met")
    r = _cli("run", "--suite", str(FIX / "base.yaml"), "--out", str(tmp_path / "out"), "--set", "rollout.engine=vllm",
             tmp_path=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "needs vLLM for rollout.engine=vllm (pip install 'gadbench[vllm]'" in lines[0]
    assert not (tmp_path / "out").exists()  # stopped before creating anything


def test_tensor_parallel_size_must_divide_the_process_count():
    from gadbench.config import RolloutConfig
    from gadbench.rollout.vllm import VLLMRolloutEngine

    with pytest.raises(ConfigError, match=r"rollout.tensor_parallel_size=2 does not divide the 1 process\(es\)"):
        VLLMRolloutEngine(None, RolloutConfig(engine="vllm", tensor_parallel_size=2), max_model_len=64)
    VLLMRolloutEngine(None, RolloutConfig(engine="vllm", tensor_parallel_size=1), max_model_len=64)  # builds lazily


# ------------------------------------------------------------------------------------ hyperparameter search


def test_search_expands_each_method_into_its_grid():
    s = load_suite(FIX / "base.yaml", ["methods.seqkd.search={lr_sft: [1e-3, 3e-3]}",
                                       "methods.gad.search={lr_generator: [1e-4], lr_discriminator: [1e-4, 1e-3]}",
                                       "methods.gad-ce=null", "seeds=[0]"])
    runs = runs_of(s)
    names = [r.method_name for r in runs]
    assert names == ["seqkd+lr_sft=0.001", "seqkd+lr_sft=0.003", "gad+lr_generator=0.0001+lr_discriminator=0.0001",
                     "gad+lr_generator=0.0001+lr_discriminator=0.001"]
    assert [r.train.lr_sft for r in runs[:2]] == [1e-3, 3e-3] and runs[1].search_point == {"lr_sft": 3e-3}
    assert runs[3].train.lr_discriminator == 1e-3 and runs[3].train.lr_generator == 1e-4
    assert runs[3].train.steps == s.train.steps  # everything else as the suite says
    assert len({r.run_id for r in runs}) == 4
    assert len(plan(s)["runs"]) == 4


def test_search_over_an_integer_setting_keeps_integers():
    s = load_suite(FIX / "base.yaml", ["methods.gad.search={warmup_steps: [2, 4]}", "seeds=[0]"])
    gad = [r for r in runs_of(s) if r.method_name.startswith("gad+")]
    assert [r.train.warmup_steps for r in gad] == [2, 4] and all(type(r.train.warmup_steps) is int for r in gad)


def test_search_errors_name_the_key_and_the_fix():
    msg = _error("base", ["methods.seqkd.search={lr_sf: [1e-3]}"])
    assert "search key `lr_sf` is not a numeric train setting (did you mean `lr_sft`?)" in msg
    msg = _error("base", ["methods.seqkd.search={device: [1]}"])
    assert "search key `device` is not a numeric train setting" in msg
    s = load_suite(FIX / "base.yaml", ["methods.seqkd.search={lr_sft: [-1.0]}"])
    with pytest.raises(ConfigError) as e:
        runs_of(s)
    assert "`train.lr_sft` = -1.0 is out of range" in str(e.value) and "methods.seqkd.search" in str(e.value)


def test_portable_cpu_pins_the_kernels_of_a_real_run(tmp_path):
    """`train.portable_cpu` (smoke and ci set it) reaches torch before its first operation, so a run's
    kernels are the AVX2 ones whatever this CPU supports; a suite without it keeps the native kernels."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the pin applies to x86 CPUs only")
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))

    def capability(*argv: str) -> str:
        probe = ("import sys, torch; from gadbench.cli import main; main(sys.argv[1:]) if sys.argv[1:] else None; "
                 "print(torch.backends.cpu.get_cpu_capability())")
        out = subprocess.run([sys.executable, "-c", probe, *argv], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split()[-1]

    native = capability()
    assert capability("-q", "run", "--suite", "smoke", "--dry-run") == "AVX2"
    assert capability("-q", "run", "--suite", "toy", "--dry-run") == native


def test_every_setting_is_documented_and_docs_config_md_is_current():
    from gadbench.config import explain
    from gadbench.config.explain import _settings

    missing = [k for k, _, f in _settings(SuiteConfig, "") if not f.metadata.get("doc")]
    assert not missing, f"settings without a one-line doc: {missing}"
    listed = (REPO / "docs" / "config.md").read_text()
    stale = [line for line in explain() if line not in listed]
    assert not stale, f"docs/config.md is out of date (regenerate it from `gadbench suites --explain`): {stale[:3]}"


def test_relative_paths_are_read_from_the_suite_files_folder_and_set_paths_from_the_working_directory(
        tmp_path, monkeypatch):
    """`baseline` and `data.*.path` written in a suite file are read from that file's folder (each file of an
    `extends` chain from its own); given with --set, from the current directory; the suite holds them absolute."""
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "parent.yaml").write_text(
        "name: parent\nbaseline: ../baselines/b.json\ndata: {train: {source: jsonl, path: train.jsonl}}\n")
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "child.yaml").write_text(
        "extends: ../base/parent.yaml\nname: child\ndata: {eval: {x: {source: jsonl, path: sub/x.jsonl}, "
        "y: {source: jsonl, path: /abs/y.jsonl}, z: {source: jsonl, path: ~/z.jsonl}}}\n")
    monkeypatch.chdir(tmp_path)
    s = load_suite(tmp_path / "suites" / "child.yaml")
    assert s.baseline == str(tmp_path / "baselines" / "b.json")
    assert s.data.train.path == str(tmp_path / "base" / "train.jsonl")
    assert s.data.eval["x"].path == str(tmp_path / "suites" / "sub" / "x.jsonl")
    assert s.data.eval["y"].path == "/abs/y.jsonl" and s.data.eval["z"].path == str(Path.home() / "z.jsonl")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    s = load_suite(tmp_path / "suites" / "child.yaml", ["data.train.path=t.jsonl", "baseline=../b2.json",
                                                       "data.eval.w={source: jsonl, path: w.jsonl}"])
    assert (s.data.train.path, s.baseline) == (str(tmp_path / "cwd" / "t.jsonl"), str(tmp_path / "b2.json"))
    assert s.data.eval["w"].path == str(tmp_path / "cwd" / "w.jsonl")
    assert s.data.eval["x"].path == str(tmp_path / "suites" / "sub" / "x.jsonl")  # not given: the file's folder


def test_settings_that_cannot_change_results_are_left_out_of_the_run_id():
    """judge/teacher timeout and max_retries: changing them resumes the same run; every other setting (judge.model
    here) makes another run."""
    from gadbench.suite import get_suite, runs_of

    ids = lambda *sets: [r.run_id for r in runs_of(get_suite("smoke", list(sets)))]  # noqa: E731
    assert ids() == ids("judge.timeout=5", "judge.max_retries=0", "teacher.timeout=1", "teacher.max_retries=2")
    assert ids() != ids("judge.model=other")


def test_a_judge_is_priced_by_its_own_model_in_the_paper_suite():
    """The paper suite names no judge price: GPT-4o is priced at its list price, another judge model as itself
    (unknown without judge.price_per_mtok), never at GPT-4o's rate."""
    from gadbench.llm.pricing import cost_usd
    from gadbench.runner import ASSUMED_JUDGE_TOKENS

    paper = plan(get_suite("paper"))
    assert paper["judge_cost_usd"] == round(paper["judge_calls"] * cost_usd(*ASSUMED_JUDGE_TOKENS, (2.5, 10.0)), 2)
    assert plan(get_suite("paper", ["judge.model=Qwen/Qwen2.5-72B-Instruct"]))["judge_cost_usd"] is None
    priced = plan(get_suite("paper", ["judge.model=Qwen/Qwen2.5-72B-Instruct", "judge.price_per_mtok=[0.1, 0.2]"]))
    assert priced["judge_cost_usd"] == round(priced["judge_calls"] * cost_usd(*ASSUMED_JUDGE_TOKENS, (0.1, 0.2)), 2)
