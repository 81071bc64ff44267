"""The conversation an OpenAI-style request carries, as the research workflow's conversation memory.

OpenAI clients resend the whole conversation with every request. The research workflow takes its conversation
context from a conversation memory (``Manager.recall`` asks it for a conversation's items, and
``Manager.remember`` writes the exchange back), so :class:`RequestConversations` plays that part:

- ``retrieve`` gives the request's most recent earlier turns verbatim (what a follow-up such as "where did they
  first perform?" refers to), then, with Bi-Mem behind it, what Bi-Mem retrieves for the question from the whole
  stored conversation (older turns, facts, scenes);
- the earlier turns are stored in Bi-Mem under positional ids (``m0``, ``m1``, ...), and the exchange the run
  writes back gets the ids its two messages will have in the client's next request, so a conversation resent
  again and again is stored once.

Without Bi-Mem (no memory folder, or memory off) only the request's own turns are used and nothing is kept.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RequestConversations", "Turn", "conversation_id_of"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier message of the request: who said it (``user`` / ``assistant``) and its text."""

    speaker: str
    text: str


@dataclass(frozen=True, slots=True)
class _Item:
    text: str


def conversation_id_of(first_user_text: str) -> str:
    """A stable id for a conversation that names none: its first user message, hashed (the client resends it
    first in every request of the conversation)."""
    return "chat-" + hashlib.sha256(first_user_text.strip().encode("utf-8")).hexdigest()[:16]


class RequestConversations:
    """A conversation memory over the requests' own turns, with Bi-Mem (``bimem()``, built on first use) behind.

    The most recent earlier turns are shown verbatim, at most ``recent_turns`` of them and ``recent_chars``
    characters in all (each turn cut to ``max_turn_chars``; the planner's prompt keeps about 600 characters of
    context, so Bi-Mem's items keep room after them); the last ``max_conversations`` conversations seen are held
    in memory (requests run in worker threads)."""

    def __init__(self, bimem: Callable[[], Any] | None = None, *, recent_turns: int = 4, max_turn_chars: int = 200,
                 recent_chars: int = 360, max_conversations: int = 256):
        self._bimem = bimem
        self.recent_turns = recent_turns
        self.max_turn_chars = max_turn_chars
        self.recent_chars = recent_chars
        self.max_conversations = max_conversations
        self._turns: OrderedDict[str, list[Turn]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def bimem(self) -> Any:
        return self._bimem() if self._bimem is not None else None

    def begin(self, conversation_id: str, history: Sequence[Turn]) -> None:
        """Take a request's earlier turns (and store the ones Bi-Mem does not hold yet)."""
        with self._lock:
            self._turns[conversation_id] = list(history)
            self._turns.move_to_end(conversation_id)
            while len(self._turns) > self.max_conversations:
                self._turns.popitem(last=False)
        mem = self.bimem
        if mem is not None and history:
            mem.add_messages(conversation_id, [{"speaker": t.speaker, "text": t.text, "id": f"m{i}"}
                                               for i, t in enumerate(history)])

    def _history(self, conversation_id: str | None) -> list[Turn]:
        with self._lock:
            return list(self._turns.get(conversation_id or "", ()))

    # ---- the conversation-memory surface the research workflow's Manager uses --------------------------------
    def conversations(self) -> list[str]:
        with self._lock:
            ids = [c for c, turns in self._turns.items() if turns]
        mem = self.bimem
        return ids + [c for c in (mem.conversations() if mem is not None else []) if c not in ids]

    def persona(self, speaker: str, conversation_id: str | None = None) -> str:
        mem = self.bimem
        return mem.persona(speaker, conversation_id=conversation_id) if mem is not None else ""

    def retrieve(self, query: str, conversation_id: str | None = None, k: int = 10, mode: str = "graph") -> list[Any]:
        """The most recent earlier turns, then Bi-Mem's items for ``query`` not already among them."""
        recent: list[Turn] = []
        lines: list[str] = []
        left = self.recent_chars
        for t in reversed(self._history(conversation_id)[-self.recent_turns:] if self.recent_turns else []):
            line = f"{t.speaker}: {_cut(t.text, self.max_turn_chars)}"
            if len(line) > left:
                break
            left -= len(line)
            recent.insert(0, t)
            lines.insert(0, line)
        items: list[Any] = [_Item(line) for line in lines]
        mem = self.bimem
        if mem is not None and conversation_id in mem.conversations():
            shown = {" ".join(t.text.split()) for t in recent}
            items += [it for it in mem.retrieve(query, conversation_id, k=k, mode=mode)
                      if " ".join(it.text.split()) not in shown]
        return items

    def add_messages(self, conversation_id: str, messages: Sequence[Mapping[str, Any]]) -> int:
        """The run's exchange, under the ids its messages get when the client resends them next time."""
        mem = self.bimem
        if mem is None:
            return 0
        n = len(self._history(conversation_id))
        return mem.add_messages(conversation_id, [{**m, "id": f"m{n + i}"} for i, m in enumerate(messages)])


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
