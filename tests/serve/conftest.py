"""Fixtures of the server tests: a tiny corpus and an agent on a scripted model for the fast in-process tests.
Shared helpers live in ``_helpers.py`` (imported as ``serve_helpers``)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

_spec = importlib.util.spec_from_file_location("serve_helpers", Path(__file__).parent / "_helpers.py")
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)
sys.modules.setdefault("serve_helpers", helpers)


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    for name, text in helpers.DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def fake_agent(tiny_corpus: Path, tmp_path: Path):
    from miaflow.serve import AgentConfig, ResearchAgent
    from miaflow.testing import FakeChatModel

    agent = ResearchAgent(AgentConfig(corpus=str(tiny_corpus), state=str(tmp_path / "state")),
                          model=FakeChatModel(helpers.scripted, name="scripted"))
    yield agent
    agent.close()


