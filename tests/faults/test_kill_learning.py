"""kill -9 of a session with learning on: trajectory store, Bi-Mem, experience buffer, adapter registry and the
LangGraph checkpoint together (:mod:`_learning_session`).

A seeded schedule kills the session process with SIGKILL at named points (mid group graph, after the buffer took a
group, between two plans' memory writes, after a Bi-Mem write, after the outcome line, inside a GRPO step, between
the adapter files, between a new version and marking its groups trained, mid eval gate, while a version loads) and
after random delays; after each kill the stores are checked, then the session resumes under the next kill. At the
end the resumed session must equal an uninterrupted one: same answers, groups, memories, conversation turns and
checkpointed group runs, every group trained once into a version whose weights say exactly which groups it holds.

The processes are forked from a server that imported everything once (``multiprocessing`` forkserver), so a
resume costs what opening the stores costs, not the imports.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import _learning_session as L
import numpy as np
import pytest

pytestmark = pytest.mark.faults

SEED = int(os.environ.get("MIAFLOW_KILL_SEED", "14"))
"""Seed of the kill schedule (14 kills at buffer, gate, bimem, remember, step, save and twice at random times; 26 at
bimem, publish, save, outcome, trained, answer and twice at random times)."""
KILLS = 8
EPOCHS = L.EPOCHS
MAX_HIT = {"answer": 6, "buffer": 2, "remember": 5, "bimem": 2, "outcome": 2, "step": 2, "save": 1, "trained": 1,
           "gate": 2, "publish": 2}
"""Highest hit of each point drawn: low enough that every kill lands before the stream ends."""


def _ctx():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["_learning_session"])
    return ctx


def _life(state: Path, *, resume: bool, kill_at: str = "", kill_after: float | None = None,
          timeout: float = 240.0) -> int | None:
    """Run one process of the session; returns its exit code (-9: killed)."""
    proc = _ctx().Process(target=L.run, args=(str(state), resume, kill_at), daemon=True)
    proc.start()
    proc.join(kill_after if kill_after is not None else timeout)
    if proc.is_alive() and kill_after is not None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        pytest.fail(f"the session process hung (state {state})")
    return proc.exitcode


def _child(target, *args) -> None:
    proc = _ctx().Process(target=target, args=args, daemon=True)
    proc.start()
    proc.join(240)
    assert proc.exitcode == 0, f"{target.__name__}{args} failed in its process (exit {proc.exitcode})"


def _schedule(rng: random.Random) -> list[tuple[str, float | None]]:
    """KILLS kills: every named point in turn (shuffled) and random delays between them."""
    points = list(L.POINTS)
    rng.shuffle(points)
    out: list[tuple[str, float | None]] = []
    for i in range(KILLS):
        if i % 4 == 3:
            out.append(("", rng.uniform(1.0, 4.0)))
        else:
            p = points.pop()
            out.append((f"{p}:{rng.randint(1, MAX_HIT[p])}", None))
    return out


# ----------------------------------------------------------------------------- reading the stores
def _outcomes(state: Path) -> list[dict]:
    p = state / "outcomes.jsonl"
    if not p.exists():
        return []
    lines = p.read_text(encoding="utf-8").split("\n")
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            assert i == len(lines) - 1, f"outcomes.jsonl line {i + 1} is torn but not the last"
    return out


def _tid(epoch: int, qid: str) -> str:
    return f"e{epoch}-{qid}"


def _stream() -> list[tuple[int, int]]:
    return [(e, i) for e in range(EPOCHS) for i in range(len(L.QUESTIONS))]


def _buffer(state: Path) -> dict[str, dict]:
    if not (state / "buffer.sqlite").exists():
        return {}
    db = sqlite3.connect(str(state / "buffer.sqlite"))
    try:
        rows = db.execute("SELECT group_id, status, payload, trained_into FROM groups ORDER BY seq").fetchall()
    finally:
        db.close()
    return {g: {"status": s, "payload": json.loads(p), "trained_into": t} for g, s, p, t in rows}


def _registry(state: Path) -> tuple[dict, dict[str, dict]]:
    root = state / "adapters" / "planner"
    if not (root / "pointer.json").exists():
        return {"current": "v0", "promoted": "v0"}, {}
    pointer = json.loads((root / "pointer.json").read_text())
    metas = {p.name: json.loads((p / "meta.json").read_text()) for p in (root / "versions").iterdir()
             if (p / "meta.json").exists()}
    return pointer, metas


def _expected_weights(version: str, metas: dict[str, dict], groups: dict[str, dict]) -> np.ndarray:
    """The weights a version must hold: the vectors of the groups trained into it and into its ancestors."""
    w = np.zeros(L.DIM, dtype=np.float32)
    seen = set()
    while version not in (None, "v0"):
        assert version not in seen, f"adapter versions form a cycle at {version}"
        seen.add(version)
        for g, row in groups.items():
            if row["trained_into"] == version:
                w = w + L.group_vector(g)
        version = metas[version]["parent"]
    return w


def _memories(state: Path) -> list:
    from memory_helpers import HashEmbedder

    from miaflow.memory import TrajectoryStore

    with TrajectoryStore(state / "memory", embedder=HashEmbedder()) as store:
        records = list(store.iter_records())
        assert store.count() == len(records), "the store's count disagrees with its records"
    return records


def _turns(state: Path) -> list:
    from _stores import bimem_embedder

    from miaflow.memory.bimem import BiMemory

    mem = BiMemory(state / "conversations", embedder=bimem_embedder())
    try:
        return list(mem.turns(L.USER)) if L.USER in mem.conversations() else []
    finally:
        mem.close()


def _threads(state: Path) -> dict[str, dict]:
    """Each checkpointed thread's latest values (with whether it still has tasks to run)."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = state / "checkpoints.sqlite"
    if not path.exists():
        return {}
    conn = sqlite3.connect(str(path))
    try:
        saver = SqliteSaver(conn)
        ids = [r[0] for r in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")]
        out = {}
        for t in ids:
            tup = saver.get_tuple({"configurable": {"thread_id": t}})
            out[t] = {**tup.checkpoint["channel_values"], "_step": tup.metadata.get("step")}
        return out
    finally:
        conn.close()


# ----------------------------------------------------------------------------- the invariants
def check(state: Path, *, kills: int, finished: bool) -> dict[str, int]:
    """Everything acknowledged is kept, nothing is doubled, the stores agree. Returns figures for the report."""
    n = L.N_PLANS
    questions = {q.id: q for q in L.QUESTIONS}
    outs = _outcomes(state)
    keys = [(o["epoch"], o["index"]) for o in outs]
    for o in outs:
        assert questions[o["qid"]].question == o["question"] and L.QUESTIONS[o["index"]].id == o["qid"]
        assert len(o["answers"]) == n and len(o["rewards"]) == n
    redone = len(keys) - len(set(keys))
    assert redone <= kills, f"{redone} questions logged twice after {kills} kills"
    assert keys == sorted(keys), "the outcome log goes back in the stream"
    progress = json.loads((state / "progress.json").read_text()) if (state / "progress.json").exists() else {}
    pos = (progress.get("epoch", 0), progress.get("index", 0))
    stream = _stream()
    acked = sorted(set(keys))
    assert acked == [k for k in stream if k < pos] or acked == [k for k in stream if k <= pos], \
        f"position {pos} disagrees with the answered questions {acked}"
    acked_tids = {_tid(e, L.QUESTIONS[i].id) for e, i in acked}
    inflight = (progress.get("inflight") or {}).get("task_id")
    allowed = acked_tids | ({inflight} if inflight else set())
    if finished:
        assert acked == stream and pos == (EPOCHS, 0) and not inflight

    # experience buffer: one group per answered question, n plans each, trained into a version that exists
    groups = _buffer(state)
    assert acked_tids <= set(groups) <= allowed, f"buffer groups {sorted(groups)} vs answered {sorted(acked_tids)}"
    pointer, metas = _registry(state)
    for g, row in groups.items():
        p = row["payload"]
        assert len(p["completions"]) == n and len(p["rewards"]) == n, f"group {g} is not a group of {n}"
        assert row["status"] in ("pending", "trained", "zero_variance"), f"group {g} is {row['status']}"
        if row["status"] == "trained":
            assert row["trained_into"] in metas, f"group {g} trained into missing version {row['trained_into']}"
    if finished:
        assert all(r["status"] != "pending" for r in groups.values()), "groups left untrained at the end"

    # adapter registry: the versions that serve and continue load, and hold exactly their groups, once each
    for name in metas:
        L.load_weights(state / "adapters" / "planner" / "versions" / name)
    for role in ("current", "promoted"):
        name = pointer[role]
        if name == "v0":
            continue
        assert name in metas, f"pointer {role} names {name}, which has no meta.json"
        if role == "current" and name != pointer["promoted"] and metas[name]["status"] == "candidate":
            continue  # killed before its groups were marked or it was gated: the resume rolls it back
        w = L.load_weights(state / "adapters" / "planner" / "versions" / name)
        assert np.array_equal(w, _expected_weights(name, metas, groups)), \
            f"{role} version {name} does not hold exactly the groups trained into it and its ancestors"
    if finished:
        assert pointer["current"] == pointer["promoted"]

    # trajectory store: the near-duplicate rule keeps one record per question (the kept plan's); one for each
    # answered question, none for a question not reached, each from a plan of an answered (or in-flight) task
    records = _memories(state)
    per_question = Counter(r.question for r in records)
    assert all(c == 1 for c in per_question.values()), f"questions stored twice: {per_question.most_common(2)}"
    for e, i in acked:
        assert L.QUESTIONS[i].question in per_question, f"the memory of {_tid(e, L.QUESTIONS[i].id)} is lost"
    assert {r.task_id.split("/p")[0] for r in records} <= allowed, "memories of a question never answered"
    if finished:
        assert len(records) == len(L.QUESTIONS)

    # Bi-Mem: one exchange (question and answer turn) per answered question
    turns = _turns(state)
    ids = Counter(t.id for t in turns)
    assert all(c == 1 for c in ids.values()), f"conversation turns stored twice: {ids.most_common(3)}"
    for tid in acked_tids:
        assert f"{tid}:q" in ids and f"{tid}:a" in ids, f"the exchange of {tid} is lost from Bi-Mem"
    assert {i.rsplit(":", 1)[0] for i in ids} <= allowed

    # LangGraph checkpoint: each answered question's group run finished on its thread with exactly n rollouts
    threads = _threads(state)
    for tid in acked_tids:
        v = threads.get(tid)
        assert v is not None, f"no checkpointed thread for {tid}"
        assert len(v.get("group", [])) == n and len(v.get("rollouts", [])) == n, \
            f"thread {tid} holds {len(v.get('rollouts', []))} rollouts for a group of {n}"
        assert sorted(r["index"] for r in v["group"]) == list(range(n))
    return {"answered": len(acked), "groups": len(groups), "memories": len(records), "turns": len(turns),
            "versions": len(metas), "trained": sum(r["status"] == "trained" for r in groups.values())}


_USER_CONTEXT = re.compile(r"What we know about the user:\n.*?\n\n(?=Question: )", re.S)


def _split_context(prompt: list[dict]) -> tuple[str, str]:
    """(the planner prompt without what Bi-Mem told about the user, that part)."""
    text = prompt[-1]["content"]
    m = _USER_CONTEXT.search(text)
    return (text, "") if m is None else (text[: m.start()] + text[m.end():], m.group(0))


def _not_its_own_exchange(task: str, prompt: list[dict]) -> None:
    """A run never recalls an exchange of its own question from the conversation memory in the first epoch, where
    no earlier exchange of that question exists (later epochs recall the first epoch's, indistinguishably)."""
    epoch, qid = int(task.split("-")[0][1:]), task.split("-", 1)[1]
    question = next(q.question for q in L.QUESTIONS if q.id == qid)
    if epoch == 0:
        assert question not in _split_context(prompt)[1], f"{task} recalled its own aborted exchange"


def _same_as_uninterrupted(state: Path, ref: Path) -> None:
    """Answers, groups, memories, turns and group runs equal an uninterrupted session's. Bi-Mem's scenes and persona
    are built incrementally, so after a rolled-back exchange is written again they hold the same turns in another
    order: what it tells the planner is compared for not holding the run's own exchange, the rest exactly."""
    last = {(o["epoch"], o["index"]): o for o in _outcomes(state)}
    want = {(o["epoch"], o["index"]): o for o in _outcomes(ref)}
    assert set(last) == set(want)
    for k, o in want.items():
        assert (last[k]["answers"], last[k]["scores"], last[k]["rewards"]) == (o["answers"], o["scores"], o["rewards"])
    got, exp = _buffer(state), _buffer(ref)
    assert set(got) == set(exp)
    for g in exp:
        a, b = got[g]["payload"], exp[g]["payload"]
        assert (_split_context(a["prompt"])[0], a["completions"], a["rewards"], a["columns"]) == \
            (_split_context(b["prompt"])[0], b["completions"], b["rewards"], b["columns"]), \
            f"group {g} differs from the clean run"
        _not_its_own_exchange(g, a["prompt"])

    def mem(path):
        return sorted((r.task_id, r.question, r.plan, r.answer, r.judgement, round(r.q_value, 6))
                      for r in _memories(path))

    assert mem(state) == mem(ref), "the memory differs from an uninterrupted session's"
    assert sorted((t.id, t.text) for t in _turns(state)) == sorted((t.id, t.text) for t in _turns(ref))
    got_t, exp_t = _threads(state), _threads(ref)
    assert set(got_t) == set(exp_t)
    for t, v in exp_t.items():
        assert _split_context(got_t[t]["planner_messages"])[0] == _split_context(v["planner_messages"])[0], \
            f"the redo of {t} planned from other memories than the clean run (its own aborted writes?)"
        _not_its_own_exchange(t, got_t[t]["planner_messages"])
        assert [r["final"]["answer"] for r in got_t[t]["group"]] == [r["final"]["answer"] for r in v["group"]]


# ----------------------------------------------------------------------------- the tests
def test_group_run_redone_on_its_checkpointed_thread_has_n_results(tmp_path):
    """A question redone after a kill reruns its group graph on the same thread: the summed rollouts of the first
    run must not be added to the redo's (a group of 3 came back as 6, then 9)."""
    from miaflow.workflows import ResearchConfig, ResearchWorkflow

    q = L.QUESTIONS[0]
    for thread in (None, "e0-q0"):
        wf = ResearchWorkflow(planner=L.ServingModel(), index=L.Index(), config=ResearchConfig(reflect=False),
                              checkpointer=tmp_path / f"ck-{thread}.sqlite")
        first = wf.run_group(q.question, n=3, gold=q.gold, task_id="e0-q0", thread_id=thread)
        again = wf.run_group(q.question, n=3, gold=q.gold, task_id="e0-q0", thread_id=thread)
        assert len(first) == len(again) == 3
        assert [r.answer for r in again] == [r.answer for r in first]


def test_reopening_a_store_after_another_process_wrote_reads_what_it_wrote(tmp_path):
    """A process that closed its stores and opens them again after another process (a resumed session) wrote to
    them sees those writes: Chroma's per-folder system is released on close, not reused stale (it raised a
    false 'damaged' error, 'Error finding id', for the other process's records)."""
    L.write_elsewhere(tmp_path, 0, 3)
    _child(L.write_elsewhere, tmp_path, 3, 8)
    records = _memories(tmp_path)
    assert sorted(r.task_id for r in records) == sorted(f"t{i}" for i in range(8))
    assert sorted(t.id for t in _turns(tmp_path)) == sorted(f"w{i}" for i in range(8))
    L.write_elsewhere(tmp_path, 8, 9)  # and this process writes on top of them
    assert len(_memories(tmp_path)) == 9 and len(_turns(tmp_path)) == 9


def test_a_redo_does_not_recall_the_conversation_turns_of_its_cut_short_attempt(tmp_path):
    """The exchange a cut-short question wrote into Bi-Mem is rolled back with its trajectory records: the redo
    plans from the same memories as an uninterrupted session (it recalled its own aborted exchange before)."""
    from _stores import bimem_embedder
    from memory_helpers import HashEmbedder

    from miaflow.memory import TrajectoryStore
    from miaflow.memory.bimem import BiMemory
    from miaflow.workflows import ResearchConfig, ResearchWorkflow
    from miaflow.workflows.session import Session, SessionConfig

    qs, cfg = L.QUESTIONS[:2], SessionConfig(group_size=L.N_PLANS)

    def session(root):
        chat = L.ServingModel()
        wf = ResearchWorkflow(planner=chat, index=L.Index(), config=ResearchConfig(reflect=False),
                              store=TrajectoryStore(root / "memory", embedder=HashEmbedder()),
                              conversation_memory=BiMemory(root / "conversations", embedder=bimem_embedder()))
        return Session(L.CheckpointedWorkflow(wf), root / "state", config=cfg), chat

    def plan_prompts(chat):
        return [m[-1]["content"] for m, c in chat.calls if "numbered" in m[-1]["content"]]

    clean, clean_chat = session(tmp_path / "clean")
    clean.run(qs)

    class Cut(Exception):
        pass

    def cut(outcome):  # question 1's group, memories and exchange are stored; the position has not moved
        if outcome.index == 1:
            raise Cut

    cut_short, chat = session(tmp_path / "cut")
    cut_short.on_outcome = cut
    with pytest.raises(Cut):
        cut_short.run(qs)
    conversation = cut_short.workflow.manager.conversation_memory
    assert "e0-q1:a" in {t.id for t in conversation.turns(L.USER)}
    Session(cut_short.workflow, tmp_path / "cut" / "state", config=cfg).run(qs, resume=True)
    assert plan_prompts(chat)[-1] == plan_prompts(clean_chat)[-1], "the redo recalled its own aborted exchange"
    want = clean.workflow.manager.conversation_memory.turns(L.USER)
    assert sorted((t.id, t.text) for t in conversation.turns(L.USER)) == sorted((t.id, t.text) for t in want)


@pytest.mark.slow
def test_sigkill_at_random_points_of_a_learning_session_loses_nothing(tmp_path):
    t0 = time.monotonic()
    ref = tmp_path / "clean"
    assert _life(ref, resume=False) == 0
    assert json.loads((ref / "progress.json").read_text())["epoch"] == EPOCHS
    clean = check(ref, kills=0, finished=True)
    assert clean["versions"] >= 3 and clean["trained"] >= clean["groups"] // 2

    state = tmp_path / "killed"
    rng = random.Random(SEED)
    kills, log = 0, []
    for kill_at, delay in _schedule(rng):
        code = _life(state, resume=(state / "progress.json").exists(), kill_at=kill_at, kill_after=delay)
        assert code in (-signal.SIGKILL, 0), f"the session failed (exit {code}) under kill point {kill_at or delay}"
        if code == -signal.SIGKILL:
            kills += 1
        print(f"kill point {kill_at or delay}: exit {code}", flush=True)
        figures = check(state, kills=kills, finished=code == 0)
        log.append((kill_at or f"after {delay:.1f}s", code, figures))
        if code == 0:
            break
    assert kills >= 6, f"only {kills} kills landed: {log}"
    if not (state / "finished.json").exists():
        assert _life(state, resume=True) == 0
    check(state, kills=kills, finished=True)
    _same_as_uninterrupted(state, ref)
    print(f"\n{kills} kills survived in {time.monotonic() - t0:.0f}s:", *log, sep="\n  ")
