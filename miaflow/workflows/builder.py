"""The builder API: assemble a research workflow from parts, swapping any role.

>>> from miaflow.testing import FakeChatModel
>>> wf = (ResearchBuilder()
...       .planner(lambda question, memories: ["Search for " + question])
...       .executor(lambda question, steps: "42")
...       .build())
>>> wf.run("What is the answer?").answer
'42'

Roles take a chat model (the stock agent is built around it), an agent object, or a plain function (see
:mod:`miaflow.agents.roles`). ``add_tool`` adds a search tool next to the corpus index; ``add_node`` inserts a
user's node (``fn(state) -> partial update``; put its own data under ``"extra"``) after a stock node.
``graph()`` gives the uncompiled LangGraph ``StateGraph`` to compose with other graphs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ..agents.executor import Tool
from .research import ResearchWorkflow, build_research_graph
from .state import ResearchConfig

__all__ = ["ResearchBuilder"]


class ResearchBuilder:
    """Fluent builder of a :class:`ResearchWorkflow`. Every method returns the builder."""

    def __init__(self, model: Any = None):
        self._roles: dict[str, Any] = {"planner": model, "executor": None, "judge": None}
        self._index: Any = None
        self._store: Any = None
        self._conversation: Any = None
        self._config = ResearchConfig()
        self._checkpointer: Any = None
        self._tools: list[Tool] = []
        self._nodes: list[tuple[str, Callable, str]] = []
        self._compress: Any = None

    def planner(self, role: Any) -> ResearchBuilder:
        """A chat model, a planner object, or ``fn(question, memories) -> plan text | steps``."""
        self._roles["planner"] = role
        return self

    def executor(self, role: Any) -> ResearchBuilder:
        """A chat model (e.g. an OpenAI-compatible API model), an executor object, or ``fn(question, steps)``."""
        self._roles["executor"] = role
        return self

    def judge(self, role: Any) -> ResearchBuilder:
        """A chat model, a judge object, or ``fn(question, answer, gold) -> label | Judgement``."""
        self._roles["judge"] = role
        return self

    def corpus(self, index_or_path: Any) -> ResearchBuilder:
        self._index = index_or_path
        return self

    def memory(self, store: Any = None, conversation_memory: Any = None, compress_model: Any = None
               ) -> ResearchBuilder:
        """A TrajectoryStore, a BiMemory, and an optional model for MIA-style compression."""
        self._store, self._conversation, self._compress = store, conversation_memory, compress_model
        return self

    def config(self, config: ResearchConfig | None = None, **changes: Any) -> ResearchBuilder:
        """Replace the config, or change some of its top-level fields."""
        self._config = replace(config or self._config, **changes)
        return self

    def checkpointer(self, spec: Any) -> ResearchBuilder:
        """A path to a SQLite file, ``"memory"``, or a LangGraph checkpointer."""
        self._checkpointer = spec
        return self

    def add_tool(self, name: str, fn: Callable[[str, int], Sequence[Any]]) -> ResearchBuilder:
        """A search tool ``fn(query, k) -> hits`` (objects with doc_id, title, text) searched at each step."""
        self._tools.append(Tool(name, fn))
        return self

    def add_node(self, name: str, fn: Callable[[dict[str, Any]], dict[str, Any]], *, after: str = "judge"
                 ) -> ResearchBuilder:
        """Insert ``fn`` after the stock node ``after`` (recall, plan, execute, replan, execute_replan, judge,
        remember)."""
        self._nodes.append((name, fn, after))
        return self

    def build(self) -> ResearchWorkflow:
        return ResearchWorkflow(planner=self._roles["planner"], executor=self._roles["executor"], index=self._index,
                                store=self._store, conversation_memory=self._conversation,
                                judge=self._roles["judge"], config=self._config, checkpointer=self._checkpointer,
                                tools=self._tools, extra_nodes=self._nodes, compress_model=self._compress)

    def graph(self) -> Any:
        """The uncompiled ``StateGraph`` of the workflow, to extend or compose before compiling."""
        wf = self.build()
        return build_research_graph(wf.nodes, extra_nodes=self._nodes)
