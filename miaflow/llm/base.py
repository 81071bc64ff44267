"""The chat-model protocol every backend implements.

A request is a list of chat messages plus sampling settings; a result holds ``n`` completions with token counts.
Backends: :class:`~miaflow.llm.local.LocalChatModel` (transformers + PEFT, the embedded default) and
:class:`~miaflow.llm.openai_backend.OpenAIChatModel` (vLLM or any OpenAI-compatible server).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["Message", "GenerationConfig", "Completion", "ChatResult", "ChatModel", "as_messages"]

Message = dict[str, str]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""


@dataclass(kw_only=True, frozen=True, slots=True)
class GenerationConfig:
    """Sampling settings shared by all backends."""

    n: int = 1
    """Number of completions to sample for the same messages."""
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    max_tokens: int = 256
    min_tokens: int = 0
    """Generate at least this many tokens before an end of turn may stop it (for benchmarks of equal length)."""
    stop: tuple[str, ...] = ()
    """Generation stops at the first of these strings (which is cut from the text)."""
    seed: int | None = None
    adapter: str | None = None
    """Name of a LoRA adapter to use; None means the base model."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(kw_only=True, frozen=True, slots=True)
class Completion:
    """One sampled completion."""

    text: str
    completion_tokens: int
    finish_reason: str = "stop"
    """'stop' (end of turn or a stop string) or 'length' (max_tokens reached)."""


@dataclass(kw_only=True, frozen=True, slots=True)
class ChatResult:
    """All completions of one request with token counts and wall time."""

    completions: list[Completion]
    prompt_tokens: int
    model: str
    adapter: str | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The first completion's text (the usual case, n=1)."""
        return self.completions[0].text

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.completions]

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.completions)


@runtime_checkable
class ChatModel(Protocol):
    """Anything that can answer chat messages. ``name`` identifies the model in provenance records."""

    name: str

    def chat(self, messages: list[Message] | str, config: GenerationConfig | None = None, **overrides) -> ChatResult:
        """Complete ``messages`` (or a single user prompt string). ``overrides`` replace config fields."""
        ...


def as_messages(messages: list[Message] | str, system: str | None = None) -> list[Message]:
    """Accept a bare prompt string or a message list; optionally prepend a system message."""
    if isinstance(messages, str):
        out: list[Message] = [{"role": "user", "content": messages}]
    else:
        out = [dict(m) for m in messages]
    if system and (not out or out[0].get("role") != "system"):
        out.insert(0, {"role": "system", "content": system})
    return out


def resolve_config(config: GenerationConfig | None, overrides: dict) -> GenerationConfig:
    """Merge keyword overrides into a config (stop given as a list is turned into a tuple)."""
    from dataclasses import replace

    config = config or GenerationConfig()
    if "stop" in overrides and overrides["stop"] is not None:
        overrides = {**overrides, "stop": tuple(overrides["stop"])}
    overrides = {k: v for k, v in overrides.items() if v is not None or k in ("seed", "adapter")}
    return replace(config, **overrides) if overrides else config
