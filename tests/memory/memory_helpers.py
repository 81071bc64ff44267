"""Helpers shared by the trajectory-store tests (imported by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

import numpy as np

from miaflow.memory import Trajectory

HASH_EMBEDDER_SOURCE = '''
import hashlib, re
import numpy as np

class HashEmbedder:
    """Bag of words: each word a fixed random vector; similar word sets give similar unit vectors."""

    def __init__(self, dim=64):
        self.dim = dim
        self.calls = 0

    def _word(self, w):
        seed = int(hashlib.md5(w.encode()).hexdigest()[:8], 16)
        return np.random.default_rng(seed).standard_normal(self.dim)

    def embed(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\\w+", t.lower()):
                out[i] += self._word(w)
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else out[i]
        return out
'''
_ns: dict = {}
exec(HASH_EMBEDDER_SOURCE, _ns)  # one source for the tests here and for child processes
HashEmbedder = _ns["HashEmbedder"]


class TableEmbedder:
    """Maps given texts to given vectors (for controlled similarities); unknown texts fall back to hashing."""

    def __init__(self, table: dict[str, np.ndarray], dim: int):
        self.table = table
        self.fallback = HashEmbedder(dim)

    def embed(self, texts):
        return np.stack([self.table[t] if t in self.table else self.fallback.embed([t])[0] for t in texts]).astype(
            np.float32
        )


def make_traj(i: int | str, question: str, *, judgement: str = "correct", reward: float | None = None,
              answer: str = "an answer", task: str | None = None) -> Trajectory:
    if reward is None:
        reward = {"correct": 1.0, "incorrect": -1.0, "unknown": 0.0}[judgement]
    return Trajectory(
        task_id=task or f"task-{i}",
        question=question,
        plan="1. search for the entity\n2. open the best document\n3. answer",
        steps=[
            {"action": "search", "purpose": "find the entity", "input": question, "output": "three hits about it"},
            {"action": "open", "purpose": "read the evidence", "input": "doc-1", "output": "a long paragraph " * 5},
        ],
        evidence_ids=["doc-1"],
        answer=answer,
        judgement=judgement,  # type: ignore[arg-type]
        reward=reward,
        model="fake",
    )


