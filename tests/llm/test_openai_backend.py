"""The OpenAI-compatible backend: a real `transformers serve`, and faults from scripted loopback servers."""

from __future__ import annotations

import time

import pytest

from miaflow.errors import ModelError, ModelUnavailableError
from miaflow.llm import OpenAIChatModel, RetryConfig

FAST = RetryConfig(max_attempts=4, max_seconds=10, initial_wait=0.01, max_wait=0.05, request_timeout=5)


@pytest.mark.slow
def test_real_openai_compatible_server(transformers_server):
    llm = OpenAIChatModel(transformers_server)
    assert llm.model  # asked from /v1/models
    res = llm.chat("What is the capital of France? Answer in one word.", max_tokens=16)
    assert res.text.strip()
    assert len(res.completions) == 1
    res2 = llm.chat("Name a color.", n=2, temperature=0.8, max_tokens=8)
    assert len(res2.completions) == 2


def test_server_down_gives_clear_error_in_bounded_time():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{free_port}/v1"
    llm = OpenAIChatModel(url, "m", retry=FAST)
    t0 = time.time()
    with pytest.raises(ModelUnavailableError) as err:
        llm.chat("hi")
    assert time.time() - t0 < 30
    assert url in str(err.value)
    assert err.value.is_retryable()


def test_503_twice_then_200_is_retried_to_success(scripted_server):
    server = scripted_server([503, 503, 200])
    llm = OpenAIChatModel(server.url, "m", retry=FAST)
    res = llm.chat("hi")
    assert res.text == "scripted answer"
    assert len(server.requests) == 3
    assert llm.retries == 2


def test_400_is_not_retried(scripted_server):
    server = scripted_server([400, 200])
    llm = OpenAIChatModel(server.url, "m", retry=FAST)
    with pytest.raises(ModelError) as err:
        llm.chat("hi")
    assert not isinstance(err.value, ModelUnavailableError)
    assert err.value.status == 400
    assert server.url in str(err.value)
    assert len(server.requests) == 1


def test_retries_exhausted_names_the_endpoint(scripted_server):
    server = scripted_server([500] * 10)
    llm = OpenAIChatModel(server.url, "m", retry=FAST)
    with pytest.raises(ModelUnavailableError, match="after 4 attempt"):
        llm.chat("hi")
    assert len(server.requests) == 4


def test_adapter_is_selected_by_model_name(scripted_server):
    server = scripted_server([200])
    llm = OpenAIChatModel(server.url, "base-model", retry=FAST)
    llm.chat("hi", adapter="planner-v3")
    assert server.requests[0]["model"] == "planner-v3"


def test_retry_after_header_forms():
    from email.utils import formatdate
    from types import SimpleNamespace

    from miaflow.llm.openai_backend import retry_after

    def exc(**headers):
        return SimpleNamespace(response=SimpleNamespace(headers=headers))

    assert retry_after(exc(**{"retry-after": "3"})) == 3.0
    assert retry_after(exc(**{"retry-after-ms": "250"})) == 0.25
    assert 8 <= retry_after(exc(**{"retry-after": formatdate(time.time() + 10, usegmt=True)})) <= 10
    assert retry_after(exc(**{"retry-after": "soon"})) is None and retry_after(ValueError("x")) is None


def test_request_timeout_never_exceeds_what_is_left_of_the_budget(scripted_server):
    server = scripted_server([200])
    llm = OpenAIChatModel(server.url, "m", retry=RetryConfig(max_seconds=5, request_timeout=120))
    seen = []
    llm._with_retries(lambda timeout: seen.append(timeout))
    assert 0 < seen[0] <= 5
