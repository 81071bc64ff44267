"""The LLM layer: one chat-model protocol, a local transformers backend (the embedded default) and an
OpenAI-compatible backend (vLLM or any compatible server), plus lenient structured-output parsing.
"""

from __future__ import annotations

from .._lazy import lazy_exports

__all__ = [
    "ChatModel",
    "ChatResult",
    "Completion",
    "GenerationConfig",
    "LocalChatModel",
    "OpenAIChatModel",
    "RetryConfig",
    "load_chat_model",
    "prepare_bundled_model",
    "extract_json",
    "parse_as",
    "parse_numbered_list",
    "PARSE_STATS",
]

_LAZY = {
    "ChatModel": ".base",
    "ChatResult": ".base",
    "Completion": ".base",
    "GenerationConfig": ".base",
    "LocalChatModel": ".local",
    "OpenAIChatModel": ".openai_backend",
    "RetryConfig": ".openai_backend",
    "load_chat_model": "._factory",
    "prepare_bundled_model": ".bundled",
    "extract_json": ".structured",
    "parse_as": ".structured",
    "parse_numbered_list": ".structured",
    "PARSE_STATS": ".structured",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
