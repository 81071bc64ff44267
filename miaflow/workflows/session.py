"""Continual test-time learning sessions: answer a stream of questions and get better while doing it.

For each question: the research workflow recalls memories and samples a group of n plans (one call), the executor
runs each (a planner group), or it plans once and samples n answers to that plan's evidence in one batched call
(an executor group, :mod:`miaflow.rl.executor_group`); ``SessionConfig.group_role`` picks the kind, and
``"alternate"`` switches from question to question (MIA's alternation, so both roles train at test time). The
judge scores them (gold EM/F1, the LLM evaluators, or the group's majority vote), MIA's planner
reward is computed per plan, every run is written back into the trajectory store (compressed, correct and
incorrect) with its Q-value updates on the memories it used, and the group goes into the durable experience
buffer. With ``learn=True`` a background :class:`~miaflow.rl.TrainingWorker` turns buffered groups into GRPO steps
and eval-gated adapter versions of each role whose groups are built (the executor's adapter is versioned, gated
and promoted like the planner's); answering never waits for it. Both roles start from the shipped trained adapters
of the bundled model when it serves them. Each group records the version of its role's adapter that sampled it;
the trainer drops groups more than ``worker.max_staleness`` promoted versions old.

Every setting lives in one frozen :class:`SessionSpec` (session, research, GRPO, worker and consolidation
settings), which derives the values those configs share (the group size, the planner adapter's name, the judge
without gold) and refuses contradictions. The per-question work (run the group, judge, reward, buffer, remember)
is :mod:`miaflow.rl.loop`'s.

Durability: the position in the stream is written (atomically) only after a question's group, memories and
outcome line are stored, so a kill at any point redoes at most the question it was on: the buffer keeps the first
copy of its group, utility updates count once per (task, memory), and the outcome log keeps one line per
question. Before a question is answered its task id goes into ``progress.json``; a resume deletes the memories
that cut-short attempt wrote, so the redo does not recall its own aborted runs. ``resume=True`` continues from the
recorded position, and only on the same question list (a fingerprint of it is stored); ``restart=True`` starts
the stream over, keeping memory, buffer and adapters (the old outcome log is kept beside).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .._io import atomic_write_json
from ..errors import InvalidInputError
from ..rl.buffer import ExperienceBuffer
from ..rl.consolidation import ConsolidationConfig
from ..rl.grpo import GRPOSettings
from ..rl.loop import buffer_rollout, forget_runs, planner_completion, remember_rollout, run_group
from ..rl.worker import WorkerConfig
from .state import ResearchConfig

__all__ = [
    "SessionConfig",
    "SessionSpec",
    "SessionQuestion",
    "QuestionOutcome",
    "Session",
    "SessionSummary",
    "build_session",
    "load_session_questions",
    "iter_outcomes",
    "planner_completion",
    "questions_fingerprint",
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
    finish_training: bool = field(default=True, metadata={"help": "With learn: after the last question, run the "
                                                                   "GRPO steps still pending in the buffer."})
    group_role: str = field(default="planner", metadata={
        "help": "Which role a question's group varies and trains: 'planner' (n plans, each executed), 'executor' "
                "(one plan, n sampled answers in one batched call) or 'alternate' (planner and executor groups "
                "in turn, question by question)."})
    executor_temperature: float = field(default=0.8, metadata={
        "help": "Sampling temperature of an executor group's n answers."})

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
        if self.group_role not in GROUP_ROLES:
            raise ValueError(f"group_role must be one of {', '.join(GROUP_ROLES)}, got {self.group_role!r}")
        if self.executor_temperature <= 0:
            raise ValueError(f"executor_temperature must be > 0 (n equal greedy answers carry no signal), got "
                             f"{self.executor_temperature}")

    def role_for(self, epoch: int, index: int) -> str:
        """The role whose group question ``index`` of ``epoch`` builds ('alternate': the planner on even
        ``epoch + index``, so over two epochs every question gets both kinds)."""
        if self.group_role != "alternate":
            return self.group_role
        return "planner" if (epoch + index) % 2 == 0 else "executor"


GROUP_ROLES = ("planner", "executor", "alternate")
"""The values of ``SessionConfig.group_role``."""

PLANNER_ADAPTER = "planner"
"""Name the trained planner adapter serves under when the research settings name none."""
EXECUTOR_ADAPTER = "executor"
"""Name the trained executor adapter serves under when the research settings name none."""


def with_planner_adapter(research: ResearchConfig, name: str | None) -> ResearchConfig:
    """``research`` with the planner adapter set in both places that name it (run and planner settings)."""
    return replace(research, planner_adapter=name, planner=replace(research.planner, adapter=name))


@dataclass(frozen=True, kw_only=True)
class SessionSpec:
    """Every setting of a session, in one frozen object; each shared value has one owner.

    ``__post_init__`` derives what several configs share and rejects settings that contradict each other (the
    message names both fields):

    - the group size is ``session.group_size``; it becomes ``grpo.num_generations`` (GRPO settings are created
      when learning and none are given) and ``consolidation.group_size``;
    - the planner adapter has one name, in ``research.planner_adapter`` and ``research.planner.adapter`` alike
      (``"planner"`` when learning and neither names one);
    - the judge without gold follows ``session.judge`` ('llm': the evaluators; 'gold' and 'vote': none);
    - when learning with executor groups (``session.group_role`` 'executor' or 'alternate'): ``executor_grpo``
      (derived from ``grpo`` with role 'executor' when not given), the executor adapter's one name
      (``research.executor_adapter``, ``"executor"`` when none), and with 'alternate' the worker alternates roles.
    """

    session: SessionConfig = field(default_factory=SessionConfig, metadata={"help": "How the session answers."})
    research: ResearchConfig = field(default_factory=ResearchConfig, metadata={"help": "Research run settings."})
    grpo: GRPOSettings | None = field(default=None, metadata={"help": "GRPO settings (None: derived when "
                                                                       "learning)."})
    worker: WorkerConfig = field(default_factory=WorkerConfig, metadata={"help": "Background trainer pacing."})
    consolidation: ConsolidationConfig = field(default_factory=ConsolidationConfig,
                                               metadata={"help": "Memory replay settings."})
    executor_grpo: GRPOSettings | None = field(default=None, metadata={
        "help": "The executor's GRPO settings (None: derived from grpo when learning with executor groups)."})
    use_memory: bool = field(default=True, metadata={"help": "Keep a trajectory store under the state folder."})

    def __post_init__(self) -> None:
        s = self.session
        n = s.group_size
        grpo = self.grpo
        if s.learn and n < 2:
            raise ValueError(f"session.group_size={n} with session.learn=True: GRPO (grpo.num_generations) needs "
                             "at least 2 plans per question")
        if grpo is not None:
            if grpo.num_generations != n:
                raise ValueError(f"grpo.num_generations={grpo.num_generations} contradicts session.group_size={n}: "
                                 "both are the plans per question; set them alike or pass grpo=None to derive it")
            if grpo.role != "planner":
                raise ValueError(f"grpo.role={grpo.role!r}: a session trains the planner")
        elif s.learn:
            grpo = GRPOSettings(num_generations=n)
        cons = self.consolidation
        if cons.group_size is None:
            cons = replace(cons, group_size=n)
        elif cons.group_size != n:
            raise ValueError(f"consolidation.group_size={cons.group_size} contradicts session.group_size={n}: "
                             "replayed groups train the same planner; leave consolidation.group_size at None")
        if not self.use_memory and s.consolidate_every:
            raise ValueError(f"session.consolidate_every={s.consolidate_every} needs the trajectory memory, but "
                             "use_memory=False")
        if not self.use_memory and s.remember:
            raise ValueError("session.remember=True contradicts use_memory=False: there is no memory to write to")
        r = self.research
        a, b = r.planner_adapter, r.planner.adapter
        if a is not None and b is not None and a != b:
            raise ValueError(f"research.planner_adapter={a!r} contradicts research.planner.adapter={b!r}: the "
                             "planner has one adapter")
        name = a if a is not None else b
        if s.learn and name is None:
            name = PLANNER_ADAPTER
        r = with_planner_adapter(r, name)
        r = replace(r, judge=replace(r.judge, without_gold="evaluators" if s.judge == "llm" else "none"))
        egrpo = self.executor_grpo
        worker = self.worker
        if s.learn and s.group_role != "planner":
            assert grpo is not None
            if egrpo is None:
                egrpo = replace(grpo, role="executor",
                                max_completion_length=max(2 * r.executor.answer_max_tokens, 32))
            elif egrpo.role != "executor" or egrpo.num_generations != n:
                raise ValueError(f"executor_grpo (role={egrpo.role!r}, num_generations={egrpo.num_generations}) "
                                 f"contradicts session.group_size={n}: it trains the executor on groups of n answers")
            if r.executor_adapter is None:
                r = replace(r, executor_adapter=EXECUTOR_ADAPTER)
            if s.group_role == "alternate" and not worker.alternate:
                worker = replace(worker, alternate=True)
        elif egrpo is not None:
            raise ValueError(f"executor_grpo is set but session.group_role={s.group_role!r} with "
                             f"learn={s.learn}: no executor groups are trained")
        object.__setattr__(self, "executor_grpo", egrpo)
        object.__setattr__(self, "worker", worker)
        object.__setattr__(self, "grpo", grpo)
        object.__setattr__(self, "consolidation", cons)
        object.__setattr__(self, "research", r)

    @property
    def planner_adapter(self) -> str | None:
        """The planner adapter's one name (None: the base model)."""
        return self.research.planner_adapter

    @classmethod
    def from_parts(cls, *, config: SessionConfig | None = None, research_config: ResearchConfig | None = None,
                   grpo: GRPOSettings | None = None, worker_config: WorkerConfig | None = None,
                   consolidation: ConsolidationConfig | None = None, use_memory: bool = True) -> SessionSpec:
        """A spec from the separate settings :func:`build_session` used to take (a session without memory
        remembers nothing, as before)."""
        config = config or SessionConfig()
        if not use_memory and config.remember:
            config = replace(config, remember=False)
        return cls(session=config, research=research_config or ResearchConfig(), grpo=grpo,
                   worker=worker_config or WorkerConfig(), consolidation=consolidation or ConsolidationConfig(),
                   use_memory=use_memory)


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
    """Version of the group's role's adapter serving when answering started (the one that sampled it)."""
    used_memories: int
    role: str = "planner"
    """Which role the group varied: 'planner' (n plans) or 'executor' (one plan, n sampled answers); ``rewards``
    are that role's."""


