"""The deep-research workflow on LangGraph: recall -> plan -> execute -> reflect (-> replan -> execute_replan)
-> judge -> remember, and its group twin for GRPO: recall -> plan_group -> n x rollout (``Send``) -> vote.

LangGraph does the work it is good at: a checkpointer (``SqliteSaver`` for a path) makes a run killed mid-way
resume by thread id without redoing finished nodes; ``RetryPolicy`` retries model-calling nodes on retryable
errors; ``Send`` fans out the n sampled plans; ``stream_mode`` ``updates`` / ``custom`` feed live progress.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..agents.executor import Tool
from ..agents.manager import Manager
from ..agents.roles import as_executor, as_judge, as_planner, is_chat_model
from ..errors import CorpusError, InvalidInputError, MiaflowError
from .nodes import ResearchNodes
from .state import ResearchConfig, ResearchResult, ResearchState

__all__ = ["ResearchWorkflow", "build_research_graph", "build_group_graph", "retryable", "open_index",
           "INSERTABLE_AFTER"]

INSERTABLE_AFTER = ("recall", "plan", "execute", "replan", "execute_replan", "judge", "remember")
"""Nodes after which users' own nodes can be inserted (their single successor moves after the new node)."""

_MODEL_NODES = ("plan", "execute", "reflect", "replan", "execute_replan", "judge")


def retryable(exc: Exception) -> bool:
    """Retry policy predicate: retryable miaflow errors (server down, rate limits) and connection errors. A model
    error whose client already spent its time budget is not retried again (that would multiply the budget)."""
    if getattr(exc, "exhausted", False):
        return False
    if isinstance(exc, MiaflowError):
        return exc.is_retryable()
    return isinstance(exc, ConnectionError | TimeoutError)


def _retry(config: ResearchConfig) -> Any:
    from langgraph.types import RetryPolicy

    return RetryPolicy(max_attempts=config.retry_attempts, initial_interval=0.5, retry_on=retryable)


def build_research_graph(nodes: ResearchNodes, *, extra_nodes: Sequence[tuple[str, Callable, str]] = ()) -> Any:
    """The uncompiled single-run ``StateGraph`` (compile it, or add your own nodes and edges first)."""
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(ResearchState)
    policy = _retry(nodes.config)
    for name in ("recall", "plan", "execute", "reflect", "replan", "execute_replan", "judge", "remember"):
        g.add_node(name, getattr(nodes, name), retry_policy=policy if name in _MODEL_NODES else None)
    succ: dict[str, str] = {"recall": "plan", "plan": "execute", "execute": "reflect", "replan": "execute_replan",
                            "execute_replan": "judge", "judge": "remember", "remember": END}
    for name, fn, after in extra_nodes:
        if after not in succ:
            raise InvalidInputError(f"cannot insert node {name!r} after {after!r}: choose one of "
                                    f"{', '.join(succ)}")
        g.add_node(name, fn)
        succ[name], succ[after] = succ[after], name
    g.add_edge(START, "recall")
    for a, b in succ.items():
        g.add_edge(a, b)
    g.add_conditional_edges("reflect", nodes.route_after_reflect, {"replan": "replan", "judge": "judge"})
    return g


