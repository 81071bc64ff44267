"""miaflow as an MCP server (the official ``mcp`` SDK's ``MCPServer``): the research agent and both memories as
tools any MCP client can call.

Tools: ``research`` (a question over a corpus, with a progress notification per step of the run), ``recall`` /
``remember`` (the trajectory memory) and ``add_messages`` / ``retrieve`` (Bi-Mem conversation memory). Inputs are
typed with descriptions, so clients see a JSON schema per tool; outputs are pydantic models (structured content
plus its JSON as text). A miaflow error becomes a tool error carrying its message (``is_error=True``), never a
traceback. Tools run in worker threads, so a long research run does not block the others.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from ..errors import MiaflowError
from ._agent import ResearchAgent, answer_text, progress_line

__all__ = ["build_mcp_server", "ResearchAnswer", "RecalledMemory", "RecallAnswer", "Remembered", "ChatMessage",
           "MessagesAdded", "RetrievedItem", "RetrieveAnswer"]

INSTRUCTIONS = (
    "miaflow: a deep-research agent over a local corpus with learned memories. Call `research` to answer a "
    "question with [doc_id] citations; `recall` / `remember` read and write the trajectory memory of past runs; "
    "`add_messages` / `retrieve` store conversations and retrieve facts, scenes and personas from them."
)


class ResearchAnswer(BaseModel):
    """What ``research`` returns."""

    text: str = Field(description="The answer followed by its [doc_id] citations.")
    answer: str = Field(description="The answer alone.")
    citations: list[str] = Field(description="Ids of the corpus documents the answer cites.")
    judgement: str = Field(description="The judge's verdict: correct, incorrect or unknown.")
    score: float = Field(description="The judge's confidence score.")
    plan: str = Field(description="The planner's plan.")
    memory_id: str | None = Field(description="Id of the run in the trajectory memory (None when not stored).")
    prompt_tokens: int = Field(description="Prompt tokens over all model calls.")
    completion_tokens: int = Field(description="Completion tokens over all model calls.")
    seconds: float = Field(description="Wall time of the run.")


class RecalledMemory(BaseModel):
    """One memory ``recall`` selected."""

    id: str
    question: str
    answer: str
    plan: str
    summary: str = Field(description="The run's steps, compressed.")
    judgement: str = Field(description="correct (an example to follow), incorrect (to avoid) or unknown.")
    q_value: float = Field(description="Learned utility in [-1, 1].")
    similarity: float = Field(description="Cosine similarity of its question to the query.")


class RecallAnswer(BaseModel):
    memories: list[RecalledMemory] = Field(description="Selected memories, best first.")
    best_similarity: float | None = Field(description="Highest similarity seen (None: the memory is empty).")


class Remembered(BaseModel):
    id: str = Field(description="Id of the stored memory (an existing id when a near-duplicate was kept).")
    task_id: str


class ChatMessage(BaseModel):
    """One conversation turn."""

    speaker: str = Field(description="Who said it (a name or a role such as 'user').", min_length=1)
    text: str = Field(description="What was said.")
    time: str = Field(default="", description="When, free text (e.g. '8 May 2023'); optional.")
    id: str | None = Field(default=None, description="Turn id; default m<position>.")
    session: int = Field(default=0, description="Session number within the conversation.")


class MessagesAdded(BaseModel):
    conversation_id: str
    added: int = Field(description="Turns added.")
    total_turns: int = Field(description="Turns in the conversation now.")


class RetrievedItem(BaseModel):
    text: str
    level: str = Field(description="fact, scene or persona.")
    score: float
    conversation_id: str
    speaker: str
    time: str
    turn_ids: list[str] = Field(description="The turns this item brings into the context.")


class RetrieveAnswer(BaseModel):
    items: list[RetrievedItem]


@contextmanager
def _tool_errors() -> Iterator[None]:
    """miaflow errors (bad input, missing corpus, memory problems) -> MCP tool errors with their message."""
    try:
        yield
    except MiaflowError as e:
        raise ToolError(f"{type(e).__name__}: {e}") from None


def build_mcp_server(agent: ResearchAgent, *, name: str = "miaflow") -> MCPServer:
    """An ``MCPServer`` whose tools use ``agent`` (its model, workflows and memories are built on first use)."""
    server = MCPServer(name, instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(title="Research a question")
    async def research(
        question: Annotated[str, Field(description="The question to research.", min_length=1)],
        ctx: Context,
        corpus: Annotated[str | None, Field(description="Corpus path on the server (folder of .txt/.md, JSONL, or "
                                                        "HotpotQA/MuSiQue data) inside the server's corpus roots "
                                                        "(--corpus-root); default: the server's corpus.")
                          ] = None,
    ) -> ResearchAnswer:
        """Answer a question over a local corpus with citations: recall memories, plan, search and read, answer,
        judge, remember. Sends a progress notification per step (plan, searches, answer, judgement)."""

        def work() -> Any:
            step = 0
            for mode, chunk in agent.stream(question, corpus):
                if mode == "result":
                    return chunk
                line = progress_line(mode, chunk)
                if line is not None:
                    step += 1
                    anyio.from_thread.run(ctx.report_progress, step, None, line)
            return None

        with _tool_errors():
            res = await anyio.to_thread.run_sync(work)
        return ResearchAnswer(text=answer_text(res), answer=res.answer, citations=list(res.citations),
                              judgement=res.judgement, score=res.score, plan=res.plan, memory_id=res.memory_id,
                              prompt_tokens=res.tokens["prompt"], completion_tokens=res.tokens["completion"],
                              seconds=round(res.timings["total"], 3))

    @server.tool(title="Recall past research runs")
    def recall(
        question: Annotated[str, Field(description="A question; memories of similar past runs come back.",
                                       min_length=1)],
        k: Annotated[int, Field(description="How many memories at most.", ge=1, le=50)] = 5,
        namespace: Annotated[str | None, Field(description="Memory namespace (default: 'default').")] = None,
    ) -> RecallAnswer:
        """Memories of past runs on similar questions (MemRL recall: similarity, then learned utility), correct
        ones as examples to follow and incorrect ones as examples to avoid."""
        with _tool_errors():
            store = agent.trajectories
            rec = store.recall(question, namespace=namespace, k1=max(k, store.config.k1), k2=k, epsilon=0.0)
        return RecallAnswer(best_similarity=rec.best_similarity, memories=[
            RecalledMemory(id=m.record.id, question=m.record.question, answer=m.record.answer, plan=m.record.plan,
                           summary=m.record.summary, judgement=m.record.judgement, q_value=m.record.q_value,
                           similarity=m.similarity) for m in rec.all])

    @server.tool(title="Remember a research run")
    def remember(
        question: Annotated[str, Field(description="The question that was answered.", min_length=1)],
        answer: Annotated[str, Field(description="The final answer.")],
        judgement: Annotated[Literal["correct", "incorrect", "unknown"],
                             Field(description="Whether the answer was right.")] = "unknown",
        reward: Annotated[float, Field(description="Reward in [-1, 1].", ge=-1.0, le=1.0)] = 0.0,
        plan: Annotated[str, Field(description="The plan that was followed.")] = "",
        steps: Annotated[list[str], Field(description="What was done, one line per step.")] = [],  # noqa: B006
        evidence_ids: Annotated[list[str], Field(description="Ids of the documents read.")] = [],  # noqa: B006
        task_id: Annotated[str | None, Field(description="Task id (default: a new one).")] = None,
        namespace: Annotated[str | None, Field(description="Memory namespace (default: 'default').")] = None,
    ) -> Remembered:
        """Store a finished run (compressed) in the trajectory memory, where later runs can recall it."""
        from ..memory import Trajectory

        with _tool_errors():
            tid = task_id or f"t-{uuid.uuid4().hex[:12]}"
            traj = Trajectory(task_id=tid, question=question, plan=plan, steps=steps, evidence_ids=evidence_ids,
                              answer=answer, judgement=judgement, reward=reward, model="mcp-client")
            mem_id = agent.trajectories.add(traj, namespace=namespace)
        return Remembered(id=mem_id, task_id=tid)

    @server.tool(title="Add conversation messages")
    def add_messages(
        conversation_id: Annotated[str, Field(description="The conversation to add to (created if new).",
                                              min_length=1)],
        messages: Annotated[list[ChatMessage], Field(description="Turns in order.", min_length=1)],
    ) -> MessagesAdded:
        """Add turns to a conversation in Bi-Mem: facts are stored, scenes and personas rebuilt."""
        with _tool_errors():
            mem = agent.conversations
            added = mem.add_messages(conversation_id, [m.model_dump(exclude_none=True) for m in messages])
            total = len(mem.turns(conversation_id))
        return MessagesAdded(conversation_id=conversation_id, added=added, total_turns=total)

    @server.tool(title="Retrieve from conversations")
    def retrieve(
        query: Annotated[str, Field(description="What to look for.", min_length=1)],
        conversation_id: Annotated[str | None, Field(description="One conversation (default: all).")] = None,
        k: Annotated[int, Field(description="How many items.", ge=1, le=100)] = 10,
        mode: Annotated[Literal["flat", "top_down", "bottom_up", "graph"],
                        Field(description="Retrieval mode; graph spreads activation over facts, scenes and "
                                          "personas.")] = "graph",
    ) -> RetrieveAnswer:
        """The facts, scenes and personas of stored conversations that best answer ``query``."""
        with _tool_errors():
            items = agent.conversations.retrieve(query, conversation_id, k=k, mode=mode)
        return RetrieveAnswer(items=[
            RetrievedItem(text=it.text, level=it.level, score=float(it.score), conversation_id=it.conversation_id,
                          speaker=it.speaker, time=it.time, turn_ids=list(it.turn_ids)) for it in items])

    return server
