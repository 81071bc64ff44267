"""``research(corpus=...)`` over MCP reads only corpora inside the server's corpus roots (``--corpus-root``): paths
outside, ``..`` escapes and symlinks leading out are clear tool errors; the default corpus and the shipped sample
stay allowed."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest
from mcp.client import Client
from serve_helpers import DOCS, scripted

from miaflow.errors import InvalidInputError
from miaflow.serve import AgentConfig, ResearchAgent, build_mcp_server
from miaflow.testing import FakeChatModel


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "allowed"
    inside = root / "docs"
    outside = tmp_path / "private"
    for d in (inside, outside):
        d.mkdir(parents=True)
        for name, text in DOCS.items():
            (d / name).write_text(text, encoding="utf-8")
    (root / "link").symlink_to(outside, target_is_directory=True)
    return {"root": root, "inside": inside, "outside": outside, "link": root / "link", "tmp": tmp_path}


def _agent(layout: dict[str, Path], **kw) -> ResearchAgent:  # noqa: ANN003
    return ResearchAgent(AgentConfig(state=str(layout["tmp"] / "state"), corpus_roots=[str(layout["root"])], **kw),
                         model=FakeChatModel(scripted, name="scripted"))


def _call(agent: ResearchAgent, corpus: str):  # noqa: ANN202
    async def main():  # noqa: ANN202
        async with Client(build_mcp_server(agent)) as client:
            return await client.call_tool("research", {"question": "Where was Tinted Windows' first performance?",
                                                       "corpus": corpus})

    return anyio.run(main)


def test_research_reads_a_corpus_inside_the_roots(layout) -> None:  # noqa: ANN001
    agent = _agent(layout)
    try:
        res = _call(agent, str(layout["inside"]))
        assert not res.is_error, res.content[0].text
        assert res.structured_content["answer"] == "Tulsa"
    finally:
        agent.close()


@pytest.mark.parametrize("which", ["outside", "dotdot", "link"])
def test_research_refuses_a_corpus_outside_the_roots(layout, which) -> None:  # noqa: ANN001
    corpus = {"outside": str(layout["outside"]), "dotdot": str(layout["root"] / ".." / "private"),
              "link": str(layout["link"])}[which]
    agent = _agent(layout)
    try:
        res = _call(agent, corpus)
        text = res.content[0].text
        assert res.is_error and "outside the folders this server may read" in text and "--corpus-root" in text
        assert "Traceback" not in text
        assert agent._workflows == {}  # nothing was opened or indexed
    finally:
        agent.close()


def test_default_corpus_and_sample_stay_allowed(layout) -> None:  # noqa: ANN001
    from miaflow.tools.sample import sample_corpus_path

    default = layout["tmp"] / "served"
    shutil.copytree(layout["inside"], default)
    agent = _agent(layout, corpus=str(default))
    try:
        assert agent.corpus_key(str(default)) == str(default.resolve())
        assert agent.corpus_key(str(sample_corpus_path())) == str(sample_corpus_path().resolve())
        assert agent.corpus_key(None) == str(default.resolve())
        with pytest.raises(InvalidInputError, match="outside the folders"):
            agent.corpus_key(str(layout["outside"]))
    finally:
        agent.close()


def test_no_roots_means_no_restriction_and_bad_roots_are_refused(layout) -> None:  # noqa: ANN001
    agent = ResearchAgent(AgentConfig(state=str(layout["tmp"] / "s")), model=FakeChatModel(scripted))
    assert agent.corpus_key(str(layout["outside"])) == str(layout["outside"].resolve())
    with pytest.raises(InvalidInputError, match="corpus root .* is not a folder"):
        AgentConfig(corpus_roots=[str(layout["tmp"] / "missing")])