def build_group_graph(nodes: ResearchNodes) -> Any:
    """The uncompiled group ``StateGraph``: n plans sampled in one call, each executed by a ``Send``."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    g = StateGraph(ResearchState)
    policy = _retry(nodes.config)
    g.add_node("recall", nodes.recall)
    g.add_node("plan_group", nodes.plan_group, retry_policy=policy)
    g.add_node("rollout", nodes.rollout, retry_policy=policy)
    g.add_node("vote", nodes.vote)

    def fan_out(state: ResearchState) -> list[Any]:
        base = {"question": state["question"], "gold": state.get("gold"), "task_id": state.get("task_id"),
                "memories": state.get("memories", {})}  # each plan's executor uses the recalled cases
        return [Send("rollout", {**base, "current_plan": p, "index": i}) for i, p in enumerate(state["plans"])]

    g.add_edge(START, "recall")
    g.add_edge("recall", "plan_group")
    g.add_conditional_edges("plan_group", fan_out, ["rollout"])
    g.add_edge("rollout", "vote")
    g.add_edge("vote", END)
    return g


def open_index(index: Any) -> Any:
    """An index object as is; a corpus path opened as a ``CorpusIndex`` (missing path -> CorpusError)."""
    if index is None or not isinstance(index, str | Path):
        return index
    path = Path(index).expanduser()
    if not path.exists():
        raise CorpusError(f"corpus not found: {path}. Pass a folder of .txt/.md files or a JSONL file.")
    from ..tools import CorpusIndex

    return CorpusIndex.open(path)


class ResearchWorkflow:
    """A ready-to-run research workflow. Roles may be chat models, agent objects or plain functions."""

    def __init__(self, planner: Any, executor: Any = None, index: Any = None, store: Any = None,
                 conversation_memory: Any = None, judge: Any = None, config: ResearchConfig | None = None,
                 checkpointer: Any = None, *, tools: Sequence[Tool] = (),
                 extra_nodes: Sequence[tuple[str, Callable, str]] = (), compress_model: Any = None):
        from ._checkpoint import open_checkpointer

        self.config = config or ResearchConfig()
        self.index = open_index(index)
        executor = planner if executor is None and is_chat_model(planner) else executor
        if executor is None:
            raise InvalidInputError("an executor is needed when the planner is not a chat model")
        if is_chat_model(executor) and self.index is None and not tools:
            raise CorpusError("no corpus: pass index=CorpusIndex or a corpus path (or search tools)")
        self.planner = as_planner(planner, self.config.planner)
        self.executor = as_executor(executor, self.index, self.config.executor, tools)
        judge_model = planner if is_chat_model(planner) else (executor if is_chat_model(executor) else None)
        self.judge = as_judge(judge, judge_model, self.config.judge)
        self.manager = Manager(store, conversation_memory, compress_model=compress_model, config=self.config.manager)
        self.nodes = ResearchNodes(planner=self.planner, executor=self.executor, judge=self.judge,
                                   manager=self.manager, config=self.config)
        self.checkpointer = open_checkpointer(checkpointer)
        self.builder = build_research_graph(self.nodes, extra_nodes=extra_nodes)
        self.graph = self.builder.compile(checkpointer=self.checkpointer)
        self.group_graph = build_group_graph(self.nodes).compile(checkpointer=self.checkpointer)

    @property
    def store(self) -> Any:
        return self.manager.store

    @property
    def model_name(self) -> str:
        return self.nodes.model_name

    # ---- running ------------------------------------------------------------------------------------------------
    def _input(self, question: str, gold: Any, task_id: str | None, user_id: str | None,
               conversation_id: str | None, remember: bool) -> dict[str, Any]:
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError("the question is empty: pass a non-empty question string")
        return {"question": question.strip(), "gold": gold, "task_id": task_id or f"t-{uuid.uuid4().hex[:12]}",
                "user_id": user_id, "conversation_id": conversation_id, "remember_run": remember,
                "replan_plan": None, "replan_decision": False}

    def _thread(self, graph: Any, inp: dict[str, Any], thread_id: str | None) -> tuple[Any, dict[str, Any]]:
        """(input or None to resume, run config). A pending run of the same question on the thread resumes."""
        cfg: dict[str, Any] = {"configurable": {"thread_id": thread_id or inp["task_id"]}}
        if self.checkpointer is not None and thread_id is not None:
            snap = graph.get_state(cfg)
            if snap.next and snap.values.get("question") == inp["question"]:
                return None, cfg
        if self.checkpointer is not None:  # a thread that ran before keeps its values: start the summed ones afresh
            from langgraph.types import Overwrite

            inp = {**inp, "rollouts": Overwrite([]), "usage": Overwrite({}), "timings": Overwrite({})}
        return inp, cfg

    def run(self, question: str, gold: Any = None, task_id: str | None = None, thread_id: str | None = None,
            user_id: str | None = None, *, conversation_id: str | None = None, remember: bool = True
            ) -> ResearchResult:
        """Answer one question. With a checkpointer and ``thread_id``, a crashed run of it resumes."""
        inp = self._input(question, gold, task_id, user_id, conversation_id, remember)
        payload, cfg = self._thread(self.graph, inp, thread_id)
        t0 = time.perf_counter()
        values = self.graph.invoke(payload, cfg)
        return self._result(values, time.perf_counter() - t0)

    def stream(self, question: str, gold: Any = None, task_id: str | None = None, thread_id: str | None = None,
               user_id: str | None = None, *, conversation_id: str | None = None, remember: bool = True
               ) -> Iterator[tuple[str, Any]]:
        """Yield ``("updates", {node: update})`` and ``("custom", event)`` while running, then ``("result", res)``."""
        inp = self._input(question, gold, task_id, user_id, conversation_id, remember)
        payload, cfg = self._thread(self.graph, inp, thread_id)
        t0 = time.perf_counter()
        values: dict[str, Any] = {}
        for mode, chunk in self.graph.stream(payload, cfg, stream_mode=["updates", "custom", "values"]):
            if mode == "values":
                values = chunk
            else:
                yield mode, chunk
        yield "result", self._result(values, time.perf_counter() - t0)

    def run_group(self, question: str, n: int = 4, gold: Any = None, task_id: str | None = None,
                  thread_id: str | None = None, user_id: str | None = None) -> list[ResearchResult]:
        """Sample ``n`` plans in one call and run each; results in plan order. Nothing is remembered."""
        if n < 1:
            raise InvalidInputError(f"n must be >= 1, got {n}")
        inp = {**self._input(question, gold, task_id, user_id, None, False), "n_plans": n}
        payload, cfg = self._thread(self.group_graph, inp, thread_id)
        t0 = time.perf_counter()
        values = self.group_graph.invoke(payload, cfg)
        wall = time.perf_counter() - t0
        out = []
        for r in values.get("group", []):
            state = {**values, "current_plan": r["plan"], "first": r["first"], "final": r["final"],
                     "replan_plan": r["replan"], "replan_decision": r["replan_decision"],
                     "judgement": r["judgement"], "first_judgement": r["first_judgement"],
                     "usage": r["usage"], "timings": {"rollout": r["seconds"]}}
            out.append(self._result(state, wall))
        return out

    def remember(self, result: ResearchResult) -> str | None:
        """Write a result into memory by the same path as the graph's ``remember`` node: the trajectory store, the
        used memories' Q-values, and the conversation memory of the result's user. Returns the kept memory id."""
        return self.nodes.remember_result(result)

    def draw_mermaid(self) -> str:
        """The graph as a mermaid diagram (LangGraph's ``draw_mermaid``)."""
        return self.graph.get_graph().draw_mermaid()

    # ---- results --------------------------------------------------------------------------------------------
    def _result(self, v: dict[str, Any], wall: float) -> ResearchResult:
        return self.nodes.result(v, wall)
