"""The research agent behind an OpenAI-compatible HTTP API (FastAPI): ``POST /v1/chat/completions`` and
``GET /v1/models``, so any OpenAI client can ask it.

The last user message is the question and the messages before it are the conversation: its recent turns are
the planner's conversation context (so a follow-up can say "they"), and with memory on the conversation is kept
in Bi-Mem (each turn once, however often the client resends it), which adds what it retrieves from older turns.
A conversation is named by the request's ``conversation_id`` (an extra body field) or ``metadata.conversation_id``,
else by its first user message; ``user`` is the user id. System messages are not used (the agent's prompts are
fixed). The reply's content is the answer followed by its ``[doc_id]`` citations, and ``usage`` counts the tokens
of every model call the run made. With ``stream=true`` the reply is
server-sent ``chat.completion.chunk`` events: one line per step of the run (plan, searches, answer, judgement),
then the answer, then ``data: [DONE]``. Progress goes into ``content`` by default, or into ``reasoning_content``
(the field reasoning models stream their thinking in) so that the streamed content equals the non-streamed one.
Bad requests get a 400 in OpenAI's error shape. Sampling parameters are accepted and ignored.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..errors import CorpusError, InvalidInputError, MiaflowError, ModelUnavailableError
from ._agent import ResearchAgent, answer_text, progress_line
from ._conversation import Turn, conversation_id_of

__all__ = ["build_openai_app", "ChatCompletionRequest", "DEFAULT_MODEL_ID", "ProgressMode"]

DEFAULT_MODEL_ID = "miaflow-research"
ProgressMode = Literal["content", "reasoning", "none"]


class ChatCompletionRequest(BaseModel):
    """The fields of OpenAI's request that matter here; the others (temperature, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="The served model id (see GET /v1/models).")
    messages: list[dict[str, Any]] = Field(description="Chat messages; the last user message is the question.")
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    user: str | None = Field(default=None, description="The end user's id (Bi-Mem persona).")
    metadata: dict[str, Any] | None = None
    conversation_id: str | None = Field(default=None, description="Names the conversation (default: derived "
                                                                  "from its first user message).")


class _APIError(Exception):
    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def _from_miaflow(e: MiaflowError) -> _APIError:
    if isinstance(e, InvalidInputError):
        return _APIError(400, str(e))
    if isinstance(e, ModelUnavailableError):
        return _APIError(503, str(e), kind="server_error", code="model_unavailable")
    if isinstance(e, CorpusError):
        return _APIError(500, str(e), kind="server_error", code="corpus_error")
    return _APIError(500, f"{type(e).__name__}: {e}", kind="server_error")


def _text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def conversation_of(messages: list[dict[str, Any]]) -> tuple[str, list[Turn]]:
    """(the question: the last user message's text, the user and assistant turns before it), checked."""
    if not messages:
        raise _APIError(400, "'messages' is empty: send at least one user message", param="messages")
    last = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"), default=None)
    if last is None:
        raise _APIError(400, "no user message: the last message with role 'user' is the question", param="messages")
    question = _text_of(messages[last].get("content")).strip()
    if not question:
        raise _APIError(400, "the question is empty: the last user message has no text", param="messages")
    history = [Turn(speaker=m["role"], text=text) for m in messages[:last]
               if isinstance(m, dict) and m.get("role") in ("user", "assistant")
               and (text := _text_of(m.get("content")).strip())]
    return question, history


def _conversation_id(req: ChatCompletionRequest, question: str, history: list[Turn]) -> str:
    cid = req.conversation_id if req.conversation_id is not None else (req.metadata or {}).get("conversation_id")
    if cid is None:
        first = next((t.text for t in history if t.speaker == "user"), question)
        return conversation_id_of(first)
    if not isinstance(cid, str) or not cid.strip():
        raise _APIError(400, "conversation_id must be a non-empty string", param="conversation_id")
    return cid