@dataclass(kw_only=True, frozen=True, slots=True)
class SessionSummary:
    """Figures of a finished (or resumed and finished) session."""

    outcomes: list[QuestionOutcome]
    accuracy_by_epoch: list[float]
    accuracy_by_window: list[float]
    buffer: dict[str, Any]
    adapter_versions: list[dict[str, Any]]
    learning: dict[str, Any] | None = None
    """The trainer's status with learning on (steps, promoted, errors, ``gave_up`` and the last error)."""


def load_session_questions(path: str | Path, format: str = "auto", limit: int | None = None  # noqa: A002
                           ) -> list[SessionQuestion]:
    """Questions from a miaflow JSONL (``question``, ``answer``/``gold``, ``id``), HotpotQA or MuSiQue file."""
    from ..tools.qa_formats import question_lines

    p = Path(path)
    if format in ("auto", "jsonl") and p.suffix == ".jsonl":
        out = []
        for where, rec in question_lines(p):  # bad lines name the file and their true line
            if not str(rec.get("question", "")).strip():
                raise InvalidInputError(f"{where}: empty question")
            gold = rec.get("answer", rec.get("gold"))
            line = where.rsplit(":", 1)[1]
            out.append(SessionQuestion(id=str(rec.get("id") or f"line{line}"), question=str(rec["question"]),
                                       gold=None if gold is None else str(gold)))
            if limit and len(out) >= limit:
                break
        return out
    from ..tools.qa_formats import load_questions

    qs = load_questions(p, format=format)[: limit or None]
    return [SessionQuestion(id=q.id, question=q.question, gold=q.answer) for q in qs]


