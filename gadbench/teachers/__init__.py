"""Black-box teachers: `make_teacher("openai:MODEL[@URL]" | "hf:PATH" | "dataset", **opts).respond(prompts)`.

Backends import lazily, so `import gadbench.teachers` needs neither torch nor openai.
"""

from gadbench.teachers.base import Teacher, TeacherError, make_teacher, register_teacher


def _openai(arg: str, **opts):
    from gadbench.teachers.api import from_spec

    return from_spec(arg, **opts)


def _hf(arg: str, **opts):
    from gadbench.teachers.hf import from_spec

    return from_spec(arg, **opts)


def _dataset(arg: str, **opts):
    from gadbench.teachers.dataset import from_spec

    return from_spec(arg, **opts)


register_teacher("openai", _openai)
register_teacher("hf", _hf)
register_teacher("dataset", _dataset)

__all__ = ["Teacher", "TeacherError", "make_teacher", "register_teacher"]
