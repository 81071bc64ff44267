"""The Manager: recall before planning, compression and memory writes after judging, Q-value updates, and the
user's conversation memory.

Recall asks the trajectory store for positive (correct) and negative (incorrect) exemplars and, when the run
belongs to a user or conversation, asks Bi-Mem for the persona and the relevant facts. Remember compresses the run
(MIA; extractive unless a compression model is given), adds it to the store, applies the MemRL utility update to
every memory the run used (reward +1 correct, -1 incorrect; unknown judgements update nothing), and writes the
question and answer back into the conversation memory. Both memories are optional (None).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ManagerConfig", "Manager", "reward_of"]

log = logging.getLogger(__name__)


@dataclass
class ManagerConfig:
    """How much memory is recalled and written."""

    conversation_k: int = field(default=5, metadata={"help": "Bi-Mem items recalled for a user's run."})
    conversation_mode: str = field(default="graph", metadata={"help": "Bi-Mem retrieval mode."})
    assistant_name: str = field(default="assistant", metadata={"help": "Speaker name of answers in Bi-Mem."})

    def __post_init__(self) -> None:
        if self.conversation_k < 0:
            raise ValueError(f"conversation_k must be >= 0, got {self.conversation_k}")


def reward_of(judgement: str) -> float | None:
    """The utility-update reward of a judgement label: +1, -1, or None (no update) for unknown.

    >>> reward_of("correct"), reward_of("incorrect"), reward_of("unknown")
    (1.0, -1.0, None)
    """
    return {"correct": 1.0, "incorrect": -1.0}.get(judgement)


def _memory_dict(sm: Any) -> dict[str, Any]:
    r = getattr(sm, "record", sm)
    return {
        "id": str(getattr(r, "id", "")),
        "question": getattr(r, "question", ""),
        "plan": getattr(r, "plan", ""),
        "summary": getattr(r, "summary", ""),
        "answer": getattr(r, "answer", ""),
        "judgement": getattr(r, "judgement", ""),
        "q_value": float(getattr(r, "q_value", 0.0) or 0.0),
        "similarity": float(getattr(sm, "similarity", 0.0) or 0.0),
        "score": float(getattr(sm, "score", 0.0) or 0.0),
    }


class Manager:
    """Recalls and remembers. ``store``: a TrajectoryStore; ``conversation_memory``: a BiMemory."""

    def __init__(self, store: Any = None, conversation_memory: Any = None, *, compress_model: Any = None,
                 config: ManagerConfig | None = None):
        self.store = store
        self.conversation_memory = conversation_memory
        self.compress_model = compress_model
        self.config = config or ManagerConfig()

    def recall(self, question: str, *, user_id: str | None = None, conversation_id: str | None = None
               ) -> dict[str, Any]:
        """Memories for the planner: ``positive``, ``negative`` (lists of dicts), ``used_ids``, ``conversation``."""
        out: dict[str, Any] = {"positive": [], "negative": [], "used_ids": [], "conversation": ""}
        if self.store is not None:
            rec = self.store.recall(question)
            out["positive"] = [_memory_dict(m) for m in rec.positive]
            out["negative"] = [_memory_dict(m) for m in rec.negative]
            ids = getattr(rec, "ids", None)
            out["used_ids"] = [str(i) for i in ids] if ids is not None else \
                [m["id"] for m in out["positive"] + out["negative"]]
        cid = conversation_id or user_id
        if self.conversation_memory is not None and cid and self.config.conversation_k and self._knows(cid):
            lines = []
            if user_id:
                persona = self.conversation_memory.persona(user_id, conversation_id=cid)
                if persona:
                    lines.append(f"Persona of {user_id}: {persona}")
            items = self.conversation_memory.retrieve(question, conversation_id=cid, k=self.config.conversation_k,
                                                      mode=self.config.conversation_mode)
            lines += [f"- {it.text}" for it in items]
            out["conversation"] = "\n".join(lines)
        return out

    def _knows(self, conversation_id: str) -> bool:
        """Whether the conversation memory holds this conversation; a new user simply has nothing to recall yet."""
        known = getattr(self.conversation_memory, "conversations", None)
        return True if known is None else conversation_id in known()

    def remember(self, *, task_id: str, question: str, plan: str, steps: Sequence[Any], evidence_ids: Sequence[str],
                 answer: str, judgement: str, used_ids: Sequence[str], model: str = "",
                 adapter: str | None = None) -> str | None:
        """Compress and store the run, then update the utilities of the memories it used. Returns the kept id."""
        if self.store is None:
            return None
        from .. import memory

        compress, Trajectory = memory.compress, memory.Trajectory  # noqa: N806 (lazy public names)

        reward = reward_of(judgement)
        steps = [{"tool": s["tool"], "input": s["input"], "output": ", ".join(s.get("output") or ()) or
                  s.get("error") or "nothing"} if isinstance(s, dict) else s for s in steps]
        traj = Trajectory(task_id=task_id, question=question, plan=plan, steps=steps,
                          evidence_ids=list(evidence_ids), answer=answer, judgement=judgement,
                          reward=0.0 if reward is None else reward, model=model, adapter_version=adapter)
        mem_id = self.store.add(compress(traj, llm=self.compress_model))
        if reward is not None and used_ids:
            self.store.update_utilities(task_id, list(used_ids), reward)
        return mem_id

    def write_conversation(self, *, conversation_id: str, user_id: str | None, question: str, answer: str,
                           time: str | None = None, turn_id: str | None = None) -> None:
        """Append the exchange (the user's question, the answer) to the conversation memory."""
        if self.conversation_memory is None:
            return
        base = turn_id or f"q{abs(hash((conversation_id, question))) % 10**8}"
        msgs = [{"speaker": user_id or "user", "text": question, "time": time or "", "id": f"{base}:q"},
                {"speaker": self.config.assistant_name, "text": answer, "time": time or "", "id": f"{base}:a"}]
        self.conversation_memory.add_messages(conversation_id, msgs)
