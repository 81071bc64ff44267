"""Hypothesis state machines for Bi-Mem (on an embedded Chroma folder and on a real ``chroma run`` server) and for
the experience buffer, like the trajectory store's (tests/memory/test_properties.py): after any sequence of writes,
deletions, retrievals, reopenings and (for the buffer) kills between its two writes, the store matches a plain model
and its integrity check passes, so nothing acknowledged is lost and nothing deleted comes back."""

from __future__ import annotations

import importlib.util
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from _stores import bimem_embedder
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from miaflow.errors import InvalidInputError
from miaflow.memory.bimem import MODES, BiMemory
from miaflow.rl import ExperienceBuffer, ExperienceGroup
from miaflow.rl.buffer import verify_buffer

pytestmark = pytest.mark.faults

_spec = importlib.util.spec_from_file_location("_memory_fixtures", Path(__file__).parents[1] / "memory" / "conftest.py")
_memory_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_memory_fixtures)
chroma_server = _memory_fixtures.chroma_server  # the trajectory-store tests' real server, started and stopped by PID

SPEAKERS = ("Ann", "Tom")
TOPICS = ("pottery", "running", "Lisbon", "greyhounds", "bikes", "tiles")
CONVS = ("c1", "c2")
FAST = settings(max_examples=4, stateful_step_count=8, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------- Bi-Mem

@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.slow)])
def open_bimem(request, tmp_path):
    """Opens a Bi-Mem memory on one backend; each Hypothesis example uses its own namespace. The server variant
    starts a ``chroma run`` of its own (about 20 s here), so it is marked slow (``-m faults`` still runs it)."""
    embedder = bimem_embedder()
    server = request.getfixturevalue("chroma_server") if request.param == "server" else None

    def factory(namespace: str) -> BiMemory:
        if server is None:
            return BiMemory(tmp_path / "bm", embedder=embedder, namespace=namespace)
        host, port = server
        return BiMemory(tmp_path / "bm", embedder=embedder, namespace=namespace, host=host, port=port)

    return factory


def test_bimem_state_machine(open_bimem):
    class BiMemMachine(RuleBasedStateMachine):
        @initialize()
        def fresh(self):
            self.ns = "sm" + uuid.uuid4().hex[:10]
            self.mem = open_bimem(self.ns)
            self.model: dict[str, dict[str, tuple[str, str]]] = {}  # conversation -> turn id -> (speaker, text)
            self.n = 0

        def teardown(self):
            self.mem.close()

        @rule(conv=st.sampled_from(CONVS), data=st.data(),
              turns=st.lists(st.tuples(st.sampled_from(SPEAKERS), st.sampled_from(TOPICS),
                                       st.sampled_from(TOPICS), st.booleans()), min_size=1, max_size=4))
        def add(self, conv, data, turns):
            known = self.model.get(conv, {})
            messages, expected = [], {}
            for speaker, a, b, blank in turns:
                reuse = known and data.draw(st.booleans(), label="reuse an id")
                if reuse:
                    tid = data.draw(st.sampled_from(sorted(known)), label="id")
                else:
                    self.n += 1
                    tid = f"D{self.n}"
                text = "   " if blank else f"{speaker} talks about {a} and {b} (turn {tid})."
                messages.append({"id": tid, "speaker": speaker, "text": text, "time": "1 May 2023"})
                if text.strip() and tid not in known and tid not in expected:
                    expected[tid] = (speaker, text)
            added = self.mem.add_messages(conv, messages)
            assert added == len(expected)
            if expected:
                self.model.setdefault(conv, {}).update(expected)

        @precondition(lambda self: bool(self.model))
        @rule(data=st.data(), speaker=st.sampled_from(SPEAKERS))
        def delete_speaker(self, data, speaker):
            conv = data.draw(st.sampled_from(sorted(self.model)))
            gone = [t for t, (sp, _) in self.model[conv].items() if sp == speaker]
            assert self.mem.delete_speaker(conv, speaker) == len(gone)
            for t in gone:
                del self.model[conv][t]

        @precondition(lambda self: bool(self.model))
        @rule(data=st.data())
        def delete_conversation(self, data):
            conv = data.draw(st.sampled_from(sorted(self.model)))
            self.mem.delete_conversation(conv)
            del self.model[conv]
            with pytest.raises(InvalidInputError):
                self.mem.turns(conv)

        @precondition(lambda self: bool(self.model))
        @rule(data=st.data(), topic=st.sampled_from(TOPICS), mode=st.sampled_from(MODES), k=st.integers(1, 6))
        def retrieve(self, data, topic, mode, k):
            conv = data.draw(st.sampled_from(sorted(self.model)))
            items = self.mem.retrieve(f"What does Ann say about {topic}?", conversation_id=conv, k=k, mode=mode)
            assert len(items) <= k
            turned = set().union(*(set(i.turn_ids) for i in items)) if items else set()
            assert turned <= set(self.model[conv])  # nothing deleted comes back
            if self.model[conv]:
                assert items

        @rule()
        def reopen(self):
            self.mem.close()
            self.mem = open_bimem(self.ns)

        @invariant()
        def matches_model(self):
            assert sorted(self.mem.conversations()) == sorted(self.model)
            for conv, turns in self.model.items():
                got = {t.id: (t.speaker, t.text) for t in self.mem.turns(conv)}
                assert got == turns
                facts = self.mem.facts(conv)
                assert len(facts) == len(turns)  # fast mode: one observation per turn
                assert all(set(f.turn_ids) <= set(turns) for f in facts)
                assert self.mem.vector_count(conv) == len(facts)  # Chroma and the JSON state agree
                for sp in SPEAKERS:
                    if not any(s == sp for s, _ in turns.values()):
                        assert self.mem.persona(sp, conv) == ""
            for conv in set(CONVS) - set(self.model):
                assert self.mem.vector_count(conv) == 0

    BiMemMachine.TestCase.settings = FAST
    t0 = time.perf_counter()
    BiMemMachine.TestCase().runTest()
    print(f"Bi-Mem state machine: {time.perf_counter() - t0:.1f} s")


