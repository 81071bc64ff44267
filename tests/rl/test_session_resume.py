"""Resume trusts nothing: a different question list is refused (or restarted on request), and the memories written
by a question cut short are not recalled by its own redo (the final memory equals an uninterrupted run's)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from miaflow.errors import InvalidInputError
from miaflow.rl import ExperienceBuffer
from miaflow.workflows.session import Session, SessionConfig, SessionQuestion

_spec = importlib.util.spec_from_file_location("rl_fakes", Path(__file__).parent / "_fakes.py")
fakes = sys.modules.get("rl_fakes") or importlib.util.module_from_spec(_spec)
if "rl_fakes" not in sys.modules:
    sys.modules["rl_fakes"] = fakes
    _spec.loader.exec_module(fakes)


def test_resume_refuses_another_question_list_and_restart_starts_over(tmp_path):
    state = tmp_path / "state"
    qs = fakes.questions(4)
    with pytest.raises(RuntimeError, match="injected"):
        Session(fakes.FakeWorkflow(tmp_path / "mem", fail_on="number 2?"), state).run(qs)
    other = [SessionQuestion(id=q.id, question=q.question.replace("number", "No."), gold=q.gold) for q in qs]
    with pytest.raises(InvalidInputError, match="different question list") as err:
        Session(fakes.FakeWorkflow(tmp_path / "mem"), state).run(other, resume=True)
    assert "--restart" in str(err.value)
    with pytest.raises(InvalidInputError, match="different question list"):  # reordered is different too
        Session(fakes.FakeWorkflow(tmp_path / "mem"), state).run(qs[::-1], resume=True)
    wf = fakes.FakeWorkflow(tmp_path / "mem")
    summary = Session(wf, state).run(other, restart=True)
    assert wf.calls == [q.question for q in other]  # from the start of the new list
    assert [o.qid for o in summary.outcomes] == [q.id for q in other]
    assert (state / "outcomes-run0.jsonl").exists()  # the first run's log is kept
    buf = ExperienceBuffer(state / "buffer.sqlite")
    assert buf.stats().total == 2 + 4  # the new run's groups are new groups, not taken for re-adds
    assert json.loads((state / "progress.json").read_text())["run"] == 1
    # the same list resumes (nothing left to do)
    assert len(Session(fakes.FakeWorkflow(tmp_path / "mem"), state).run(other, resume=True).outcomes) == 4


def _memories(store):
    return sorted((r.task_id, r.question, r.answer) for r in store.iter_records())


def test_a_cut_short_question_does_not_recall_its_own_memories_on_redo(tmp_path):
    from miaflow.memory import TrajectoryStore
    from miaflow.testing import FakeChatModel
    from miaflow.workflows import ResearchConfig, ResearchWorkflow

    qs = [SessionQuestion(id="a", question="Where was the first performance of Tinted Windows?", gold="Tulsa"),
          SessionQuestion(id="b", question="What is the capital of France?", gold="Paris")]
    cfg = SessionConfig(group_size=2)

    def workflow(root):
        return ResearchWorkflow(planner=FakeChatModel(fakes.scripted_reply), index=fakes.TinyIndex(),
                                store=TrajectoryStore(root, embedder=fakes.WordsEmbedder()),
                                config=ResearchConfig(reflect=False))

    clean = workflow(tmp_path / "clean-mem")
    reference = Session(clean, tmp_path / "clean", config=cfg).run(qs)

    wf = workflow(tmp_path / "mem")
    sess = Session(wf, tmp_path / "state", config=cfg)

    class Cut(Exception):
        pass

    def cut_after_writing(outcome):  # everything of question 'a' is stored, the position has not moved yet
        raise Cut

    sess.on_outcome = cut_after_writing
    with pytest.raises(Cut):
        sess.run(qs)
    assert wf.store.count() >= 1 and json.loads((tmp_path / "state" / "progress.json").read_text())["index"] == 0
    redo = Session(wf, tmp_path / "state", config=cfg).run(qs, resume=True)
    assert [o.used_memories for o in redo.outcomes] == [o.used_memories for o in reference.outcomes]
    assert redo.outcomes[0].used_memories == 0  # it did not recall the attempt that was cut short
    assert _memories(wf.store) == _memories(clean.store)


def test_questions_file_errors_name_the_file_and_true_line(tmp_path):
    import pytest

    from miaflow.errors import InvalidInputError
    from miaflow.workflows.session import load_session_questions

    p = tmp_path / "qs.jsonl"
    p.write_text('{"question": "a?"}\n\n{"question": "b?"}\n{not json\n')
    with pytest.raises(InvalidInputError, match=r"qs\.jsonl:4"):
        load_session_questions(p)
    p.write_text('{"question": "a?"}\n["x"]\n')
    with pytest.raises(InvalidInputError, match=r"qs\.jsonl:2"):
        load_session_questions(p)
    with pytest.raises(InvalidInputError, match="missing"):
        load_session_questions(tmp_path / "missing.jsonl")
    p.write_text('{"question": "a?"}\n\n{"question": "b?", "answer": "c"}\n')
    assert [q.id for q in load_session_questions(p)] == ["line1", "line3"]
