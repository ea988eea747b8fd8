"""Canonical names: datasets, students, methods and ablation variants, and which way a metric is better."""

from __future__ import annotations

import re
from dataclasses import dataclass

PAPER_DATASETS = ("LMSYS", "Dolly", "SelfInst", "Vicuna")
OOD = ("Dolly", "SelfInst", "Vicuna")
OTHERS = "Others"
_DATASET_ALIASES = {
    "lmsys": "LMSYS",
    "lmsyschat": "LMSYS",
    "lmsyschat1m": "LMSYS",
    "lmsyschat1mclean": "LMSYS",
    "dolly": "Dolly",
    "selfinst": "SelfInst",
    "selfinstruct": "SelfInst",
    "vicuna": "Vicuna",
}
_METHOD_ORDER = ("teacher", "before", "seqkd", "gad")
_METHOD_LABELS = {"teacher": "Teacher", "before": "Before distill.", "seqkd": "SeqKD", "gad": "GAD"}
_BEFORE = {"before", "before-distill", "before_distill", "base", "no-distill"}
GROUPS = ("warmup", "discriminator loss", "discriminator size", "frozen discriminator", "no discriminator")


def dataset_label(name: str) -> str:
    """The paper's name for a dataset (`self-inst` -> `SelfInst`); other names are kept as they are."""
    return _DATASET_ALIASES.get(re.sub(r"[^a-z0-9]", "", name.lower()), name)


def dataset_order(label: str) -> tuple:
    return (PAPER_DATASETS.index(label), "") if label in PAPER_DATASETS else (len(PAPER_DATASETS), label)


def student_label(name: str) -> str:
    """`Qwen/Qwen2.5-7B-Instruct` -> `Qwen2.5-7B-Instruct`."""
    return str(name).rstrip("/").split("/")[-1]


def same_model(a: str, b: str) -> bool:
    return student_label(a).lower() == student_label(b).lower()


def family(method: str) -> str:
    """The base method of a run's method name: teacher, before, seqkd, gad, or the name itself."""
    m = method.lower()
    if m in _BEFORE:
        return "before"
    for fam in ("teacher", "seqkd", "gad"):
        if m == fam or m.startswith(fam + "-") or m.startswith(fam + "_"):
            return fam
    return m


def method_order(key: str) -> tuple:
    fam = key.split(":")[0]
    rank = _METHOD_ORDER.index(fam) if fam in _METHOD_ORDER else len(_METHOD_ORDER)
    return (rank, fam, key != fam, key)


@dataclass(frozen=True)
class Variant:
    """What a run is: `key` matches baselines/paper.json (`gad`, `gad:d_loss=ce`, ...); `group` is None
    for main-table methods and one of GROUPS for ablations."""

    key: str
    label: str
    group: str | None = None


def variant_of(method_name: str, method_cfg: dict, student: str) -> Variant:
    """Infer the ablation variant from the config's method section, falling back on the method name; the
    family is the method's `kind` when the config names one (`grpo-rouge` of kind gad is a GAD variant)."""
    fam = family(str(method_cfg.get("kind") or method_name))
    tokens = set(re.split(r"[-_]", method_name.lower()))
    found: list[tuple[str, str, str]] = []  # (group, key suffix, label)
    disc = str(method_cfg.get("discriminator", "")).lower()
    if str(method_cfg.get("kind", "")).lower() == "gad-offpolicy" or "offpolicy" in tokens:
        found.append(("frozen discriminator", "offpolicy", "off-policy D (paper)"))
    elif disc.startswith("frozen") or "frozen" in tokens:  # `frozen`: runs written before the rename
        found.append(("frozen discriminator", "frozen-after-warmup", "D frozen after warmup"))
    if disc == "none" or method_name.lower().endswith(("no-d", "no-disc", "no-discriminator")):
        reward = method_cfg.get("reward")
        found.append(
            (
                "no discriminator",
                "no-discriminator",
                "no discriminator" + (f" (reward: {reward})" if reward else ""),
            )
        )
    if method_cfg.get("generator_warmup") is False or _named(
        method_name, "no-gen-warmup", "no-g-warmup", "no-generator-warmup"
    ):
        found.append(("warmup", "no-generator-warmup", "w/o generator warmup"))
    if method_cfg.get("discriminator_warmup") is False or _named(
        method_name, "no-disc-warmup", "no-d-warmup", "no-discriminator-warmup"
    ):
        found.append(("warmup", "no-discriminator-warmup", "w/o discriminator warmup"))
    d_loss = str(method_cfg.get("d_loss", "bt")).lower()
    if d_loss != "bt":
        found.append(("discriminator loss", f"d_loss={d_loss}", f"D loss: {d_loss}"))
    d_model = method_cfg.get("d_model")
    if d_model and not same_model(d_model, student):
        found.append(
            ("discriminator size", f"d_model={student_label(d_model)}", f"D: {student_label(d_model)}")
        )
    if fam != "gad" or not found:
        return Variant(fam, _METHOD_LABELS.get(fam, method_name))
    key = fam + ":" + ",".join(k for _, k, _ in found)
    return Variant(key, "GAD, " + ", ".join(lbl for _, _, lbl in found), found[0][0])


def _named(name: str, *parts: str) -> bool:
    return any(p in name.lower() for p in parts)


def higher_is_better(metric: str) -> bool | None:
    """True/False for metrics with a direction; None where no cell is 'best' (style shares, lengths)."""
    m = metric.lower()
    if "style_share" in m or m in ("length", "response_len"):
        return None
    if any(w in m for w in ("loss", "nll", "error", "kl", "perplexity")):
        return False
    return True
