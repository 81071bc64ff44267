"""Chat through any OpenAI-compatible server: vLLM (``vllm serve MODEL --enable-lora``), ``transformers serve``,
or a hosted API.

Transient failures (connection errors, timeouts, 429, 5xx) are retried with tenacity: exponential backoff with
jitter (or the server's ``Retry-After``), bounded in attempts and by one time budget per call that every attempt's
timeout and every wait come out of, so a hung server fails within ``max_seconds``. Anything else surfaces at once as a :class:`ModelError` that
names the endpoint and the cause. A LoRA adapter is selected by passing its name as the model (vLLM's convention).

Adapter routes let a caller keep one adapter name (the workflow's ``"planner"``) while the server's adapter behind
it changes: a publisher loads ``planner-v3`` into the server and routes ``"planner"`` to it
(:meth:`OpenAIChatModel.route_adapter`); a name routed to None selects the base model.
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

__all__ = ["OpenAIChatModel", "RetryConfig", "retry_after"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True, frozen=True)
class RetryConfig:
    """Bounded retries for transient server failures, inside one time budget per call."""

    max_attempts: int = field(default=5, metadata={"help": "Attempts per request, the first one included."})
    max_seconds: float = field(default=60.0, metadata={
        "help": "Time budget of one call, every attempt and wait included: a hung or failing server fails within it."})
    initial_wait: float = field(default=0.5, metadata={"help": "Base of the exponential backoff, in seconds."})
    max_wait: float = field(default=8.0, metadata={"help": "Cap on one backoff wait between attempts, in seconds."})
    request_timeout: float = field(default=60.0, metadata={
        "help": "Timeout of one HTTP request, in seconds; never more than what is left of max_seconds."})
    honour_retry_after: bool = field(default=True, metadata={
        "help": "Wait as long as a 429/503 reply's Retry-After asks (within the budget; beyond it, give up)."})

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_wait < 0 or self.max_wait < self.initial_wait:
            raise ValueError(f"need 0 <= initial_wait <= max_wait, got {self.initial_wait} and {self.max_wait}")
        if not self.max_seconds > 0 or not self.request_timeout > 0:
            raise ValueError(f"max_seconds and request_timeout must be > 0, got {self.max_seconds} and "
                             f"{self.request_timeout}")


def _is_transient(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, openai.APIConnectionError | openai.APITimeoutError | openai.RateLimitError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in (408, 409, 429)
    return False


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds a reply's ``Retry-After`` (or ``retry-after-ms``) header asks to wait, or None."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms") is not None:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime

            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


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
        self._routes: dict[str, str | None] = {}
        self.calls = 0
        self.retries = 0

    def route_adapter(self, name: str, served: str | None) -> None:
        """Send calls that select adapter ``name`` to the server's model ``served`` (None: the base model).

        Publishers call it after loading a new version, so requests in flight keep the old one and the next ones
        take the new one; a name without a route is sent to the server as it is."""
        self._routes[name] = served

    @property
    def adapter_routes(self) -> dict[str, str | None]:
        """Adapter name -> the server's model name it selects now (None: the base model)."""
        return dict(self._routes)

    def served_model(self, adapter: str | None) -> str:
        """The model name a call with ``adapter`` asks the server for."""
        if adapter is None:
            return self.model
        if adapter in self._routes:
            return self._routes[adapter] or self.model
        return adapter

    @property
    def model(self) -> str:
        """The served model's name; asked from ``/models`` when not given."""
        if self._model is None:
            models = self._with_retries(lambda timeout: self.client.models.list(timeout=timeout))
            ids = [m.id for m in getattr(models, "data", None) or [] if getattr(m, "id", None)]
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
        model = self.served_model(cfg.adapter)
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
            resp = self._with_retries(lambda timeout, kw=kwargs: self.client.chat.completions.create(**kw,
                                                                                                      timeout=timeout))
            if not getattr(resp, "choices", None) or not all(hasattr(c, "message") for c in resp.choices):
                raise ModelError(f"model server at {self.base_url} sent a reply with no choices "
                                 f"({_preview(resp)}); is it an OpenAI-compatible chat endpoint?",
                                 endpoint=self.base_url)
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
        """Run ``call(timeout)`` with tenacity retries inside the time budget; each attempt's timeout is what is
        left of it. A budget spent raises a :class:`ModelUnavailableError` marked ``exhausted`` (callers such as
        the graph's RetryPolicy must not retry it again: that would multiply the budget)."""
        import openai
        from tenacity import RetryError, Retrying, retry_if_exception, wait_random_exponential

        r = self.retry
        t0 = time.monotonic()
        deadline = t0 + r.max_seconds
        backoff = wait_random_exponential(multiplier=r.initial_wait, max=r.max_wait)
        why: list[str] = []

        def asked(state: Any) -> float | None:
            return retry_after(state.outcome.exception()) if r.honour_retry_after else None

        def wait(state: Any) -> float:
            a = asked(state)
            return backoff(state) if a is None else a

        def stop(state: Any) -> bool:
            if state.attempt_number >= r.max_attempts:
                return True
            left = deadline - time.monotonic() - (state.upcoming_sleep or 0.0)
            if left < min(1.0, 0.05 * r.max_seconds):  # no time left for a useful attempt
                a = asked(state)
                if a is not None:
                    why.append(f"the server asked to retry after {a:g} s, beyond the time budget")
                return True
            return False

        def attempt() -> Any:
            return call(max(0.05, min(r.request_timeout, deadline - time.monotonic())))

        retrying = Retrying(retry=retry_if_exception(_is_transient), stop=stop, wait=wait,
                            before_sleep=self._count_retry, reraise=False)
        self.calls += 1
        try:
            return retrying(attempt)
        except RetryError as err:
            cause = err.last_attempt.exception()
            spent = time.monotonic() - t0
            error = ModelUnavailableError(
                f"model server at {self.base_url} failed after {err.last_attempt.attempt_number} attempt(s) in "
                f"{spent:.1f} s (budget {r.max_seconds:g} s, at most {r.max_attempts} attempts): {_describe(cause)}"
                f"{'; ' + why[0] if why else ''}. Is the server running and reachable?",
                endpoint=self.base_url, status=getattr(cause, "status_code", None),
            )
            error.exhausted = True  # type: ignore[attr-defined]
            error.attempts = err.last_attempt.attempt_number  # type: ignore[attr-defined]
            raise error from cause
        except openai.APIStatusError as err:
            raise ModelError(
                f"model server at {self.base_url} rejected the request (HTTP {err.status_code}): {_describe(err)}",
                endpoint=self.base_url, status=err.status_code,
            ) from err
        except openai.OpenAIError as err:
            raise ModelError(f"model call to {self.base_url} failed: {_describe(err)}", endpoint=self.base_url) from err
        except ValueError as err:  # a 200 reply whose body is not JSON (json.JSONDecodeError)
            raise ModelError(f"model server at {self.base_url} sent a reply that is not valid JSON "
                             f"({type(err).__name__}: {str(err)[:200]}); is it an OpenAI-compatible endpoint?",
                             endpoint=self.base_url) from err

    def _count_retry(self, state: Any) -> None:
        self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        log.warning("retrying %s after %s (attempt %d, waiting %.1f s)", self.base_url, _describe(exc),
                    state.attempt_number, state.upcoming_sleep or 0.0)


def _preview(resp: Any) -> str:
    text = resp if isinstance(resp, str) else repr(resp)
    return f"got {type(resp).__name__}: {text[:120]!r}"


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    status = getattr(exc, "status_code", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {text[:300]}"
