"""Test helpers shipped with miaflow: a scripted fake chat model for fast agent and graph tests.

The real bundled model is used in the tests that prove the real path; this fake keeps the others fast.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable

from .llm.base import ChatResult, Completion, GenerationConfig, Message, as_messages, resolve_config

__all__ = ["FakeChatModel"]

Responder = Callable[[list[Message], GenerationConfig], str]


class FakeChatModel:
    """Answers from a script: a list of replies used in turn (cycled), or a function of the messages.

    Every call is recorded in ``calls`` so tests can assert on prompts.
    """

    def __init__(self, replies: Iterable[str] | Responder = ("ok",), *, name: str = "fake", cycle: bool = True):
        self.name = name
        self._fn: Responder | None = replies if callable(replies) else None
        items = [] if callable(replies) else list(replies)
        self._replies = itertools.cycle(items) if cycle else iter(items)
        self.calls: list[tuple[list[Message], GenerationConfig]] = []
        self._lock = threading.Lock()

    def chat(self, messages: list[Message] | str, config: GenerationConfig | None = None, **overrides) -> ChatResult:
        cfg = resolve_config(config, overrides)
        msgs = as_messages(messages)
        with self._lock:
            self.calls.append((msgs, cfg))
            texts = [self._fn(msgs, cfg) if self._fn else next(self._replies) for _ in range(cfg.n)]
        for s in cfg.stop:
            texts = [t.split(s, 1)[0] for t in texts]
        comps = [Completion(text=t, completion_tokens=len(t.split())) for t in texts]
        prompt_tokens = sum(len(m["content"].split()) for m in msgs)
        return ChatResult(completions=comps, prompt_tokens=prompt_tokens, model=self.name, adapter=cfg.adapter)