# ---------------------------------------------------------------- experience buffer (a SQLite file, no Chroma)

def _group(gid: str, role: str, signal: bool) -> ExperienceGroup:
    return ExperienceGroup(group_id=gid, role=role, prompt=[{"role": "user", "content": f"question {gid}"}],
                           completions=[f"plan {gid} a", f"plan {gid} b"], rewards=[1.0, 0.0 if signal else 1.0])


def test_buffer_state_machine(tmp_path):
    class BufferMachine(RuleBasedStateMachine):
        @initialize()
        def fresh(self):
            self.path = tmp_path / uuid.uuid4().hex[:10] / "buffer.sqlite"
            self.buf = ExperienceBuffer(self.path)
            self.model: dict[str, dict] = {}  # group id -> role, status (insertion order kept)

        def teardown(self):
            self.buf.close()

        @rule(i=st.integers(0, 7), role=st.sampled_from(("planner", "executor")), signal=st.booleans())
        def add(self, i, role, signal):
            gid = f"g{i}"
            new = self.buf.add(_group(gid, role, signal))
            assert new == (gid not in self.model)
            if new:
                self.model[gid] = {"role": role, "status": "pending" if signal else "zero_variance"}

        @precondition(lambda self: any(m["status"] == "pending" for m in self.model.values()))
        @rule(data=st.data(), version=st.sampled_from(("v1", "v2")))
        def mark_trained(self, data, version):
            pending = sorted(g for g, m in self.model.items() if m["status"] == "pending")
            ids = data.draw(st.lists(st.sampled_from(pending), min_size=1, max_size=3, unique=True))
            self.buf.mark_trained(ids, version)
            for g in ids:
                self.model[g]["status"] = "trained"

        @rule(i=st.integers(8, 11), role=st.sampled_from(("planner", "executor")))
        def killed_between_row_and_manifest(self, i, role):
            """A kill after SQLite committed a group but before the manifest recorded it: not damage."""
            gid = f"g{i}"
            con = sqlite3.connect(self.path)
            cur = con.execute("INSERT OR IGNORE INTO groups(group_id, role, status, payload, created_at) "
                              "VALUES (?,?,?,?,?)", (gid, role, "pending", _group(gid, role, True).to_json(),
                                                     time.time()))
            con.commit()
            con.close()
            if cur.rowcount == 1:
                self.model[gid] = {"role": role, "status": "pending"}
            self.reopen()

        @rule()
        def reopen(self):
            self.buf.close()
            self.buf = ExperienceBuffer(self.path)

        @rule(role=st.sampled_from(("planner", "executor")), limit=st.one_of(st.none(), st.integers(1, 4)))
        def pending(self, role, limit):
            want = [g for g, m in self.model.items() if m["role"] == role and m["status"] == "pending"]
            got = [g.group_id for g in self.buf.pending(limit, role=role)]
            assert got == want[:limit] if limit is not None else got == want

        @invariant()
        def matches_model(self):
            assert [g.group_id for g in self.buf.all()] == list(self.model)
            for role in ("planner", "executor"):
                s = self.buf.stats(role)
                ms = [m["status"] for m in self.model.values() if m["role"] == role]
                assert (s.total, s.pending, s.trained, s.zero_variance) == (
                    len(ms), ms.count("pending"), ms.count("trained"), ms.count("zero_variance"))
            assert verify_buffer(self.path).ok

    BufferMachine.TestCase.settings = settings(FAST, max_examples=10, stateful_step_count=12)  # no Chroma: cheap
    t0 = time.perf_counter()
    BufferMachine.TestCase().runTest()
    print(f"buffer state machine: {time.perf_counter() - t0:.1f} s")
