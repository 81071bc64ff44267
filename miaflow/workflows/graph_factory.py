"""Module-level graph factory for LangGraph's own tools (``langgraph.json`` points here: ``langgraph dev`` and
LangGraph Studio open the research graph through it).

Configured by environment variables, since those tools call the factory with no arguments:
``MIAFLOW_MODEL`` (default ``local``: the bundled model), ``MIAFLOW_CORPUS`` (default: the shipped HotpotQA sample)
and ``MIAFLOW_MEMORY`` (a trajectory-memory folder; unset: no memory). The server supplies its own checkpointer.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["make_graph", "make_workflow"]


def make_workflow(model: Any = None, corpus: Any = None, memory: str | None = None) -> Any:
    """A :class:`~miaflow.workflows.ResearchWorkflow` from arguments or the ``MIAFLOW_*`` variables."""
    from ..llm import load_chat_model
    from .research import ResearchWorkflow

    if model is None or isinstance(model, str):
        model = load_chat_model(model or os.environ.get("MIAFLOW_MODEL", "local"))
    if corpus is None:
        corpus = os.environ.get("MIAFLOW_CORPUS")
        if not corpus:
            from ..tools.sample import sample_corpus_path

            corpus = sample_corpus_path()
    memory = memory or os.environ.get("MIAFLOW_MEMORY")
    store = None
    if memory:
        from ..memory import TrajectoryStore

        store = TrajectoryStore(memory)
    return ResearchWorkflow(planner=model, index=corpus, store=store)


def make_graph() -> Any:
    """The compiled research graph (input: ``{"question": ..., "gold": optional}``)."""
    return make_workflow().graph
