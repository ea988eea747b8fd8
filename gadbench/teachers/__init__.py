"""Black-box teachers, one backend record each: `openai:MODEL[@URL]` (an OpenAI-compatible endpoint), `hf:PATH`
(a local model), `dataset` (responses shipped with the data), `program` (the synthetic world's teacher),
`persona:NAME` (smol-gold's hidden-persona chat model).
`make_teacher(spec, **options).respond(prompts)`; `teacher_from(settings, cache_path)` with the options a
suite's teacher settings give. Backends import lazily, so `import gadbench.teachers` needs neither torch nor
openai.
"""

from gadbench.teachers.base import (
    BACKENDS,
    Backend,
    Teacher,
    TeacherError,
    make_teacher,
    register_teacher,
    teacher_from,
    unknown_teacher,
)


def _openai(arg: str, **opts):
    from gadbench.teachers.api import from_spec

    return from_spec(arg, **opts)


def _hf(arg: str, **opts):
    from gadbench.teachers.hf import from_spec

    return from_spec(arg, **opts)


def _dataset(arg: str, **opts):
    from gadbench.teachers.dataset import from_spec

    return from_spec(arg, **opts)


def _program(arg: str, **opts):
    from gadbench.worlds.synthetic import ProgramTeacher

    if arg not in ("", "world"):
        raise ValueError(f"the program teacher is the synthetic world's (program or program:world), not {arg!r}.")
    return ProgramTeacher(seed=0)


def _persona(arg: str, **opts):
    from gadbench.worlds.persona_teacher import from_spec

    return from_spec(arg, **opts)


register_teacher(Backend(
    "openai", _openai, lambda cfg, cache_path: {"api_key_env": cfg.api_key_env, "concurrency": cfg.concurrency,
                                                "timeout": cfg.timeout, "max_retries": cfg.max_retries,
                                                "cache_path": cache_path},
    "any OpenAI-compatible endpoint, asked once per prompt (cached, retried)"))
register_teacher(Backend("hf", _hf, lambda cfg, cache_path: {"batch_size": cfg.concurrency},
                         "a local transformers chat model (concurrency = prompts per batch)"))
register_teacher(Backend("dataset", _dataset, about="responses shipped with the data"))
register_teacher(Backend("program", _program, about="the synthetic world's programmatic teacher"))
register_teacher(Backend(
    "persona", _persona, lambda cfg, cache_path: {
        "batch_size": cfg.concurrency,
        "cache_path": cache_path.with_name("persona-teacher.jsonl") if cache_path is not None else None},
    "a local chat model under a hidden persona drawn per prompt (gadbench.worlds.persona; draws cached in "
    "persona-teacher.jsonl); it answers every prompt, the data's own responses are not its",
    answers_every_prompt=True))

__all__ = ["BACKENDS", "Backend", "Teacher", "TeacherError", "make_teacher", "register_teacher", "teacher_from",
           "unknown_teacher"]
