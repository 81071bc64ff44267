"""Continual test-time learning sessions: answer a stream of questions and get better while doing it.

For each question: the research workflow recalls memories and samples a group of n plans (one call), the executor
runs each, the judge scores them (gold EM/F1, the LLM evaluators, or the group's majority vote), MIA's planner
reward is computed per plan, every run is written back into the trajectory store (compressed, correct and
incorrect) with its Q-value updates on the memories it used, and the group goes into the durable experience
buffer. With ``learn=True`` a background :class:`~miaflow.rl.TrainingWorker` turns buffered groups into GRPO steps
and eval-gated adapter versions; answering never waits for it.

Durability: the position in the stream is written (atomically) only after a question's group, memories and
outcome line are stored, so a kill at any point redoes at most the question it was on: the buffer keeps the first
copy of its group, utility updates count once per (task, memory), and the outcome log keeps one line per
question. ``resume=True`` continues from the recorded position.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..rl.adapters import write_json_atomic
from ..rl.buffer import ExperienceBuffer, ExperienceGroup
from ..rl.rewards import majority_vote_scores, plan_format_ok, planner_reward

__all__ = [
    "SessionConfig",
    "SessionQuestion",
    "QuestionOutcome",
    "Session",
    "SessionSummary",
    "build_session",
    "load_session_questions",
    "iter_outcomes",
    "planner_completion",
]

log = logging.getLogger(__name__)


@dataclass
class SessionConfig:
    """How a session answers and learns."""

    group_size: int = field(default=4, metadata={"help": "Plans sampled per question (the GRPO group size)."})
    judge: str = field(default="gold", metadata={"help": "'gold' (EM/F1), 'llm' (evaluators, no gold) or 'vote'."})
    epochs: int = field(default=1, metadata={"help": "Passes over the question stream."})
    remember: bool = field(default=True, metadata={"help": "Write trajectories and Q-value updates to memory."})
    learn: bool = field(default=False, metadata={"help": "Run the background GRPO worker."})
    window: int = field(default=10, metadata={"help": "Questions per window in the accuracy report."})
    consolidate_every: int = field(default=0, metadata={"help": "Replay high-utility memories every N questions "
                                                                "(0: never)."})

    def __post_init__(self) -> None:
        if self.group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {self.group_size}")
        if self.judge not in ("gold", "llm", "vote"):
            raise ValueError(f"judge must be 'gold', 'llm' or 'vote', got {self.judge!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.consolidate_every < 0:
            raise ValueError(f"consolidate_every must be >= 0, got {self.consolidate_every}")


@dataclass(kw_only=True, frozen=True, slots=True)
class SessionQuestion:
    """One question of the stream."""

    id: str
    """Stable id (from the file, or its line number)."""
    question: str
    gold: str | None = None
    """Gold answer; needed by the 'gold' judge only (kept for reporting otherwise)."""


@dataclass(kw_only=True, frozen=True, slots=True)
class QuestionOutcome:
    """What happened on one question (one line of ``outcomes.jsonl``)."""

    epoch: int
    index: int
    """Position in the stream (within the epoch)."""
    qid: str
    question: str
    gold: str | None
    answers: list[str]
    """Final answer of each plan."""
    scores: list[float]
    """Judged accuracy of each plan's final answer."""
    rewards: list[float]
    """Planner reward of each plan."""
    accuracy: float
    """Mean score over the group (what a user asking once would get on average)."""
    gold_accuracy: float | None
    """Mean gold-judged correctness when a gold answer is known (for reports under the vote/llm judges)."""
    zero_variance: bool
    """All rewards equal: the group carries no GRPO signal."""
    seconds: float
    """Wall time to answer (the whole group)."""
    training: bool
    """A GRPO step was running when answering started."""
    adapter_version: str | None
    """Planner adapter version serving when answering started."""
    used_memories: int


@dataclass(kw_only=True, frozen=True, slots=True)
class SessionSummary:
    """Figures of a finished (or resumed and finished) session."""

    outcomes: list[QuestionOutcome]
    accuracy_by_epoch: list[float]
    accuracy_by_window: list[float]
    buffer: dict[str, Any]
    adapter_versions: list[dict[str, Any]]


