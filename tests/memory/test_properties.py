"""A Hypothesis state machine over the embedded store: after any sequence of adds (with near-duplicates), utility
updates (with repeats), recalls and deletes, the store matches a plain model: same records, no duplicate ids,
usage counts equal to the distinct tasks applied, Q equal to the sequential MemRL update and within [-1, 1]."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from memory_helpers import HashEmbedder, make_traj

from miaflow.memory import TrajectoryStore, compress

QUESTIONS = [f"question about subject {w}" for w in ("alpha", "bravo", "charlie", "delta", "echo")]
JUDGEMENTS = ("correct", "incorrect", "unknown")


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    return TrajectoryStore(tmp_path_factory.mktemp("prop") / "s", embedder=HashEmbedder())


def test_store_state_machine(shared_store):
    class StoreMachine(RuleBasedStateMachine):
        @initialize()
        def fresh_namespace(self):
            self.ns = "p" + uuid.uuid4().hex[:10]
            self.store = shared_store
            self.model: dict[str, dict] = {}  # id -> question, judgement, summary, events [(task, reward)]
            self.by_question: dict[str, str] = {}
            self.n = 0

        @rule(q=st.sampled_from(QUESTIONS), judgement=st.sampled_from(JUDGEMENTS), words=st.integers(1, 6))
        def add(self, q, judgement, words):
            self.n += 1
            traj = make_traj(self.n, q, judgement=judgement, answer=" ".join(["word"] * words))
            summary = compress(traj).summary
            kept = self.store.add(traj, namespace=self.ns)
            old_id = self.by_question.get(q)
            if old_id is None:
                self.model[kept] = {"judgement": judgement, "summary": summary, "events": []}
                self.by_question[q] = kept
                return
            assert kept == old_id
            old = self.model[old_id]
            if old["judgement"] != "correct" or (judgement == "correct" and len(summary) < len(old["summary"])):
                self.model[old_id] = {"judgement": judgement, "summary": summary, "events": []}

        @precondition(lambda self: bool(self.model))
        @rule(data=st.data(), task=st.integers(0, 4),
              reward=st.floats(-1, 1, allow_nan=False, allow_infinity=False))
        def update(self, data, task, reward):
            ids = data.draw(st.lists(st.sampled_from(sorted(self.model)), min_size=1, max_size=3, unique=True))
            self.store.update_utilities(f"t{task}", ids, reward, namespace=self.ns)
            for i in ids:
                if all(t != task for t, _ in self.model[i]["events"]):
                    self.model[i]["events"].append((task, reward))

        @rule(q=st.sampled_from(QUESTIONS))
        def recall(self, q):
            r = self.store.recall(q, namespace=self.ns)
            assert len(r.ids) == len(set(r.ids)) and set(r.ids) <= set(self.model)
            assert all(m.record.judgement == "correct" for m in r.positive)
            assert all(m.record.judgement == "incorrect" for m in r.negative)

        @precondition(lambda self: bool(self.model))
        @rule(data=st.data())
        def delete(self, data):
            victim = data.draw(st.sampled_from(sorted(self.model)))
            assert self.store.delete(ids=[victim], namespace=self.ns) == 1
            del self.model[victim]
            self.by_question = {q: i for q, i in self.by_question.items() if i != victim}

        @invariant()
        def matches_model(self):
            recs = list(self.store.iter_records(self.ns))
            ids = [r.id for r in recs]
            assert len(ids) == len(set(ids)) == len(self.model) == self.store.count(self.ns)
            for r in recs:
                m = self.model[r.id]
                assert r.judgement == m["judgement"]
                assert r.usage_count == len(m["events"])
                q = 0.0
                for _, reward in m["events"]:
                    q += 0.3 * (reward - q)
                assert -1.0 <= r.q_value <= 1.0
                assert r.q_value == pytest.approx(q, abs=1e-9)

    StoreMachine.TestCase.settings = settings(
        max_examples=12, stateful_step_count=12, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    StoreMachine.TestCase().runTest()
