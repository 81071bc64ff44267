"""Memories -> planner training prompts, successful plans -> memories, absorbed memories compacted."""

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

from miaflow.rl import ConsolidationConfig, Consolidator, ExperienceBuffer

_spec = importlib.util.spec_from_file_location("rl_fakes", Path(__file__).parent / "_fakes.py")
fakes = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("rl_fakes", fakes)
_spec.loader.exec_module(fakes)


class FakeStore:
    def __init__(self, records):
        self.records = {r.id: r for r in records}
        self.added = []

    def iter_records(self, namespace=None):
        return iter(list(self.records.values()))

    def add(self, rec):
        self.added.append(rec)
        return f"new{len(self.added)}"

    def delete(self, ids=None, **kw):
        for i in ids:
            self.records.pop(i)
        return len(ids)


class AllRightWorkflow(fakes.FakeWorkflow):
    def run_group(self, question, n=4, gold=None, task_id=None):
        res = super().run_group(question, n, gold, task_id)
        if "easy" in question:
            for r in res:
                r.score = 1.0
        return res


def rec(i, q, question):
    return SimpleNamespace(id=i, q_value=q, judgement="correct", answer="gold", question=question)


def test_consolidation_round(tmp_path):
    store = FakeStore([rec("m1", 0.9, "an easy question?"), rec("m2", 0.6, "question number 1?"),
                       rec("m3", 0.1, "low utility?"), rec("m4", 0.8, "question number 2?")])
    store.records["m4"].judgement = "incorrect"
    wf = AllRightWorkflow(tmp_path / "mem")
    buf = ExperienceBuffer(tmp_path / "b.sqlite")
    c = Consolidator(store, wf, tmp_path / "consolidation.json", config=ConsolidationConfig(min_q=0.3))
    assert [r.id for r in c.candidates()] == ["m1", "m2"]  # correct, Q >= min_q, highest first
    rep = c.run(buf, tag="r1")
    assert rep.replayed == ["m1", "m2"]
    assert wf.calls == ["an easy question?", "question number 1?"]
    assert rep.groups_added == 2 and buf.stats().total == 2
    assert rep.absorbed == ["m1"] and rep.compacted == ["m1"] and "m1" not in store.records
    assert rep.written_back == 1 and store.added[0].judgement == "correct"  # m2's successful plan went back
    # state survives a restart: m1 is never replayed again
    c2 = Consolidator(store, wf, tmp_path / "consolidation.json")
    assert [r.id for r in c2.candidates()] == ["m2"]
