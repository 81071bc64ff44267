"""Chat through any OpenAI-compatible server: vLLM (``vllm serve MODEL --enable-lora``), ``transformers serve``,
or a hosted API.

Transient failures (connection errors, timeouts, 429, 5xx) are retried with tenacity: exponential backoff with
jitter, bounded both in attempts and in total time. Anything else surfaces at once as a :class:`ModelError` that
names the endpoint and the cause. A LoRA adapter is selected by passing its name as the model (vLLM's convention).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from .._import_utils import require
from ..errors import ModelError, ModelUnavailableError
from .base import ChatResult, Completion, GenerationConfig, Message, as_messages, resolve_config

__all__ = ["OpenAIChatModel", "RetryConfig"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True, frozen=True)
class RetryConfig:
    """Bounded retries for transient server failures."""

    max_attempts: int = field(default=5, metadata={"help": "Attempts per request, the first one included."})
    max_seconds: float = field(default=60.0, metadata={"help": "Give up once this much time has passed."})
    initial_wait: float = field(default=0.5, metadata={"help": "Base of the exponential backoff, in seconds."})
    max_wait: float = field(default=8.0, metadata={"help": "Cap on one wait between attempts, in seconds."})
    request_timeout: float = field(default=120.0, metadata={"help": "Timeout of one HTTP request, in seconds."})

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_wait < 0 or self.max_wait < self.initial_wait:
            raise ValueError(f"need 0 <= initial_wait <= max_wait, got {self.initial_wait} and {self.max_wait}")


def _is_transient(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, openai.APIConnectionError | openai.APITimeoutError | openai.RateLimitError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in (408, 409, 429)
    return False


class OpenAIChatModel:
    """A :class:`~miaflow.llm.base.ChatModel` over the OpenAI chat-completions API."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        retry: RetryConfig | None = None,
        system_prompt: str | None = None,
    ):
        require("openai")
        import openai

        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryConfig()
        self.system_prompt = system_prompt
        # Retries are ours (tenacity), so the SDK's own are off.
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
            max_retries=0,
            timeout=self.retry.request_timeout,
        )
        self._model = model
        self.calls = 0
        self.retries = 0

    @property
    def model(self) -> str:
        """The served model's name; asked from ``/models`` when not given."""
        if self._model is None:
            models = self._with_retries(lambda: self.client.models.list())
            ids = [m.id for m in models.data]
            if not ids:
                raise ModelError(f"the server at {self.base_url} lists no models", endpoint=self.base_url)
            self._model = ids[0]
        return self._model

    @property
    def name(self) -> str:
        return self.model

    def chat(self, messages: list[Message] | str, config: GenerationConfig | None = None, **overrides: Any) -> ChatResult:
        cfg = resolve_config(config, overrides)
        msgs = as_messages(messages, self.system_prompt)
        model = cfg.adapter or self.model
        t0 = time.perf_counter()
        completions: list[Completion] = []
        prompt_tokens = 0
        # Some servers ignore n > 1; ask again for what is missing.
        for _ in range(cfg.n):
            need = cfg.n - len(completions)
            if need <= 0:
                break
            kwargs: dict[str, Any] = dict(model=model, messages=msgs, max_tokens=cfg.max_tokens,
                                          temperature=cfg.temperature, top_p=cfg.top_p)
            if need > 1:
                kwargs["n"] = need
            if cfg.stop:
                kwargs["stop"] = list(cfg.stop)
            if cfg.seed is not None:
                kwargs["seed"] = cfg.seed
            if cfg.min_tokens:
                kwargs["extra_body"] = {"min_tokens": cfg.min_tokens}  # vLLM's sampling parameter
            resp = self._with_retries(lambda kw=kwargs: self.client.chat.completions.create(**kw))
            usage = getattr(resp, "usage", None)
            prompt_tokens = max(prompt_tokens, int(getattr(usage, "prompt_tokens", 0) or 0))
            per_choice = int(getattr(usage, "completion_tokens", 0) or 0) // max(1, len(resp.choices))
            for choice in resp.choices[:need]:
                text = (choice.message.content or "").strip()
                completions.append(Completion(text=text, completion_tokens=per_choice or len(text.split()),
                                              finish_reason=choice.finish_reason or "stop"))
        return ChatResult(completions=completions, prompt_tokens=prompt_tokens, model=self.model, adapter=cfg.adapter,
                          seconds=time.perf_counter() - t0)

    def _with_retries(self, call: Any) -> Any:
        import openai
        from tenacity import (
            RetryError,
            Retrying,
            retry_if_exception,
            stop_after_attempt,
            stop_after_delay,
            wait_random_exponential,
        )

        r = self.retry
        retrying = Retrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(r.max_attempts) | stop_after_delay(r.max_seconds),
            wait=wait_random_exponential(multiplier=r.initial_wait, max=r.max_wait),
            before_sleep=self._count_retry,
            reraise=False,
        )
        try:
            self.calls += 1
            return retrying(call)
        except RetryError as err:
            cause = err.last_attempt.exception()
            raise ModelUnavailableError(
                f"model server at {self.base_url} failed after {err.last_attempt.attempt_number} attempt(s): "
                f"{_describe(cause)}. Is the server running and reachable?",
                endpoint=self.base_url, status=getattr(cause, "status_code", None),
            ) from cause
        except openai.APIStatusError as err:
            raise ModelError(
                f"model server at {self.base_url} rejected the request (HTTP {err.status_code}): {_describe(err)}",
                endpoint=self.base_url, status=err.status_code,
            ) from err
        except openai.OpenAIError as err:
            raise ModelError(f"model call to {self.base_url} failed: {_describe(err)}", endpoint=self.base_url) from err

    def _count_retry(self, state: Any) -> None:
        self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        log.warning("retrying %s after %s (attempt %d)", self.base_url, _describe(exc), state.attempt_number)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    status = getattr(exc, "status_code", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {text[:300]}"
