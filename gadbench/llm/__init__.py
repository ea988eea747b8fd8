"""LLM API access shared by teachers and judges: an OpenAI-compatible chat client with cache and retries."""

from gadbench.llm.client import ChatClient, ChatRequest, ChatResult, FatalAPIError, Usage

__all__ = ["ChatClient", "ChatRequest", "ChatResult", "FatalAPIError", "Usage"]
