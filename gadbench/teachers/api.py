"""The `openai` teacher: any OpenAI-compatible chat endpoint, through ChatClient (cache, retries, cost)."""

from __future__ import annotations

from gadbench.llm import ChatClient, ChatRequest, Usage
from gadbench.teachers.base import TeacherError


class OpenAITeacher:
    """Asks `model` once per prompt (one user turn, after an optional system prompt).

    temperature defaults to 1.0, the teacher's own distribution; `client_opts` go to ChatClient
    (cache_path, concurrency, api_key_env, price_per_mtok, ...).
    """

    def __init__(self, model: str, base_url: str | None = None, *, system_prompt: str | None = None,
                 temperature: float = 1.0, max_tokens: int | None = None, seed: int | None = None, **client_opts):
        self.client = ChatClient(model, base_url, **client_opts)
        self.system_prompt = system_prompt
        self.temperature, self.max_tokens, self.seed = temperature, max_tokens, seed

    @property
    def usage(self) -> Usage:
        return self.client.usage

    def respond(self, prompts: list[str]) -> list[str]:
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        requests = [ChatRequest(head + [{"role": "user", "content": p}], self.temperature, self.max_tokens, self.seed)
                    for p in prompts]
        results = self.client.run(requests, desc="teacher")
        failed = [r for r in results if r.error is not None]
        if failed:
            kept = "are cached" if self.client.cache is not None else "were not cached (no cache_path)"
            raise TeacherError(f"{len(failed)} of {len(prompts)} teacher requests failed after retries "
                               f"({failed[0].error}); rerun to retry them, the other answers {kept}.")
        return [r.text for r in results]


def from_spec(arg: str, **opts) -> OpenAITeacher:
    """`openai:MODEL` or `openai:MODEL@BASE_URL`."""
    model, _, base_url = arg.partition("@")
    if not model:
        raise ValueError("the openai teacher needs a model: write the spec as openai:MODEL or openai:MODEL@BASE_URL.")
    return OpenAITeacher(model, base_url or None, **opts)
