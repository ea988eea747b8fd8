"""The `dataset` teacher: responses that ship with the data (e.g. a released teacher-response set)."""

from __future__ import annotations

from collections.abc import Iterable


class DatasetTeacher:
    """Looks each prompt up in `responses`; a prompt without a non-empty response is an error."""

    def __init__(self, responses: dict[str, str]):
        self.responses = responses

    def respond(self, prompts: list[str]) -> list[str]:
        for i, p in enumerate(prompts):
            if not self.responses.get(p):
                raise ValueError(f"the data has no teacher response for prompt {i} ({p[:60]!r}); use a dataset "
                                 f"that ships responses, or collect them with an openai or hf teacher.")
        return [self.responses[p] for p in prompts]


def from_spec(arg: str, *, examples: Iterable = ()) -> DatasetTeacher:
    """`dataset`, with `examples`: dicts or objects that have `prompt` and `teacher_response`."""
    if arg:
        raise ValueError(f"the dataset teacher takes no argument (got 'dataset:{arg}'); write the spec as dataset.")
    responses = {}
    for ex in examples:
        if isinstance(ex, dict):
            responses[ex.get("prompt")] = ex.get("teacher_response")
        else:
            responses[ex.prompt] = getattr(ex, "teacher_response", None)
    return DatasetTeacher(responses)
