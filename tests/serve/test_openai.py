"""``miaflow serve`` asked by the ``openai`` client: in process with a scripted model (fast), and as a real server
in a subprocess on a free port with the bundled model on the shipped sample (slow), non-streaming and streaming,
plus bad requests and README's client snippet."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx
import openai
import pytest
from serve_helpers import SAMPLE_QUESTION, free_port, readme_snippet, start_server

MODEL = "miaflow-research"
QUESTION = "Where was Tinted Windows' first performance?"


@pytest.fixture
def fake_client(fake_agent):  # noqa: ANN001
    """The app in process (Starlette's TestClient is an httpx client), the scripted model behind it."""
    from fastapi.testclient import TestClient

    from miaflow.serve import build_openai_app

    with TestClient(build_openai_app(fake_agent)) as http:
        yield openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0)


def _check_bad_requests(client: openai.OpenAI) -> None:
    cases = [
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": QUESTION}]}, "unknown model 'gpt-4o'", "model"),
        ({"model": MODEL, "messages": []}, "'messages' is empty", "messages"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "  "}]}, "the question is empty", "messages"),
        ({"model": MODEL, "messages": [{"role": "system", "content": "Be brief."}]}, "no user message", "messages"),
    ]
    for body, message, param in cases:
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(**body)
        assert err.value.status_code == 400
        assert message in err.value.body["message"] and err.value.body["param"] == param
        assert err.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as err:  # not even the shape of a request
        client.post("/chat/completions", body={"messages": "hello"}, cast_to=httpx.Response)
    assert err.value.body["type"] == "invalid_request_error" and err.value.body["param"] == "model"


def test_chat_completion_in_process(fake_client: openai.OpenAI) -> None:
    assert [m.id for m in fake_client.models.list()] == [MODEL]
    res = fake_client.chat.completions.create(model=MODEL, messages=[
        {"role": "system", "content": "You are a researcher."},
        {"role": "user", "content": [{"type": "text", "text": QUESTION}]}])
    assert res.object == "chat.completion" and res.model == MODEL
    assert res.choices[0].message.content == "Tulsa [tinted_band.txt]" and res.choices[0].finish_reason == "stop"
    assert res.usage.prompt_tokens > 0 and res.usage.total_tokens == res.usage.prompt_tokens + res.usage.completion_tokens
    extra = res.model_extra["miaflow"]
    assert extra["citations"] == ["tinted_band.txt"] and extra["judgement"] == "correct" and extra["memory_id"]


def test_streaming_in_process(fake_client: openai.OpenAI) -> None:
    chunks = list(fake_client.chat.completions.create(model=MODEL, stream=True, stream_options={"include_usage": True},
                                                      messages=[{"role": "user", "content": QUESTION}]))
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    assert len({c.id for c in chunks}) == 1
    texts = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    content = "".join(texts)
    assert content.index("plan:") < content.index("search:") < content.index("judge:")
    assert content.endswith("\nTulsa [tinted_band.txt]")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens > 0  # the include_usage chunk


def test_bad_requests_in_process(fake_client: openai.OpenAI) -> None:
    _check_bad_requests(fake_client)


def test_progress_as_reasoning(fake_agent) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from miaflow.serve import build_openai_app

    with TestClient(build_openai_app(fake_agent, progress="reasoning")) as http:
        with http.stream("POST", "/v1/chat/completions", json={
                "model": MODEL, "stream": True, "messages": [{"role": "user", "content": QUESTION}]}) as r:
            lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    deltas = [json.loads(ln[6:])["choices"][0]["delta"] for ln in lines[:-1]]
    assert "".join(d.get("content", "") for d in deltas) == "Tulsa [tinted_band.txt]"
    assert "search:" in "".join(d.get("reasoning_content", "") for d in deltas)


def _corpus_ids() -> set[str]:
    from miaflow.tools.sample import sample_corpus_path

    return {json.loads(line)["id"] for line in sample_corpus_path().read_text(encoding="utf-8").splitlines()}


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory):
    """`miaflow serve` with the bundled model on the shipped sample, memory on, in a subprocess on a free port."""
    port = free_port()
    state = tmp_path_factory.mktemp("serve-state")
    with start_server(["serve", "--port", str(port), "--state", str(state)], f"http://127.0.0.1:{port}/v1/models"):
        yield port, state


@pytest.mark.slow
def test_real_server_answers(real_server) -> None:  # noqa: ANN001
    port, state = real_server
    corpus_ids = _corpus_ids()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=900)
    _check_bad_requests(client)

    res = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": SAMPLE_QUESTION}])
    extra = res.model_extra["miaflow"]
    content = res.choices[0].message.content
    assert content.startswith(extra["answer"] or "(no answer)") and set(extra["citations"]) <= corpus_ids
    assert all(f"[{c}]" in content for c in extra["citations"])
    assert res.usage.prompt_tokens > 0 and res.usage.completion_tokens > 0 and extra["model_calls"] >= 3
    assert extra["memory_id"] and (state / "trajectories").is_dir()  # remembered


@pytest.mark.slow
def test_readme_openai_snippet(real_server) -> None:  # noqa: ANN001
    port, _ = real_server
    code = readme_snippet("openai-client")
    assert "127.0.0.1:8080" in code
    out = subprocess.run([sys.executable, "-c", code.replace("127.0.0.1:8080", f"127.0.0.1:{port}")],
                         capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()  # streamed: progress lines first, then the answer with its citations
    assert lines[0].startswith("memory:") and any(ln.startswith("search:") for ln in lines)
    assert any(ln.startswith("judge:") for ln in lines)
    assert set(re.findall(r"\[([^\]]+)\]", lines[-1])) <= _corpus_ids()



@pytest.mark.parametrize(("command", "option", "message"), [
    ("serve", "--corpus", "corpus not found"), ("mcp", "--model", "unknown model")])
def test_cli_rejects_bad_options_without_traceback(command: str, option: str, message: str, tmp_path) -> None:  # noqa: ANN001
    from serve_helpers import miaflow_cmd

    out = subprocess.run(miaflow_cmd(command, "--state", str(tmp_path / "state"), option, str(tmp_path / "missing")),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr + out.stdout
    assert "Traceback" not in out.stderr