def questions_fingerprint(questions: Sequence[SessionQuestion]) -> str:
    """A short digest of a question list (ids, questions and gold answers, in order).

    >>> questions_fingerprint([SessionQuestion(id="a", question="Q?")]) == questions_fingerprint(
    ...     [SessionQuestion(id="a", question="Q?")])
    True
    """
    h = hashlib.sha256()
    for q in questions:
        h.update(json.dumps([q.id, q.question, q.gold], ensure_ascii=False).encode("utf-8") + b"\n")
    return h.hexdigest()[:20]


class _Progress:
    """``progress.json`` (position, question-list fingerprint, run number, the question in flight) and
    ``outcomes.jsonl`` (one fsynced line per answered question)."""

    def __init__(self, root: Path):
        self.root = root
        self.path = root / "progress.json"
        self.log = root / "outcomes.jsonl"

    def read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InvalidInputError(f"{self.path} is unreadable ({e}); restore it or start over with --restart"
                                    ) from None
        if not isinstance(data, dict) or "epoch" not in data or "index" not in data:
            raise InvalidInputError(f"{self.path} is not a session progress file; start over with --restart")
        return data

    def position(self) -> tuple[int, int]:
        data = self.read()
        return (int(data["epoch"]), int(data["index"])) if data else (0, 0)

    def save(self, epoch: int, index: int, **extra: Any) -> None:
        atomic_write_json(self.path, {"epoch": epoch, "index": index, "updated_at": time.time(), **extra}, indent=1)

    def archive(self, run: int) -> None:
        """Keep the outcome log of run ``run`` beside (``outcomes-run{run}.jsonl``) before starting over."""
        if self.log.exists():
            os.replace(self.log, self.root / f"outcomes-run{run}.jsonl")

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
    version serving and ``executor_version()`` the executor's (recorded with each group and in the outcome log);
    ``consolidator`` replays high-utility memories as training groups.
    """

    def __init__(self, workflow: Any, state_dir: str | Path, *, config: SessionConfig | None = None,
                 buffer: ExperienceBuffer | None = None, worker: Any = None,
                 adapter_version: Callable[[], str | None] | None = None, consolidator: Any = None,
                 on_outcome: Callable[[QuestionOutcome], None] | None = None,
                 executor_version: Callable[[], str | None] | None = None):
        self.workflow = workflow
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config = config or SessionConfig()
        self.buffer = buffer or ExperienceBuffer(self.state_dir / "buffer.sqlite")
        self.worker = worker
        self.adapter_version = adapter_version or (lambda: None)
        self.executor_version = executor_version or (lambda: None)
        self.consolidator = consolidator
        self.on_outcome = on_outcome
        self.progress = _Progress(self.state_dir)
        self._warned = False

    # ----- one question -----
    def task_id(self, q: SessionQuestion, epoch: int = 0, run: int = 0) -> str:
        """Task (and buffer group) id of a question in an epoch; runs after a restart get their own ids."""
        return f"e{epoch}-{q.id}" if run == 0 else f"r{run}-e{epoch}-{q.id}"

    def answer(self, q: SessionQuestion, *, epoch: int = 0, index: int = 0, run: int = 0) -> QuestionOutcome:
        """Answer one question with a group (of plans, or of answers to one plan), score, remember, and buffer
        the group."""
        cfg = self.config
        training = bool(self.worker is not None and self.worker.training.is_set())
        role = cfg.role_for(epoch, index)
        version = self.adapter_version() if role == "planner" else self.executor_version()
        task_id = self.task_id(q, epoch, run)
        roll = run_group(self.workflow, q.question, cfg.group_size, gold=q.gold, judge_mode=cfg.judge,
                         task_id=task_id, adapter_version=version, role=role,
                         temperature=cfg.executor_temperature)
        buffer_rollout(self.buffer, roll, group_id=task_id)
        if cfg.remember:
            remember_rollout(self.workflow, roll)
        gold_acc = None
        if q.gold is not None:
            from .._text import token_f1

            gold_acc = sum(float(token_f1(a, q.gold) >= 0.5) for a in roll.answers) / roll.n
        outcome = QuestionOutcome(
            epoch=epoch, index=index, qid=q.id, question=q.question, gold=q.gold, answers=list(roll.answers),
            scores=list(roll.scores), rewards=roll.rewards, accuracy=roll.accuracy,
            gold_accuracy=gold_acc, zero_variance=not roll.has_signal, seconds=roll.seconds, training=training,
            adapter_version=version, used_memories=len(roll.used_memory_ids), role=role,
        )
        self.progress.append(outcome)
        if self.worker is not None:
            self.worker.notify()
            if self.worker.gave_up and not self._warned:
                self._warned = True
                log.warning("the GRPO trainer gave up (%s); this session goes on answering without learning",
                            self.worker.status()["error"])
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    # ----- the stream -----
    def _start(self, questions: Sequence[SessionQuestion], resume: bool, restart: bool) -> tuple[int, int, int]:
        """(epoch, index, run) to start from; checks the stored question list and rolls back a cut-short
        question's memory writes."""
        data = self.progress.read()
        fp = questions_fingerprint(questions)
        if data and restart:
            run = int(data.get("run", 0)) + 1
            self.progress.archive(run - 1)
            self.progress.save(0, 0, questions=len(questions), fingerprint=fp, run=run)
            return 0, 0, run
        if data and not resume:
            raise InvalidInputError(f"{self.state_dir} holds a session already: pass resume=True (--resume) to "
                                    "continue it, restart=True (--restart) to start the stream over, or use "
                                    "another state folder")
        if not data:
            return 0, 0, 0
        stored = data.get("fingerprint")
        if stored is not None and stored != fp:
            raise InvalidInputError(
                f"{self.state_dir} holds a session on a different question list ({data.get('questions')} questions, "
                f"fingerprint {stored}; given {len(questions)} questions, fingerprint {fp}): resume with the same "
                "questions, or pass restart=True (--restart) to start over on these")
        run = int(data.get("run", 0))
        inflight = data.get("inflight")
        if isinstance(inflight, dict) and inflight.get("task_id"):
            gone = forget_runs(self.workflow, str(inflight["task_id"]), int(inflight.get("plans", 0)))
            if gone:
                log.info("removed %d memories written by the cut-short attempt at %s", gone, inflight["task_id"])
        return int(data["epoch"]), int(data["index"]), run

    def run(self, questions: Sequence[SessionQuestion], *, resume: bool = False, restart: bool = False
            ) -> SessionSummary:
        """Answer every question ``config.epochs`` times. ``resume`` starts where the last run stopped (same
        question list only); ``restart`` starts the stream over in a session folder that holds one."""
        questions = list(questions)
        if not questions:
            raise InvalidInputError("no questions to answer")
        epoch0, index0, run = self._start(questions, resume, restart)
        meta = {"questions": len(questions), "fingerprint": questions_fingerprint(questions), "run": run}
        learning = self.worker is not None and self.config.learn
        if learning:
            self.worker.start()
        done = 0
        try:
            for epoch in range(epoch0, self.config.epochs):
                start = index0 if epoch == epoch0 else 0
                for index in range(start, len(questions)):
                    q = questions[index]
                    self.progress.save(epoch, index, **meta, inflight={"task_id": self.task_id(q, epoch, run),
                                                                       "plans": self.config.group_size})
                    self.answer(q, epoch=epoch, index=index, run=run)
                    done += 1
                    self.progress.save(epoch, index + 1, **meta)
                    if self.consolidator is not None and self.config.consolidate_every and \
                            done % self.config.consolidate_every == 0:
                        self.consolidator.run(self.buffer, tag=f"e{epoch}-i{index}" if run == 0 else
                                              f"r{run}-e{epoch}-i{index}")
                self.progress.save(epoch + 1, 0, **meta)
        finally:
            if learning:
                self.worker.stop(timeout=None)
        if learning and self.config.finish_training and not self.worker.gave_up:
            try:
                self.worker.drain()
            except Exception as e:  # answering is done and stored; report the failure, do not lose the summary
                log.warning("the GRPO steps after the last question failed: %s: %s", type(e).__name__, e)
                self.worker.error = e
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
                    "zero_variance": st.zero_variance, "zero_variance_share": st.zero_variance_share,
                    "stale": st.stale},
            adapter_versions=versions,
            learning=self.worker.status() if self.worker is not None else None,
        )