def load_session_questions(path: str | Path, format: str = "auto", limit: int | None = None  # noqa: A002
                           ) -> list[SessionQuestion]:
    """Questions from a miaflow JSONL (``question``, ``answer``/``gold``, ``id``), HotpotQA or MuSiQue file."""
    p = Path(path)
    if format in ("auto", "jsonl") and p.suffix == ".jsonl":
        out = []
        with p.open(encoding="utf-8") as f:
            for i, line in enumerate(f):
                if not line.strip():
                    continue
                rec = json.loads(line)
                if not str(rec.get("question", "")).strip():
                    raise InvalidInputError(f"{p}:{i + 1}: empty question")
                gold = rec.get("answer", rec.get("gold"))
                out.append(SessionQuestion(id=str(rec.get("id") or f"line{i + 1}"), question=str(rec["question"]),
                                           gold=None if gold is None else str(gold)))
                if limit and len(out) >= limit:
                    break
        return out
    from ..tools.qa_formats import load_questions

    qs = load_questions(p, format=format)[: limit or None]
    return [SessionQuestion(id=q.id, question=q.question, gold=q.answer) for q in qs]


def planner_completion(result: Any) -> str:
    """The text the planner model generated for a result: its raw output when the workflow keeps it
    (``plan_raw``), else the parsed numbered plan. GRPO must train on what the model sampled."""
    raw = getattr(result, "plan_raw", None)
    return raw if isinstance(raw, str) and raw.strip() else result.plan


class _Progress:
    """``progress.json`` (position) and ``outcomes.jsonl`` (one fsynced line per answered question)."""

    def __init__(self, root: Path):
        self.root = root
        self.path = root / "progress.json"
        self.log = root / "outcomes.jsonl"

    def position(self) -> tuple[int, int]:
        if not self.path.exists():
            return 0, 0
        data = json.loads(self.path.read_text())
        return int(data["epoch"]), int(data["index"])

    def save(self, epoch: int, index: int, **extra: Any) -> None:
        write_json_atomic(self.path, {"epoch": epoch, "index": index, "updated_at": time.time(), **extra})

    def append(self, outcome: QuestionOutcome) -> None:
        with self.log.open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(outcome), default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def outcomes(self) -> list[QuestionOutcome]:
        if not self.log.exists():
            return []
        seen: dict[tuple[int, int], QuestionOutcome] = {}
        for line in self.log.read_text(encoding="utf-8").splitlines():
            try:
                o = QuestionOutcome(**json.loads(line))
            except (ValueError, TypeError):  # a torn last line after a kill
                continue
            seen[(o.epoch, o.index)] = o  # a redone question keeps its last outcome
        return [seen[k] for k in sorted(seen)]


