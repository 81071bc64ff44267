"""Fakes for session tests (also run as a script by the kill test: python _fakes.py STATE_DIR N_QUESTIONS)."""

from __future__ import annotations

import json
import os
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(kw_only=True, slots=True)
class FakeResult:
    task_id: str
    question: str
    planner_messages: list
    plan: str
    answer: str
    first_answer: str
    score: float
    first_score: float
    replan_decision: bool = False
    judgement: str = "unknown"
    used_memory_ids: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    evidence_ids: list = field(default_factory=list)
    adapter: str | None = None
    model: str = "fake"


class FakeWorkflow:
    """Deterministic groups: plan k of question q is correct when crc(q) + k is even. remember() appends to a file."""

    def __init__(self, root, *, delay=0.0, fail_on=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.delay = delay
        self.fail_on = fail_on
        self.calls = []

    def run_group(self, question, n=4, gold=None, task_id=None):
        if self.fail_on is not None and self.fail_on in question:
            raise RuntimeError(f"injected failure on {question!r}")
        self.calls.append(question)
        time.sleep(self.delay)
        h = zlib.crc32(question.encode())
        out = []
        for k in range(n):
            ok = (h + k) % 2 == 0 or (h % 5 == 0)
            out.append(FakeResult(
                task_id=task_id, question=question,
                planner_messages=[{"role": "user", "content": f"Plan: {question}"}],
                plan=f"1. search {question} #{k}", answer=(gold or "x") if ok else "wrong",
                first_answer="wrong", score=float(ok), first_score=0.0, replan_decision=ok,
                judgement="correct" if ok else "incorrect", used_memory_ids=["m1"] if k % 2 else []))
        return out

    def remember(self, result):
        with (self.root / "memories.jsonl").open("a") as f:
            f.write(json.dumps({"task_id": result.task_id, "judgement": result.judgement}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return result.task_id


@dataclass(frozen=True)
class Hit:
    doc_id: str
    title: str
    text: str
    score: float


@dataclass(frozen=True)
class Doc:
    id: str
    title: str
    text: str
    source: str = ""


class TinyIndex:
    """Word-overlap search over two documents, with the CorpusIndex search / open_document API."""

    DOCS = {"band": ("Tinted Windows", "The first performance of Tinted Windows was in Tulsa."),
            "city": ("Paris", "Paris is the capital of France.")}

    def search(self, query, k=5):
        words = set(query.lower().split())
        hits = [(len(words & set((t + " " + x).lower().split())), d) for d, (t, x) in self.DOCS.items()]
        return [Hit(d, *self.DOCS[d], float(s)) for s, d in sorted(hits, reverse=True) if s > 0][:k]

    def open_document(self, doc_id):
        return Doc(doc_id, *self.DOCS[doc_id])


def scripted_reply(messages, cfg):
    """A FakeChatModel reply function: one-step plans, no replan, answers from the passages shown."""
    text = messages[-1]["content"]
    if "Documents:" in text:
        return "Tulsa [band]" if "Tulsa" in text else "Paris [city]"
    if "yes (replan)" in text:
        return "no"
    if "numbered" in text:
        return "Thinking: one hop.\n1. Search for the first performance\n2. Answer the question"
    return "ok"


class WordsEmbedder:
    """Bag of words hashed to fixed random vectors: the same question gets the same vector (fast; the store is real)."""

    dim = 32

    def embed(self, texts):
        import hashlib

        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i] += np.random.default_rng(int(hashlib.md5(w.encode()).hexdigest()[:8], 16)).standard_normal(32)
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out


def questions(n):
    from miaflow.workflows.session import SessionQuestion

    return [SessionQuestion(id=f"q{i}", question=f"question number {i}?", gold=f"gold{i}") for i in range(n)]


if __name__ == "__main__":
    from miaflow.workflows.session import Session, SessionConfig

    state, n = sys.argv[1], int(sys.argv[2])
    resume = len(sys.argv) > 3 and sys.argv[3] == "resume"
    wf = FakeWorkflow(Path(state) / "mem", delay=0.3)
    Session(wf, state, config=SessionConfig(epochs=2)).run(questions(n), resume=resume)