def iter_outcomes(state_dir: str | Path) -> Iterable[QuestionOutcome]:
    """The outcome log of a session folder (one per answered question)."""
    return _Progress(Path(state_dir)).outcomes()


def build_session(corpus: Any, state_dir: str | Path, spec: SessionSpec | None = None, *, chat: Any = None,
                  index: Any = None, heldback: Sequence[SessionQuestion] = (), config: SessionConfig | None = None,
                  use_memory: bool | None = None, research_config: ResearchConfig | None = None,
                  grpo: GRPOSettings | None = None, worker_config: WorkerConfig | None = None,
                  consolidation: ConsolidationConfig | None = None, model_dir: str | Path | None = None,
                  publisher: Any = None, eval_publisher: Any = None) -> Session:
    """Wire a session from ``spec``: the serving model (default: the bundled local model), the corpus index, a
    trajectory store under ``state_dir/memory`` (``spec.use_memory``), the judge, and with ``spec.session.learn``
    the GRPO worker gated on ``heldback`` questions (no gate when empty: every version is promoted).

    The separate settings (``config``, ``use_memory``, ``research_config``, ``grpo``, ``worker_config``,
    ``consolidation``) are the older way to say the same; they are combined with :meth:`SessionSpec.from_parts`
    and cannot be mixed with ``spec``.

    A served ``chat`` (an OpenAI-compatible server) learns with ``model_dir`` (the same base model, trained here),
    ``publisher`` (puts promoted versions into the server) and ``eval_publisher`` (loads versions to gate).
    """
    from .research import ResearchWorkflow

    parts = {"config": config, "use_memory": use_memory, "research_config": research_config, "grpo": grpo,
             "worker_config": worker_config, "consolidation": consolidation}
    given = [k for k, v in parts.items() if v is not None]
    if spec is None:
        spec = SessionSpec.from_parts(config=config, research_config=research_config, grpo=grpo,
                                      worker_config=worker_config, consolidation=consolidation,
                                      use_memory=True if use_memory is None else use_memory)
    elif given:
        raise ValueError(f"pass either spec or the separate settings, not both (got spec and {', '.join(given)})")
    cfg, rc = spec.session, spec.research
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    if chat is None:
        from ..llm import LocalChatModel

        chat = LocalChatModel()
    if index is None:
        from ..tools import CorpusIndex

        index = CorpusIndex.open(corpus, index_dir=state / "index")
    store = None
    if spec.use_memory:
        from ..memory import TrajectoryStore

        store = TrajectoryStore(state / "memory")
    workflow = ResearchWorkflow(planner=chat, index=index, store=store, config=rc)
    buffer = ExperienceBuffer(state / "buffer.sqlite")

    def without_memory(adapter: str | None) -> Any:
        return ResearchWorkflow(planner=chat, index=index, store=None, config=with_planner_adapter(rc, adapter))

    def executor_without_memory(adapter: str | None) -> Any:
        return ResearchWorkflow(planner=chat, index=index, store=None, config=replace(rc, executor_adapter=adapter))

    worker = None
    version: Callable[[], str | None] = lambda: None  # noqa: E731
    executor_version: Callable[[], str | None] = lambda: None  # noqa: E731
    if cfg.learn:
        from ..rl.learning import attach_learning, heldback_evaluator, start_adapter

        starts = {r: start_adapter(chat, r) for r in ("planner", "executor")}
        evaluator = heldback_evaluator(chat, without_memory, list(heldback), publisher=eval_publisher,
                                       base_path=starts["planner"]) if heldback else None
        exec_eval = heldback_evaluator(chat, executor_without_memory, list(heldback), eval_adapter="executor-eval",
                                       base_path=starts["executor"]) if heldback and spec.executor_grpo else None
        worker = attach_learning(chat, state, buffer, settings=spec.grpo, worker_config=spec.worker,
                                 evaluator=evaluator, adapter_name=spec.planner_adapter or PLANNER_ADAPTER,
                                 model_dir=model_dir, publisher=publisher, executor=spec.executor_grpo,
                                 executor_adapter=rc.executor_adapter or EXECUTOR_ADAPTER,
                                 executor_evaluator=exec_eval, start_adapters=starts)
        registry = worker.roles[0].registry
        version = lambda: registry.promoted.name  # noqa: E731
        if len(worker.roles) > 1:
            exec_registry = worker.roles[1].registry
            executor_version = lambda: exec_registry.promoted.name  # noqa: E731
    consolidator = None
    if cfg.consolidate_every and store is not None:
        from ..rl.consolidation import Consolidator

        consolidator = Consolidator(store, without_memory(spec.planner_adapter), state / "consolidation.json",
                                    config=spec.consolidation, adapter_version=version)
    atomic_write_json(state / "session.json", {"spec": asdict(spec), "heldback": [q.id for q in heldback],
                                               "model": getattr(chat, "name", "")}, indent=1)
    return Session(workflow, state, config=cfg, buffer=buffer, worker=worker, adapter_version=version,
                   consolidator=consolidator, executor_version=executor_version)