class Session:
    """Runs a question stream through ``workflow`` (a ResearchWorkflow or anything with ``run_group`` and
    ``remember``), keeping every piece of state under ``state_dir``.

    ``worker`` is a :class:`~miaflow.rl.TrainingWorker` (learning) or None; ``adapter_version()`` names the planner
    version serving (for the outcome log); ``consolidator`` replays high-utility memories as training groups.
    """

    def __init__(self, workflow: Any, state_dir: str | Path, *, config: SessionConfig | None = None,
                 buffer: ExperienceBuffer | None = None, worker: Any = None,
                 adapter_version: Callable[[], str | None] | None = None, consolidator: Any = None,
                 on_outcome: Callable[[QuestionOutcome], None] | None = None):
        self.workflow = workflow
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config = config or SessionConfig()
        self.buffer = buffer or ExperienceBuffer(self.state_dir / "buffer.sqlite")
        self.worker = worker
        self.adapter_version = adapter_version or (lambda: None)
        self.consolidator = consolidator
        self.on_outcome = on_outcome
        self.progress = _Progress(self.state_dir)

    # ----- one question -----
    def _judge(self, q: SessionQuestion, results: list[Any]) -> tuple[list[float], list[float]]:
        if self.config.judge == "vote":
            return (majority_vote_scores([r.answer for r in results]),
                    majority_vote_scores([r.first_answer for r in results]))
        return [float(r.score) for r in results], [float(r.first_score) for r in results]

    def answer(self, q: SessionQuestion, *, epoch: int = 0, index: int = 0) -> QuestionOutcome:
        """Answer one question with a group of plans, score, remember, and buffer the group."""
        cfg = self.config
        training = bool(self.worker is not None and self.worker.training.is_set())
        version = self.adapter_version()
        task_id = f"e{epoch}-{q.id}"
        t0 = time.perf_counter()
        gold = q.gold if cfg.judge == "gold" else None
        results = self.workflow.run_group(q.question, n=cfg.group_size, gold=gold, task_id=task_id)
        seconds = time.perf_counter() - t0
        if not results:
            raise InvalidInputError(f"the workflow returned no results for {q.id}")
        scores, firsts = self._judge(q, results)
        plans = [planner_completion(r) for r in results]
        fmt = [bool(not getattr(r, "plan_fallback", False) and plan_format_ok(p)) for r, p in zip(results, plans,
                                                                                                  strict=True)]
        replanned = [bool(r.replan_decision) for r in results]
        rewards = planner_reward(plans, accuracy=scores, first_accuracy=firsts, replanned=replanned, format_ok=fmt)
        group = ExperienceGroup(
            group_id=f"e{epoch}-{q.id}", role="planner", prompt=list(results[0].planner_messages),
            completions=plans, rewards=rewards,
            columns={"accuracy": scores, "first_accuracy": firsts, "replanned": replanned, "format_ok": fmt},
            metadata={"question": q.question, "task_id": task_id, "adapter_version": version, "judge": cfg.judge},
        )
        if len(results) > 1 and group.prompt:
            self.buffer.add(group)
        if cfg.remember and hasattr(self.workflow, "remember"):
            for k, (r, s) in enumerate(zip(results, scores, strict=True)):
                label = "correct" if s >= 0.5 else "incorrect"
                if cfg.judge == "vote" or r.judgement == "unknown":
                    r = replace(r, judgement=label, score=s)
                # each plan is its own use of the recalled memories (own task id, so each update counts once)
                self.workflow.remember(replace(r, task_id=f"{task_id}/p{k}"))
        gold_acc = None
        if q.gold is not None:
            from .._text import token_f1

            gold_acc = sum(float(token_f1(r.answer, q.gold) >= 0.5) for r in results) / len(results)
        outcome = QuestionOutcome(
            epoch=epoch, index=index, qid=q.id, question=q.question, gold=q.gold, answers=[r.answer for r in results],
            scores=scores, rewards=rewards, accuracy=sum(scores) / len(scores), gold_accuracy=gold_acc,
            zero_variance=not group.has_signal, seconds=seconds, training=training, adapter_version=version,
            used_memories=len(results[0].used_memory_ids),
        )
        self.progress.append(outcome)
        if self.worker is not None:
            self.worker.notify()
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    # ----- the stream -----
    def run(self, questions: Sequence[SessionQuestion], *, resume: bool = False) -> SessionSummary:
        """Answer every question ``config.epochs`` times; with ``resume`` start where the last run stopped."""
        questions = list(questions)
        if not questions:
            raise InvalidInputError("no questions to answer")
        epoch0, index0 = self.progress.position() if resume else (0, 0)
        if not resume and self.progress.path.exists():
            raise InvalidInputError(f"{self.state_dir} holds a session already: pass resume=True (--resume) to "
                                    "continue it, or use another state folder")
        if self.worker is not None and self.config.learn:
            self.worker.start()
        done = 0
        try:
            for epoch in range(epoch0, self.config.epochs):
                start = index0 if epoch == epoch0 else 0
                for index in range(start, len(questions)):
                    self.answer(questions[index], epoch=epoch, index=index)
                    done += 1
                    self.progress.save(epoch, index + 1, questions=len(questions))
                    if self.consolidator is not None and self.config.consolidate_every and \
                            done % self.config.consolidate_every == 0:
                        self.consolidator.run(self.buffer, tag=f"e{epoch}-i{index}")
                self.progress.save(epoch + 1, 0, questions=len(questions))
        finally:
            if self.worker is not None and self.config.learn:
                self.worker.stop(timeout=None)
        return self.summary()

    def summary(self) -> SessionSummary:
        outs = self.progress.outcomes()
        by_epoch: dict[int, list[float]] = {}
        for o in outs:
            by_epoch.setdefault(o.epoch, []).append(o.accuracy)
        flat = [o.accuracy for o in outs]
        w = self.config.window
        windows = [sum(flat[i:i + w]) / len(flat[i:i + w]) for i in range(0, len(flat), w)]
        versions: list[dict[str, Any]] = []
        if self.worker is not None:
            for rt in self.worker.roles:
                versions += [{"role": rt.role, "name": v.name, "status": v.status, **v.metrics}
                             for v in rt.registry.versions()]
        st = self.buffer.stats()
        return SessionSummary(
            outcomes=outs, accuracy_by_epoch=[sum(v) / len(v) for _, v in sorted(by_epoch.items())],
            accuracy_by_window=windows,
            buffer={"total": st.total, "pending": st.pending, "trained": st.trained,
                    "zero_variance": st.zero_variance, "zero_variance_share": st.zero_variance_share},
            adapter_versions=versions,
        )


