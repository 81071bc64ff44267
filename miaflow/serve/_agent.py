"""The research agent the servers share: one model per process, loaded on first use, one workflow (and corpus
index) per corpus, the memories under one state folder, and the requests' conversations as the workflows'
conversation memory (:mod:`miaflow.serve._conversation`).

Both servers answer many requests with the same objects, so the costly parts (the model, the corpus index, the
embedder) are built once and reused; builds are guarded by a lock because requests run in worker threads. Model
calls are serialised by the model itself (the local backend holds a lock).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ._conversation import RequestConversations, Turn

__all__ = ["AgentConfig", "ResearchAgent", "progress_line", "answer_text"]


@dataclass
class AgentConfig:
    """What the servers run: the model, the default corpus, and where the memories live."""

    model: str = field(default="local", metadata={"help": "'local' (bundled SmolLM2), a model folder, or an "
                                                          "OpenAI-compatible URL http://host:port/v1/NAME."})
    corpus: str | None = field(default=None, metadata={"help": "Default corpus (folder, JSONL or QA data); None: "
                                                               "the shipped HotpotQA sample."})
    state: str | None = field(default=None, metadata={"help": "Folder of the memories (trajectories/ and "
                                                              "conversations/); None: no memory."})
    memory: bool = field(default=True, metadata={"help": "Recall and remember research runs in the trajectory "
                                                         "store (needs state)."})
    reflect: bool = field(default=True, metadata={"help": "Reflect after the first answer and maybe replan."})
    corpus_roots: list[str] | None = field(default=None, metadata={
        "help": "Folders a request's own corpus must lie in (besides the default corpus and the shipped sample); "
                "None: any path the server can read."})

    def __post_init__(self) -> None:
        for root in self.corpus_roots or ():
            if not Path(root).expanduser().is_dir():
                raise InvalidInputError(f"corpus root {root} is not a folder")
        spec = self.model
        if not isinstance(spec, str) or not (spec in ("local", "bundled") or spec.startswith(("http://", "https://"))
                                             or Path(spec).expanduser().is_dir()):
            raise InvalidInputError(f"unknown model {spec!r}: give 'local', a model folder, or an OpenAI-compatible "
                                    "URL like http://host:8000/v1/NAME")
        if self.corpus is not None and not Path(self.corpus).expanduser().exists():
            raise InvalidInputError(f"corpus not found: {self.corpus}. Pass a folder of .txt/.md files, a JSONL file "
                                    "or HotpotQA/MuSiQue data.")


class ResearchAgent:
    """The lazily built research workflow behind the MCP and OpenAI-compatible servers.

    ``model`` may be given as an object (any chat model, e.g. ``miaflow.testing.FakeChatModel``) instead of
    the spec in ``config``.
    """

    def __init__(self, config: AgentConfig | None = None, *, model: Any = None):
        self.config = config or AgentConfig()
        self._model = model
        self._workflows: dict[str, Any] = {}
        self._trajectories: Any = None
        self._conversations: Any = None
        self._lock = threading.RLock()
        self.requests = RequestConversations(self._request_memory)
        """The conversation memory the workflows use: a request's earlier turns, with Bi-Mem behind them when
        memory is on."""

    def _request_memory(self) -> Any:
        return self.conversations if self.config.memory and self.config.state else None

    # ---- the parts, each built once -------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                from ..llm import load_chat_model

                self._model = load_chat_model(self.config.model)
            return self._model

    @property
    def model_name(self) -> str:
        return str(getattr(self._model, "name", "") or self.config.model)

    def _state_dir(self, what: str) -> Path:
        if not self.config.state:
            raise InvalidInputError(f"no memory folder: start the server with --state DIR to use {what}")
        return Path(self.config.state).expanduser()

    @property
    def trajectories(self) -> Any:
        """The trajectory store under ``state/trajectories``."""
        with self._lock:
            if self._trajectories is None:
                from ..memory import TrajectoryStore

                self._trajectories = TrajectoryStore(self._state_dir("the trajectory memory") / "trajectories")
            return self._trajectories

    @property
    def conversations(self) -> Any:
        """Bi-Mem conversation memory under ``state/conversations`` (fast mode: no model calls on ingest)."""
        with self._lock:
            if self._conversations is None:
                from ..memory.bimem import BiMemory

                self._conversations = BiMemory(self._state_dir("the conversation memory") / "conversations")
            return self._conversations

    def allowed_corpus_roots(self) -> list[Path] | None:
        """The folders (and files) a request's own corpus may lie in; None: no restriction."""
        if self.config.corpus_roots is None:
            return None
        from ..tools.sample import sample_dir

        roots = [Path(r).expanduser().resolve() for r in self.config.corpus_roots]
        roots.append(sample_dir().resolve())
        if self.config.corpus is not None:
            roots.append(Path(self.config.corpus).expanduser().resolve())
        return roots

    def corpus_key(self, corpus: str | None) -> str:
        """The resolved corpus path a request means (its own, else the server's default, else the sample).

        A request's own corpus must lie in the allowed roots (checked after resolving symlinks and ``..``, and
        before anything else, so a client cannot probe which paths exist elsewhere)."""
        if corpus is not None and not str(corpus).strip():
            corpus = None
        roots = self.allowed_corpus_roots()
        if corpus is not None and roots is not None:
            path = Path(corpus).expanduser().resolve()
            if not any(path == r or path.is_relative_to(r) for r in roots):
                raise InvalidInputError(
                    f"corpus {corpus!r} is outside the folders this server may read "
                    f"({', '.join(str(r) for r in roots)}); start the server with --corpus-root DIR to allow more")
        if corpus is None:
            corpus = self.config.corpus
        if corpus is None:
            from ..tools.sample import sample_corpus_path

            corpus = str(sample_corpus_path())
        return str(Path(corpus).expanduser().resolve())

    def workflow(self, corpus: str | None = None) -> Any:
        """The research workflow over ``corpus``; the index and the graph are built on the first request for it."""
        key = self.corpus_key(corpus)
        with self._lock:
            wf = self._workflows.get(key)
            if wf is None:
                from ..workflows import ResearchConfig, ResearchWorkflow
                from ..workflows.research import open_index

                index = open_index(key)
                store = self.trajectories if self.config.memory and self.config.state else None
                wf = ResearchWorkflow(planner=self.model, index=index, store=store,
                                      conversation_memory=self.requests,
                                      config=ResearchConfig(reflect=self.config.reflect))
                self._workflows[key] = wf
            return wf

    def warm(self, corpus: str | None = None) -> None:
        """Build the model and the default workflow now (servers call it before taking requests)."""
        self.workflow(corpus)

    # ---- running --------------------------------------------------------------------------------------------
    def stream(self, question: str, corpus: str | None = None, *, history: Sequence[Turn] = (),
               conversation_id: str | None = None, user_id: str | None = None) -> Iterator[tuple[str, Any]]:
        """The workflow's stream: ``("updates" | "custom", ...)`` while it runs, then ``("result", ResearchResult)``.

        With ``conversation_id``, ``history`` (the conversation's earlier turns) is the run's conversation context
        (and goes into Bi-Mem when memory is on), and the exchange is written back to the conversation."""
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError("the question is empty: pass a non-empty question string")
        wf = self.workflow(corpus)
        if conversation_id is None:
            yield from wf.stream(question, user_id=user_id)
            return
        self.requests.begin(conversation_id, history)
        yield from wf.stream(question, conversation_id=conversation_id, user_id=user_id)

    def run(self, question: str, corpus: str | None = None, **conversation: Any) -> Any:
        """Answer one question; returns the :class:`~miaflow.workflows.ResearchResult`."""
        result = None
        for mode, chunk in self.stream(question, corpus, **conversation):
            if mode == "result":
                result = chunk
        return result

    def close(self) -> None:
        with self._lock:
            if self._trajectories is not None:
                self._trajectories.close()


