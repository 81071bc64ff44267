"""``miaflow mcp`` talked to by the MCP SDK's own client: over stdio in a subprocess (memory tools, tool errors,
and research with the real bundled model on the shipped sample), over streamable HTTP on a free port, and in
process with a scripted model for the progress notifications."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from serve_helpers import free_port, miaflow_cmd, readme_snippet, start_server

TOOLS = {"research", "recall", "remember", "add_messages", "retrieve"}


def _params(*args: str) -> StdioServerParameters:
    cmd = miaflow_cmd("mcp", *args)
    return StdioServerParameters(command=cmd[0], args=cmd[1:], env=dict(os.environ))


def _data(result) -> dict:  # noqa: ANN001
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def _memory_round_trip(session: ClientSession) -> None:
    stored = _data(await session.call_tool("remember", {
        "question": "Which city hosted the first Tinted Windows concert?", "answer": "Tulsa",
        "judgement": "correct", "reward": 1.0, "plan": "1. Search the band\n2. Answer",
        "steps": ["search Tinted Windows band -> Tulsa"], "evidence_ids": ["Tinted Windows (band)"]}))
    recalled = _data(await session.call_tool("recall", {"question": "Where did Tinted Windows first perform?"}))
    assert [m["id"] for m in recalled["memories"]] == [stored["id"]]
    assert recalled["memories"][0]["answer"] == "Tulsa" and recalled["memories"][0]["judgement"] == "correct"

    added = _data(await session.call_tool("add_messages", {"conversation_id": "c1", "messages": [
        {"speaker": "Ann", "text": "I adopted a grey cat called Miso last week.", "time": "3 May 2024"},
        {"speaker": "Bob", "text": "Nice! I am training for the Berlin marathon."}]}))
    assert added == {"conversation_id": "c1", "added": 2, "total_turns": 2}
    items = _data(await session.call_tool("retrieve", {"query": "What is the name of Ann's cat?",
                                                        "conversation_id": "c1", "k": 3}))["items"]
    assert items and "Miso" in items[0]["text"] and items[0]["conversation_id"] == "c1"


async def _tool_errors(session: ClientSession, corpus: Path) -> None:
    bad = await session.call_tool("retrieve", {"query": "cats", "conversation_id": "no-such-conversation"})
    assert bad.is_error and "unknown conversation 'no-such-conversation'" in bad.content[0].text
    outside = await session.call_tool("research", {"question": "Who?", "corpus": "/no/such/corpus"})
    assert outside.is_error and "outside the folders this server may read" in outside.content[0].text
    missing = await session.call_tool("research", {"question": "Who?", "corpus": str(corpus / "no-such-part")})
    assert missing.is_error and "corpus not found" in missing.content[0].text
    empty = await session.call_tool("research", {"question": "   "})
    assert empty.is_error and "the question is empty" in empty.content[0].text
    invalid = await session.call_tool("recall", {"question": "x", "k": 0})
    assert invalid.is_error and "greater than or equal to 1" in invalid.content[0].text
    for r in (bad, outside, missing, empty, invalid):
        assert "Traceback" not in r.content[0].text


def test_memory_tools_and_errors_over_stdio(tmp_path: Path, tiny_corpus: Path) -> None:
    async def main() -> None:
        async with stdio_client(_params("--state", str(tmp_path / "state"), "--corpus", str(tiny_corpus))) as (r, w):
            async with ClientSession(r, w) as session:
                await session.initialize()
                tools = {t.name: t for t in (await session.list_tools()).tools}
                assert set(tools) == TOOLS
                props = tools["research"].input_schema["properties"]
                assert props["question"]["type"] == "string" and props["question"]["description"]
                assert tools["research"].input_schema["required"] == ["question"]
                assert tools["add_messages"].input_schema["properties"]["messages"]["type"] == "array"
                assert tools["research"].output_schema["properties"]["citations"]["type"] == "array"
                await _memory_round_trip(session)
                await _tool_errors(session, tiny_corpus)

    anyio.run(main)
    assert (tmp_path / "state" / "trajectories").is_dir() and (tmp_path / "state" / "conversations").is_dir()


def test_research_progress_in_process(fake_agent) -> None:  # noqa: ANN001
    from mcp.client import Client

    from miaflow.serve import build_mcp_server

    progress: list[tuple[float, str | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, message))

    async def main() -> dict:
        async with Client(build_mcp_server(fake_agent)) as client:
            res = await client.call_tool("research", {"question": "Where was Tinted Windows' first performance?"},
                                         progress_callback=on_progress)
            return _data(res)

    out = anyio.run(main)
    assert out["answer"] == "Tulsa" and out["citations"] == ["tinted_band.txt"]
    assert out["text"] == "Tulsa [tinted_band.txt]" and out["judgement"] == "correct" and out["memory_id"]
    assert out["prompt_tokens"] > 0
    steps = [p for p, _ in progress]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # MCP: progress must increase
    messages = [m or "" for _, m in progress]
    assert any(m.startswith("plan:") for m in messages) and any(m.startswith("search:") for m in messages)
    assert any(m.startswith("answer: Tulsa") for m in messages)


def test_memory_over_streamable_http(tmp_path: Path) -> None:
    from mcp.client.streamable_http import streamable_http_client

    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    with start_server(["mcp", "--port", str(port), "--state", str(tmp_path / "state")], url):
        async def main() -> None:
            async with streamable_http_client(url) as (r, w):
                async with ClientSession(r, w) as session:
                    await session.initialize()
                    assert {t.name for t in (await session.list_tools()).tools} == TOOLS
                    await _memory_round_trip(session)
                    bad = await session.call_tool("retrieve", {"query": "x", "conversation_id": "nope"})
                    assert bad.is_error and "unknown conversation" in bad.content[0].text

        anyio.run(main)


def _corpus_ids() -> set[str]:
    from miaflow.tools.sample import sample_corpus_path

    return {json.loads(line)["id"] for line in sample_corpus_path().read_text(encoding="utf-8").splitlines()}


@pytest.mark.slow
def test_research_over_stdio_with_bundled_model(tmp_path: Path) -> None:
    """The real path, through README's MCP client snippet run as written: the SDK's client starts `miaflow mcp`
    over stdio, and the bundled model researches a question of the shipped sample with memory on."""
    script = tmp_path / "client.py"
    script.write_text(readme_snippet("mcp-client"), encoding="utf-8")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    progress = [ln for ln in lines if ln.startswith(("memory:", "plan:", "search:", "answer:", "judge:"))]
    assert progress[0].startswith("memory:") and any(ln.startswith("search:") for ln in progress)
    assert any(ln.startswith("judge:") for ln in progress)  # every progress notification reached the client
    answer_line = lines[-1]
    assert set(re.findall(r"\[([^\]]+)\]", answer_line)) <= _corpus_ids()

    from miaflow.memory import TrajectoryStore

    with TrajectoryStore(tmp_path / "memories" / "trajectories") as store:  # the run was remembered
        records = list(store.iter_records())
    assert len(records) == 1 and records[0].question == "Which city did the band Tinted Windows first perform in?"
    assert answer_line.startswith(records[0].answer or "(no answer)")