def build_openai_app(agent: ResearchAgent, *, model_id: str = DEFAULT_MODEL_ID,
                     progress: ProgressMode = "content") -> FastAPI:
    """The FastAPI app serving ``agent`` under ``model_id``."""
    created = int(time.time())
    app = FastAPI(title="miaflow research agent", description="OpenAI-compatible chat completions.")

    @app.exception_handler(_APIError)
    async def _api_error(_: Request, e: _APIError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(_: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        first = errs[0] if errs else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return JSONResponse(_APIError(400, f"invalid request: {first.get('msg', 'bad body')} ({param})",
                                      param=param).body(), status_code=400)

    def model_card() -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": created, "owned_by": "miaflow"}

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    def get_model(name: str) -> dict[str, Any]:
        if name != model_id:
            raise _APIError(404, f"model {name!r} not found; this server serves {model_id!r}", param="model",
                            code="model_not_found")
        return model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest) -> Any:
        if req.model != model_id:
            raise _APIError(400, f"unknown model {req.model!r}; this server serves {model_id!r}", param="model",
                            code="model_not_found")
        question, history = conversation_of(req.messages)
        conversation: dict[str, Any] = {"history": history, "conversation_id": _conversation_id(req, question, history),
                        "user_id": req.user}
        try:
            await anyio.to_thread.run_sync(agent.warm)  # model and index errors surface here, before any stream
        except MiaflowError as e:
            raise _from_miaflow(e) from None
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        if req.stream:
            usage = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(_sse(agent, question, conversation, cid, model_id, progress, usage),
                                     media_type="text/event-stream")
        try:
            res = await anyio.to_thread.run_sync(lambda: agent.run(question, **conversation))
        except MiaflowError as e:
            raise _from_miaflow(e) from None
        return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model_id,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer_text(res)},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": _usage(res), "miaflow": _details(res)}

    return app


def _usage(res: Any) -> dict[str, int]:
    return {"prompt_tokens": res.tokens["prompt"], "completion_tokens": res.tokens["completion"],
            "total_tokens": res.tokens["total"]}


def _details(res: Any) -> dict[str, Any]:
    """miaflow's own figures, beside OpenAI's fields (clients expose them as extra fields)."""
    return {"answer": res.answer, "citations": list(res.citations), "judgement": res.judgement,
            "score": res.score, "memory_id": res.memory_id, "model_calls": res.tokens["calls"],
            "seconds": round(res.timings["total"], 3)}


def _events(agent: ResearchAgent, question: str, conversation: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The run's stream consumed in one worker thread (LangGraph's sync stream stays on the thread it began on),
    handed over through a queue; an error ends the stream as an ``("error", exc)`` item."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue()

    def work() -> None:
        try:
            for item in agent.stream(question, **conversation):
                q.put(item)
        except Exception as e:  # reported to the client as an error event
            q.put(("error", e))
        q.put(("end", None))

    threading.Thread(target=work, name="miaflow-research", daemon=True).start()
    while True:
        item = q.get()
        if item[0] == "end":
            return
        yield item


async def _sse(agent: ResearchAgent, question: str, conversation: dict[str, Any], cid: str, model_id: str,
               progress: ProgressMode, include_usage: bool) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model_id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    events = _events(agent, question, conversation)
    while True:
        item = await anyio.to_thread.run_sync(next, events, None)
        if item is None:
            break
        mode, data = item
        if mode == "error":
            err = _from_miaflow(data) if isinstance(data, MiaflowError) else _APIError(
                500, f"{type(data).__name__}: {data}", kind="server_error")
            yield f"data: {json.dumps(err.body())}\n\n"
            break
        if mode == "result":
            prefix = "\n" if progress == "content" else ""
            yield chunk({"content": prefix + answer_text(data)})
            yield chunk({}, "stop", miaflow=_details(data))
            if include_usage:
                body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model_id,
                        "choices": [], "usage": _usage(data)}
                yield f"data: {json.dumps(body)}\n\n"
            continue
        line = progress_line(mode, data) if progress != "none" else None
        if line is not None:
            key = "content" if progress == "content" else "reasoning_content"
            yield chunk({key: line + "\n"})
    yield "data: [DONE]\n\n"
