"""A tiny client for OpenAI-compatible chat-completion endpoints (OpenAI, vLLM, Ollama, LM Studio, ...).

Enough for examples and simple agent nodes: one POST to ``{base_url}/chat/completions``. It reads
``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` and ``OPENAI_MODEL`` from the environment of the process it
runs in; inside a remote node that is the worker's environment, so secrets stay out of the graph's
state and config (which are stored by the head).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import httpx

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"


class LLMError(RuntimeError):
    """The endpoint answered with an error, or with no message."""


@dataclass
class OpenAICompatClient:
    """``chat(messages) -> str``; ``messages`` are ``{"role", "content"}`` dicts."""

    base_url: str = field(default_factory=lambda: os.environ.get("OPENAI_BASE_URL", DEFAULT_BASE_URL))
    api_key: str | None = field(default_factory=lambda: os.environ.get("OPENAI_API_KEY"))
    model: str = field(default_factory=lambda: os.environ.get("OPENAI_MODEL", DEFAULT_MODEL))
    timeout: float = 60.0

    def chat(self, messages: list[dict[str, str]], **params: Any) -> str:
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": self.model, "messages": messages, **params}
        try:
            response = httpx.post(f"{self.base_url.rstrip('/')}/chat/completions", json=body, headers=headers,
                                  timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise LLMError(f"cannot reach {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise LLMError(f"{self.base_url} answered {response.status_code}: {response.text[:300]}")
        try:
            return response.json()["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError) as exc:
            raise LLMError(f"unexpected answer from {self.base_url}: {response.text[:300]}") from exc


def configured() -> bool:
    """Whether this process has an endpoint to talk to (a key, or a local base URL such as Ollama's)."""
    return bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))
