"""LLM API access shared by teachers and judges: an OpenAI-compatible chat client with cache and retries.

The client's names load on first use, so `gadbench.llm.pricing` (a plan's cost estimate) does not import the
openai SDK.
"""

import importlib

__all__ = ["ChatClient", "ChatRequest", "ChatResult", "FatalAPIError", "Usage"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("gadbench.llm.client"), name)
    raise AttributeError(f"module 'gadbench.llm' has no attribute {name!r}")
