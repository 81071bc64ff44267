"""A flaky, hanging, rate-limiting or malformed model server: every failure is a ModelError that names the
endpoint and the true attempt count, within one time budget that the graph's RetryPolicy does not multiply."""

from __future__ import annotations

import time

import pytest
from _model_server import FaultServer

from miaflow.errors import ModelError, ModelUnavailableError
from miaflow.llm import OpenAIChatModel, RetryConfig

pytestmark = pytest.mark.faults


def fast(**kw) -> RetryConfig:
    return RetryConfig(**{"max_attempts": 5, "max_seconds": 10, "initial_wait": 0.01, "max_wait": 0.05, **kw})


def test_default_budget_fails_a_hung_server_within_60_s():
    cfg = RetryConfig()
    assert cfg.max_seconds == 60 and cfg.request_timeout <= cfg.max_seconds


def test_hung_server_fails_within_the_budget_with_true_attempt_count():
    with FaultServer(["hang"]) as srv:
        llm = OpenAIChatModel(srv.url, "m", retry=fast(max_seconds=3, request_timeout=60))
        t0 = time.monotonic()
        with pytest.raises(ModelUnavailableError) as err:
            llm.chat("hi")
        spent = time.monotonic() - t0
    assert spent < 5, f"a 3 s budget took {spent:.1f} s"
    msg = str(err.value)
    assert srv.url in msg and err.value.endpoint == srv.url
    assert f"after {srv.requests} attempt(s)" in msg
    assert getattr(err.value, "exhausted", False)


def test_flaky_server_is_retried_to_success():
    with FaultServer([503, "drop", 502, "ok"]) as srv:
        llm = OpenAIChatModel(srv.url, "m", retry=fast())
        assert llm.chat("hi").text == "fine"
        assert srv.requests == 4 and llm.retries == 3


def test_retry_after_is_honoured():
    with FaultServer([(429, {"Retry-After": "1"}), "ok"]) as srv:
        llm = OpenAIChatModel(srv.url, "m", retry=fast())
        t0 = time.monotonic()
        assert llm.chat("hi").text == "fine"
        assert time.monotonic() - t0 >= 0.95  # the backoff alone would wait at most 0.05 s


def test_retry_after_beyond_the_budget_gives_up_at_once():
    with FaultServer([(429, {"Retry-After": "120"})]) as srv:
        llm = OpenAIChatModel(srv.url, "m", retry=fast(max_seconds=5))
        t0 = time.monotonic()
        with pytest.raises(ModelUnavailableError, match="retry after 120 s, beyond the time budget"):
            llm.chat("hi")
        assert time.monotonic() - t0 < 2 and srv.requests == 1


@pytest.mark.parametrize("reply", ["notjson", "nochoices"])
def test_malformed_200_reply_is_a_model_error_naming_the_endpoint(reply):
    with FaultServer([reply]) as srv:
        llm = OpenAIChatModel(srv.url, "m", retry=fast())
        with pytest.raises(ModelError) as err:
            llm.chat("hi")
    assert srv.url in str(err.value) and err.value.endpoint == srv.url
    assert not isinstance(err.value, ModelUnavailableError)


def test_graph_retry_policy_does_not_multiply_the_budget():
    """A LangGraph node with the research graph's RetryPolicy: the client's attempts are all the server sees."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    from miaflow.workflows.research import _retry
    from miaflow.workflows.state import ResearchConfig

    class S(TypedDict, total=False):
        out: str

    with FaultServer([500]) as srv:
        llm = OpenAIChatModel(srv.url, "m", retry=fast(max_attempts=2))
        g = StateGraph(S)
        g.add_node("call", lambda s: {"out": llm.chat("hi").text}, retry_policy=_retry(ResearchConfig()))
        g.add_edge(START, "call")
        g.add_edge("call", END)
        with pytest.raises(ModelUnavailableError):
            g.compile().invoke({})
        assert srv.requests == 2  # not 2 x ResearchConfig.retry_attempts


def test_research_run_against_a_hung_server_fails_within_the_budget(tiny_index):
    from miaflow.workflows import ResearchWorkflow

    with FaultServer(["hang"]) as srv:
        llm = OpenAIChatModel(srv.url, "m", retry=fast(max_seconds=2))
        wf = ResearchWorkflow(planner=llm, index=tiny_index)
        t0 = time.monotonic()
        with pytest.raises(ModelUnavailableError) as err:
            wf.run("Where did the band first perform?")
        assert time.monotonic() - t0 < 6
    assert srv.url in str(err.value)