def progress_line(mode: str, chunk: Any) -> str | None:
    """One human-readable line for a custom event of the run (None for the rest: node updates, results)."""
    if mode != "custom" or not isinstance(chunk, dict):
        return None
    kind = chunk.get("event")
    if kind == "recall":
        return f"memory: {chunk.get('positive', 0)} positive, {chunk.get('negative', 0)} negative exemplars"
    if kind == "plan":
        return "plan:\n" + str(chunk.get("plan", ""))
    if kind == "search":
        return f"search: {chunk.get('query', '')}"
    if kind == "answer":
        cites = " ".join(f"[{c}]" for c in chunk.get("citations", []))
        return f"answer: {chunk.get('answer', '')} {cites}".rstrip()
    if kind == "reflect":
        return "reflection: " + ("replan" if chunk.get("replan") else "keep the answer")
    if kind == "replan":
        return "replan:\n" + str(chunk.get("plan", ""))
    if kind == "judge":
        return f"judge: {chunk.get('judgement')} ({float(chunk.get('score', 0.0)):.2f})"
    if kind == "remember":
        return f"remembered as {chunk.get('memory_id')}"
    return None


def answer_text(result: Any) -> str:
    """The answer with its citations, as both servers return it: ``answer [doc] [doc]``."""
    cites = " ".join(f"[{c}]" for c in result.citations)
    return f"{result.answer or '(no answer)'} {cites}".rstrip()