def iter_outcomes(state_dir: str | Path) -> Iterable[QuestionOutcome]:
    """The outcome log of a session folder (one per answered question)."""
    return _Progress(Path(state_dir)).outcomes()


def build_session(corpus: Any, state_dir: str | Path, *, config: SessionConfig | None = None, chat: Any = None,
                  index: Any = None, use_memory: bool = True, heldback: Sequence[SessionQuestion] = (),
                  research_config: Any = None, grpo: Any = None, worker_config: Any = None,
                  consolidation: Any = None) -> Session:
    """Wire a session from parts: the serving model (default: the bundled local model), the corpus index, a
    trajectory store under ``state_dir/memory`` (``use_memory``), the judge, and with ``config.learn`` the GRPO
    worker gated on ``heldback`` questions (no gate when empty: every version is promoted).
    """
    from ..agents.judge import JudgeConfig
    from ..rl.buffer import ExperienceBuffer
    from .research import ResearchWorkflow
    from .state import ResearchConfig

    config = config or SessionConfig()
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    if chat is None:
        from ..llm import LocalChatModel

        chat = LocalChatModel()
    if index is None:
        from ..tools import CorpusIndex

        index = CorpusIndex.open(corpus, index_dir=state / "index")
    store = None
    if use_memory:
        from ..memory import TrajectoryStore

        store = TrajectoryStore(state / "memory")
    rc = research_config or ResearchConfig()
    judge = replace(rc.judge, without_gold="evaluators" if config.judge == "llm" else "none") \
        if isinstance(rc.judge, JudgeConfig) else rc.judge
    rc = replace(rc, judge=judge, planner_adapter="planner" if config.learn else rc.planner_adapter)
    workflow = ResearchWorkflow(planner=chat, index=index, store=store, config=rc)
    buffer = ExperienceBuffer(state / "buffer.sqlite")

    def without_memory(adapter: str | None) -> Any:
        return ResearchWorkflow(planner=chat, index=index, store=None, config=replace(rc, planner_adapter=adapter))

    worker = None
    version: Callable[[], str | None] = lambda: None  # noqa: E731
    if config.learn:
        from ..rl.learning import attach_learning, heldback_evaluator

        evaluator = heldback_evaluator(chat, without_memory, list(heldback)) if heldback else None
        worker = attach_learning(chat, state, buffer, settings=grpo, worker_config=worker_config,
                                 evaluator=evaluator)
        registry = worker.roles[0].registry
        version = lambda: registry.promoted.name  # noqa: E731
    consolidator = None
    if config.consolidate_every and store is not None:
        from ..rl.consolidation import Consolidator

        consolidator = Consolidator(store, without_memory(rc.planner_adapter), state / "consolidation.json",
                                    config=consolidation)
    write_json_atomic(state / "session.json", {"config": asdict(config), "use_memory": use_memory,
                                               "heldback": [q.id for q in heldback], "model": getattr(chat, "name", "")})
    return Session(workflow, state, config=config, buffer=buffer, worker=worker, adapter_version=version,
                   consolidator=consolidator)
