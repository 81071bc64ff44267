"""The README's Python blocks run as written, each in a fresh folder holding the files they name (``docs/``,
``questions.jsonl``), with the scripted fake model standing in for the bundled one (``LocalChatModel``).

A block is left out only when README says why in an HTML comment just above it:

- ``<!-- snippet: NAME -->``: a client of a server; tests/serve starts that server and runs the block there (this
  test checks that some test under tests/serve reads the snippet);
- ``<!-- readme-test: skip (REASON) -->``: needs something no test here can start (a GPU server);
- ``<!-- readme-test: real model -->``: runs with the real bundled model (it uses what the fake has not:
  LoRA adapters), so it is a ``slow`` test.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import miaflow
import miaflow.llm
from miaflow.testing import FakeChatModel

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_MARK = re.compile(r"<!--\s*(snippet:\s*[\w-]+|readme-test:[^>]*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    line: int
    code: str
    mark: str  # "" (run with the fake model), "snippet: NAME", "readme-test: ..."

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for m in _BLOCK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = [s for s in text[: m.start()].splitlines() if s.strip()][-1:]
        mark = _MARK.search(before[0]) if before else None
        blocks.append(Block(line, m.group(1), mark.group(1) if mark else ""))
    return blocks


BLOCKS = readme_blocks()


def _reply(messages, cfg) -> str:
    """Plans for the planner, a cited answer for the executor, 'no' to everything else (judge, reflect)."""
    text = messages[-1]["content"]
    if "numbered list" in text:
        return "1. Search for Tinted Windows first performance\n2. Answer from the documents"
    if "Documents:" in text:
        return "Tulsa [tinted.md]"
    return "no"


def _fake_local_model(*_args, **_kwargs) -> FakeChatModel:
    return FakeChatModel(_reply, name="fake-local")


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """The files README's blocks name, in a fresh working folder."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tinted.md").write_text("# Tinted Windows (band)\nTinted Windows was an American supergroup. "
                                    "Their first performance was in Tulsa, Oklahoma.\n", encoding="utf-8")
    (docs / "paris.md").write_text("# Paris\nParis is the capital and largest city of France.\n", encoding="utf-8")
    (docs / "nile.md").write_text("# Nile\nThe Nile is a major river in northeastern Africa.\n", encoding="utf-8")
    questions = [("Which city did Tinted Windows first perform in?", "Tulsa"),
                 ("What is the capital of France?", "Paris"),
                 ("Which continent does the Nile flow through?", "Africa"),
                 ("Where was the first Tinted Windows show?", "Tulsa"),
                 ("Which city is the capital of France?", "Paris"),
                 ("Where is the Nile?", "Africa")]
    with (tmp_path / "questions.jsonl").open("w", encoding="utf-8") as f:
        for i, (q, a) in enumerate(questions):
            f.write(json.dumps({"id": f"q{i}", "question": q, "answer": a}) + "\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(block: Block) -> None:
    code = compile(block.code, block.id, "exec")
    exec(code, {"__name__": "__readme__"})


def test_readme_blocks_found():
    assert len(BLOCKS) >= 8
    assert sum(1 for b in BLOCKS if not b.mark) >= 5, "most blocks must run here, with the fake model"
    for b in BLOCKS:
        assert b.mark == "" or b.mark.startswith("snippet:") or b.mark in ("readme-test: real model",) or \
            re.fullmatch(r"readme-test: skip \(.+\)", b.mark), f"{b.id}: unknown mark {b.mark!r}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mark.startswith("snippet:")], ids=lambda b: b.id)
def test_server_client_blocks_run_in_tests_serve(block):
    name = block.mark.split(":", 1)[1].strip()
    users = [p for p in (ROOT / "tests" / "serve").glob("test_*.py")
             if f'readme_snippet("{name}")' in p.read_text(encoding="utf-8")]
    assert users, f"{block.id}: no test under tests/serve runs the snippet {name!r}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if not b.mark], ids=lambda b: b.id)
def test_block_runs_with_the_fake_model(block, workspace, monkeypatch):
    # the package namespaces hold the fake in place of the bundled model; lazily exported names are looked up
    # there first, so `from miaflow.llm import LocalChatModel` and code inside miaflow both get it
    for module in (miaflow, miaflow.llm):
        monkeypatch.setitem(vars(module), "LocalChatModel", _fake_local_model)
    _run(block)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mark.startswith("readme-test: skip")], ids=lambda b: b.id)
def test_skipped_blocks(block):
    pytest.skip(f"{block.id}: {block.mark.removeprefix('readme-test: skip').strip()[1:-1]}")


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in BLOCKS if b.mark == "readme-test: real model"], ids=lambda b: b.id)
def test_block_runs_with_the_real_model(block, workspace):
    _run(block)
