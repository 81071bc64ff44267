"""miaflow: self-evolving deep-research agents.

LangGraph workflows with a Manager / Planner / Executor trio over search tools, a trajectory memory with learned
utilities, Bi-Mem conversation memory, and online GRPO on LoRA adapters. ``import miaflow`` is light: torch,
transformers, trl and chromadb load only when the names that need them are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    CorpusError,
    InvalidInputError,
    MemoryStoreError,
    MiaflowError,
    MissingDependencyError,
    ModelError,
    ModelUnavailableError,
    PlanError,
    ToolError,
)

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    # model layer
    "ChatModel": "miaflow.llm.base",
    "ChatResult": "miaflow.llm.base",
    "GenerationConfig": "miaflow.llm.base",
    "LocalChatModel": "miaflow.llm.local",
    "OpenAIChatModel": "miaflow.llm.openai_backend",
    "RetryConfig": "miaflow.llm.openai_backend",
    "load_chat_model": "miaflow.llm._factory",
    "prepare_bundled_model": "miaflow.llm.bundled",
    # embeddings
    "Embedder": "miaflow.memory.embeddings",
    "default_embedder": "miaflow.memory.embeddings",
    # testing
    "FakeChatModel": "miaflow.testing",
}

__all__ = [
    "__version__",
    "MiaflowError",
    "InvalidInputError",
    "ModelError",
    "ModelUnavailableError",
    "ToolError",
    "CorpusError",
    "PlanError",
    "MemoryStoreError",
    "MissingDependencyError",
    *_LAZY,
]

if TYPE_CHECKING:
    from .llm._factory import load_chat_model
    from .llm.base import ChatModel, ChatResult, GenerationConfig
    from .llm.bundled import prepare_bundled_model
    from .llm.local import LocalChatModel
    from .llm.openai_backend import OpenAIChatModel, RetryConfig
    from .memory.embeddings import Embedder, default_embedder
    from .testing import FakeChatModel


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'miaflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
