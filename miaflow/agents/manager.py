"""The Manager: recall before planning, compression and memory writes after judging, Q-value updates, and the
user's conversation memory.

Recall asks the trajectory store for positive (correct) and negative (incorrect) exemplars and, when the run
belongs to a user or conversation, asks Bi-Mem for the persona and the relevant facts. Remember compresses the run
(MIA, with the store's compression settings; extractive unless a compression model is given), adds it to the
store, applies the MemRL utility update to every memory the run used (reward +1 correct, -1 incorrect; unknown
judgements update nothing), and writes the question and answer back into the conversation memory. Both memories
are optional (None).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

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
        "task_id": str(getattr(r, "task_id", "") or ""),
        "queries": list(getattr(r, "queries", ()) or ()),
        "cited_ids": list(getattr(r, "cited_ids", ()) or ()),
        "evidence_ids": list(getattr(r, "evidence_ids", ()) or ()),
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

    def compress(self, trajectory: Any) -> Any:
        """The stored form of a run, written with the store's own settings (its compression config and namespace)
        and the store's model, or the Manager's ``compress_model`` when one was given."""
        from ..memory.compression import compress

        llm = self.compress_model if self.compress_model is not None else getattr(self.store, "llm", None)
        return compress(trajectory, llm, config=getattr(self.store, "compression", None),
                        namespace=getattr(self.store, "namespace", "default"))

    def remember(self, *, task_id: str, question: str, plan: str, steps: Sequence[Any], evidence_ids: Sequence[str],
                 answer: str, judgement: str, used_ids: Sequence[str], model: str = "",
                 adapter: str | None = None, citations: Sequence[str] = (), user_id: str | None = None,
                 conversation_id: str | None = None) -> str | None:
        """The one remember path of every run (single, group, session): compress and store the run, update the
        utilities of the memories it used, and write the exchange into the user's conversation memory.
        Returns the kept memory id (None without a trajectory store)."""
        from ..memory.compression import key_queries
        from ..memory.trajectory import Trajectory

        mem_id = None
        if self.store is not None:
            reward = reward_of(judgement)
            cited = [str(c) for c in citations]
            queries = key_queries(steps, cited)  # before the steps are flattened for the summary
            flat = [{"tool": s["tool"], "input": s["input"], "output": ", ".join(s.get("output") or ()) or
                     s.get("error") or "nothing"} if isinstance(s, dict) else s for s in steps]
            traj = Trajectory(task_id=task_id, question=question, plan=plan, steps=flat,
                              evidence_ids=list(evidence_ids), cited_ids=cited, queries=queries, answer=answer,
                              judgement=cast(Any, judgement), reward=0.0 if reward is None else reward,
                              model=model, adapter_version=adapter)
            # without a model of its own the Manager leaves compression to the store (its model, its settings)
            mem_id = self.store.add(traj if self.compress_model is None else self.compress(traj))
            if reward is not None and used_ids:
                self.store.update_utilities(task_id, list(used_ids), reward)
        cid = conversation_id or user_id
        if cid:  # the plans of one group (task ids ``T/pN``) write the exchange once: one turn id per task
            self.write_conversation(conversation_id=cid, user_id=user_id, question=question, answer=answer,
                                    turn_id=re.sub(r"/p\d+$", "", task_id))
        return mem_id

    def forget_exchange(self, task_id: str) -> int:
        """Remove the exchange ``task_id`` wrote into the conversation memory (a run cut short, whose redo must not
        recall it), from whichever conversation holds it. Returns the turns removed."""
        mem = self.conversation_memory
        if mem is None or not hasattr(mem, "delete_turns"):
            return 0
        base = re.sub(r"/p\d+$", "", task_id)
        return sum(int(mem.delete_turns(cid, [f"{base}:q", f"{base}:a"])) for cid in mem.conversations())

    def write_conversation(self, *, conversation_id: str, user_id: str | None, question: str, answer: str,
                           time: str | None = None, turn_id: str | None = None) -> None:
        """Append the exchange (the user's question, the answer) to the conversation memory."""
        if self.conversation_memory is None:
            return
        base = turn_id or f"q{abs(hash((conversation_id, question))) % 10**8}"
        msgs = [{"speaker": user_id or "user", "text": question, "time": time or "", "id": f"{base}:q"},
                {"speaker": self.config.assistant_name, "text": answer, "time": time or "", "id": f"{base}:a"}]
        self.conversation_memory.add_messages(conversation_id, msgs)
