"""A session with learning on whose every store is real, for the kill -9 suite (``test_kill_learning``).

What is real: the research workflow (LangGraph, its SQLite checkpointer, one thread per question), the trajectory
store (Chroma), Bi-Mem (the user ``alice``'s conversation), the experience buffer, the adapter registry, the
training worker with its eval gate (:func:`miaflow.rl.heldback_evaluator` on held-back questions) and the
publisher, wired by :func:`miaflow.rl.attach_learning` as ``build_session`` wires them. What is fake and fast: the
chat model (scripted plans and answers; one plan in three searches the wrong thing, so every group carries GRPO
signal) and the learner, :class:`NumpyLearner`, whose "LoRA" is a vector saved as safetensors: each trained group
adds its own fixed vector, so the weights of a version say exactly which groups went into it.

Kill points: ``MIAFLOW_KILL_AT="point:hit"`` makes the process SIGKILL itself the ``hit``-th time it reaches
``point`` (see :data:`POINTS`); the suite also kills it from outside after a random delay.

Run as a script: ``python _learning_session.py STATE_DIR [resume]``; the forkserver children of the suite call
:func:`run` instead (imports paid once).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
for p in (HERE, HERE.parent / "memory"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import numpy as np  # noqa: E402

from miaflow.rl import ExperienceBuffer  # noqa: E402
from miaflow.rl.grpo import GRPOSettings, StepResult  # noqa: E402
from miaflow.testing import FakeChatModel  # noqa: E402
from miaflow.workflows import ResearchConfig, ResearchWorkflow  # noqa: E402
from miaflow.workflows.session import Session, SessionConfig, SessionQuestion  # noqa: E402

N_PLANS = 3
EPOCHS = 2
USER = "alice"
DIM = 8
POINTS = ("answer", "buffer", "remember", "bimem", "outcome", "step", "save", "trained", "gate", "publish")
"""Where a process can be told to kill itself: mid group graph (an executor call), after the buffer took a group,
after one plan's memory write, after a Bi-Mem write, after the outcome line (before the position moves), inside a
GRPO step, between the adapter files, between a new version and marking its groups trained, mid eval gate, and
while the serving model loads a version."""

DOCS = {
    "band": ("Tinted Windows", "Tinted Windows was a supergroup band. Their first performance was in Tulsa.", "Tulsa"),
    "paris": ("Paris", "Paris is the capital city of France.", "Paris"),
    "nile": ("Nile", "The Nile is the longest river of Africa and flows into the Mediterranean.", "Mediterranean"),
    "gold": ("Gold", "Gold has the chemical symbol Au.", "Au"),
    "everest": ("Everest", "Mount Everest is the highest mountain and lies in Nepal.", "Nepal"),
    "pizza": ("Pizza ovens", "Pizza ovens are wood fired. Naples is the home of pizza.", "Naples"),
    "moon": ("Moon", "Neil Armstrong was the first person to walk on the Moon.", "Neil Armstrong"),
    "violin": ("Violin", "A violin has four strings.", "four"),
}
QUESTIONS = [
    SessionQuestion(id="q0", question="Where was the first performance of the band Tinted Windows?", gold="Tulsa"),
    SessionQuestion(id="q1", question="What is the capital city of France?", gold="Paris"),
    SessionQuestion(id="q2", question="Into which sea does the river Nile flow?", gold="Mediterranean"),
    SessionQuestion(id="q3", question="What is the chemical symbol of gold?", gold="Au"),
    SessionQuestion(id="q4", question="In which country does Mount Everest lie?", gold="Nepal"),
    SessionQuestion(id="q5", question="Who was the first person to walk on the Moon?", gold="Neil Armstrong"),
]
HELDBACK = [SessionQuestion(id="h0", question="How many strings does a violin have?", gold="four")]


# ----------------------------------------------------------------------------- kill points
_hits: Counter[str] = Counter()


def reached(point: str) -> None:
    """SIGKILL this process when ``MIAFLOW_KILL_AT`` names ``point`` and this is its hit."""
    spec = os.environ.get("MIAFLOW_KILL_AT", "")
    if not spec:
        return
    name, _, hit = spec.partition(":")
    if name != point:
        return
    _hits[point] += 1
    if _hits[point] == int(hit or 1):
        os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------------- corpus and model
class Hit:
    def __init__(self, doc_id, title, text, score):
        self.doc_id, self.title, self.text, self.score = doc_id, title, text, score


class Doc:
    def __init__(self, doc_id, title, text):
        self.id, self.title, self.text, self.source = doc_id, title, text, ""


class Index:
    """Word-overlap search over :data:`DOCS` with the CorpusIndex search / open_document API."""

    def search(self, query, k=5):
        words = set(_words(query))
        scored = [(len(words & set(_words(t + " " + x))), d) for d, (t, x, _) in DOCS.items()]
        return [Hit(d, DOCS[d][0], DOCS[d][1], float(s)) for s, d in sorted(scored, reverse=True) if s > 0][:k]

    def open_document(self, doc_id):
        return Doc(doc_id, DOCS[doc_id][0], DOCS[doc_id][1])


def _words(text):
    import re

    stop = {"the", "of", "a", "is", "was", "in", "and", "for", "to", "what", "which", "who", "where", "does", "search"}
    return [w for w in re.findall(r"\w+", text.lower()) if w not in stop]


def weights_digest(w) -> int:
    return zlib.crc32(np.asarray(w, dtype=np.float32).tobytes())


class ServingModel(FakeChatModel):
    """Scripted replies with the adapter surface of LocalChatModel. Plan k of a question searches the wrong thing
    when (crc(question) + k) % 3 == 0 (one plan in three), whatever adapter serves, so an interrupted run and an
    uninterrupted one answer alike. Held-back runs (adapter ``planner-eval``) instead depend on the version
    loaded for evaluation, so the gate promotes some versions and rolls others back."""

    def __init__(self):
        super().__init__(lambda m, c: "ok", name="fake-serving")
        self.adapters = ["planner"]  # attach_learning adds none (that would build a real LoRA config)
        self.loaded: dict[str, int] = {}

    def add_adapter(self, name, config=None):
        self.adapters.append(name)

    def load_adapter(self, name, path):
        reached("publish")
        self.loaded[name] = weights_digest(load_weights(path))  # the version must load, or this raises
        if name not in self.adapters:
            self.adapters.append(name)

    def delete_adapter(self, name):
        self.adapters.remove(name)
        self.loaded.pop(name, None)

    def chat(self, messages, config=None, **overrides):
        from miaflow.llm.base import ChatResult, Completion, as_messages, resolve_config

        cfg = resolve_config(config, overrides)
        msgs = as_messages(messages)
        text = msgs[-1]["content"]
        if "numbered" in text:
            q = text.rsplit("Question:", 1)[-1].strip().splitlines()[0] if "Question:" in text else text
            h = zlib.crc32(q.encode())
            if cfg.adapter == "planner-eval":
                h += self.loaded.get("planner-eval", 0)
            texts = [self._plan(q, (h + k) % 3 == 0) for k in range(cfg.n)]
        elif "Documents:" in text and "<answer>" in text:
            reached("answer")
            q = text.rsplit("Question:", 1)[-1].strip().splitlines()[0]
            shown = [d for d in DOCS if f"[{d}]" in text.split("<<<", 1)[-1]]
            if "pizza" in shown:  # the wrong plan's passage misleads the executor
                shown = ["pizza"]
            best = max(shown, key=lambda d: len(set(_words(q)) & set(_words(DOCS[d][1]))), default=None)
            texts = [f"{DOCS[best][2]} [{best}]" if best else "unknown"] * cfg.n
        elif "Current step:" in text and "search query" in text:
            texts = [text.split("Current step:", 1)[1].splitlines()[0].strip()] * cfg.n
        elif "yes (replan)" in text:
            texts = ["no"] * cfg.n
        elif "score from 0" in text:
            texts = ["8"] * cfg.n
        elif "correct or incorrect" in text:
            texts = ["correct"] * cfg.n
        else:
            texts = ["ok"] * cfg.n
        with self._lock:
            self.calls.append((msgs, cfg))
        return ChatResult(completions=[Completion(text=t, completion_tokens=len(t.split())) for t in texts],
                          prompt_tokens=sum(len(m["content"].split()) for m in msgs), model=self.name,
                          adapter=cfg.adapter)

    @staticmethod
    def _plan(question, wrong):
        topic = "pizza ovens in Naples" if wrong else question.rstrip("?")
        return f"Thinking: one hop.\n1. Search for {topic}\n2. Answer the question"


# ----------------------------------------------------------------------------- the learner
WEIGHTS_FILE = "adapter_model.safetensors"


def group_vector(group_id: str) -> np.ndarray:
    """The fixed update a group makes (so a version's weights name the groups trained into it)."""
    seed = int(hashlib.md5(group_id.encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).integers(1, 1000, DIM).astype(np.float32)


def load_weights(path) -> np.ndarray:
    from safetensors.numpy import load_file

    meta = json.loads((Path(path) / "adapter_config.json").read_text())
    w = load_file(str(Path(path) / WEIGHTS_FILE))["lora"]
    if meta.get("digest") != weights_digest(w):
        raise ValueError(f"adapter {path}: weights do not match their config's digest")
    return w


class NumpyLearner:
    """GRPOLearner's surface (settings, step, save, load) over a vector: a step adds each group's vector."""

    def __init__(self, model_dir, settings=None, *, adapter_path=None, **_):
        self.settings = settings or GRPOSettings(num_generations=N_PLANS)
        self.adapter_path = Path(adapter_path) if adapter_path else None
        self.weights = load_weights(adapter_path) if adapter_path else np.zeros(DIM, dtype=np.float32)

    def step(self, groups):
        t0 = time.perf_counter()
        for g in groups:
            if len(g.completions) != self.settings.num_generations:
                raise ValueError(f"group {g.group_id} has {len(g.completions)} completions")
        reached("step")
        time.sleep(0.02)
        for g in groups:
            self.weights = self.weights + group_vector(g.group_id)
        rewards = [r for g in groups for r in g.rewards]
        return StepResult(groups=[g.group_id for g in groups], seconds=time.perf_counter() - t0, prompt_tokens=1,
                          completion_tokens=len(rewards), loss=float(np.std(rewards)),
                          metrics={"reward": float(np.mean(rewards)), "reward_std": float(np.std(rewards))})

    def save(self, path):
        from safetensors.numpy import save_file

        path = Path(path)
        save_file({"lora": self.weights.copy()}, str(path / WEIGHTS_FILE))
        reached("save")
        (path / "adapter_config.json").write_text(json.dumps({"digest": weights_digest(self.weights)}))
        return path

    def load(self, path):
        self.weights = load_weights(path) if path else np.zeros(DIM, dtype=np.float32)


# ----------------------------------------------------------------------------- wiring
class CheckpointedWorkflow:
    """The research workflow as a session runs it, with each question's group graph on its own checkpointed
    thread (the task id) and the runs written into ``alice``'s conversation memory."""

    def __init__(self, inner):
        self.inner = inner
        self.store = inner.store
        self.manager = inner.manager

    def run_group(self, question, n=4, gold=None, task_id=None):
        return self.inner.run_group(question, n=n, gold=gold, task_id=task_id, thread_id=task_id, user_id=USER)

    def remember(self, result):
        out = self.inner.remember(result)
        reached("remember")
        return out


class KillableBuffer(ExperienceBuffer):
    def add(self, group):
        out = super().add(group)
        reached("buffer")
        return out

    def mark_trained(self, group_ids, version):
        reached("trained")
        return super().mark_trained(group_ids, version)


def embedders():
    from _stores import bimem_embedder
    from memory_helpers import HashEmbedder

    return HashEmbedder(), bimem_embedder()


def build(state: Path) -> Session:
    """Everything ``build_session`` builds for ``--learn``, plus the checkpointer and Bi-Mem."""
    import miaflow.rl.learning as learning
    from miaflow.memory import TrajectoryStore
    from miaflow.memory.bimem import BiMemory
    from miaflow.rl import WorkerConfig, attach_learning, heldback_evaluator
    from miaflow.workflows.session import with_planner_adapter

    learning.GRPOLearner = NumpyLearner  # the one fake of the learning side
    chat = ServingModel()
    traj_embed, bimem_embed = embedders()
    rc = with_planner_adapter(ResearchConfig(reflect=False), "planner")
    store = TrajectoryStore(state / "memory", embedder=traj_embed)
    bimem = BiMemory(state / "conversations", embedder=bimem_embed)
    add_messages = bimem.add_messages

    def add_and_maybe_die(conversation_id, messages):
        out = add_messages(conversation_id, messages)
        reached("bimem")
        return out

    bimem.add_messages = add_and_maybe_die
    inner = ResearchWorkflow(planner=chat, index=Index(), store=store, conversation_memory=bimem, config=rc,
                             checkpointer=state / "checkpoints.sqlite")
    buffer = KillableBuffer(state / "buffer.sqlite")

    def without_memory(adapter):
        return ResearchWorkflow(planner=chat, index=Index(), store=None, config=with_planner_adapter(rc, adapter))

    evaluate = heldback_evaluator(chat, without_memory, HELDBACK)

    def gate(version):
        reached("gate")
        return evaluate(version)

    worker = attach_learning(chat, state, buffer, settings=GRPOSettings(num_generations=N_PLANS),
                             worker_config=WorkerConfig(poll_seconds=0.05, steps_per_version=1),
                             evaluator=gate, model_dir=state)
    registry = worker.roles[0].registry
    sess = Session(CheckpointedWorkflow(inner), state, config=SessionConfig(group_size=N_PLANS, learn=True, epochs=EPOCHS),
                   buffer=buffer, worker=worker, adapter_version=lambda: registry.promoted.name)
    sess.on_outcome = lambda outcome: reached("outcome")
    sess.chat = chat  # for the suite's checks in-process
    return sess


def write_elsewhere(state: str | Path, start: int, stop: int) -> None:
    """Another process's writes (records ``start..stop-1``) into the trajectory store and Bi-Mem under ``state``."""
    from miaflow.memory import Trajectory, TrajectoryStore
    from miaflow.memory.bimem import BiMemory

    traj_embed, bimem_embed = embedders()
    with TrajectoryStore(Path(state) / "memory", embedder=traj_embed) as store:
        store.add_many([Trajectory(task_id=f"t{i}", question=f"question {i} about topic t{i * 7}", answer=f"a{i}",
                                   judgement="correct") for i in range(start, stop)])
    mem = BiMemory(Path(state) / "conversations", embedder=bimem_embed)
    try:
        mem.add_messages(USER, [{"id": f"w{i}", "speaker": USER, "text": f"I collect stamps from country {i}."}
                                for i in range(start, stop)])
    finally:
        mem.close()


def run(state: str | Path, resume: bool, kill_at: str = "") -> None:
    """One process's life: build the session on ``state`` and answer (resuming when asked) until done or killed."""
    if kill_at:
        os.environ["MIAFLOW_KILL_AT"] = kill_at
    state = Path(state)
    state.mkdir(parents=True, exist_ok=True)
    sess = build(state)
    summary = sess.run(QUESTIONS, resume=resume)
    (state / "finished.json").write_text(json.dumps({"pid": os.getpid(), "learning": summary.learning,
                                                     "buffer": summary.buffer}))


if __name__ == "__main__":
    run(sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == "resume")
