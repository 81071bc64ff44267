"""The background trainer: a thread that takes groups from the buffer and runs GRPO steps beside answering.

Answering never waits for it: the session only appends groups to the durable buffer and calls :meth:`notify`.
After every ``steps_per_version`` steps the worker saves a new adapter version, runs the promotion gate (a
held-back evaluator) and either publishes the version to the serving model or rolls the trainer back to the
promoted weights. With an executor learner too, it alternates roles step by step (``alternate``).

On-policy bookkeeping: every buffered group records the adapter version of its role that sampled it
(``metadata["adapter_version"]``; none recorded counts as ``v0``). Its staleness is the number of versions of that
role promoted (put in front of users) after it; a group more than ``WorkerConfig.max_staleness`` versions old is
dropped before a step (status ``stale`` in the buffer, counted in :meth:`TrainingWorker.status` as
``dropped_stale`` and logged), never importance-weighted: TRL's ratio is taken against the current weights, so an
old sample's update would follow a policy that no longer serves. Rejected versions do not count (the trainer rolls
back to the promoted weights).

Simplification: the serving model and the trainer hold separate copies of the base weights (one process, two
models), which is what lets generation and the optimizer step run at the same time without sharing a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .adapters import AdapterRegistry, AdapterVersion, GateDecision
from .buffer import ExperienceBuffer, ExperienceGroup
from .grpo import GRPOLearner, StepResult
from .publish import AdapterPublisher

__all__ = ["WorkerConfig", "RoleTrainer", "TrainingWorker", "WorkerEvent"]

log = logging.getLogger(__name__)


@dataclass
class WorkerConfig:
    """How the background trainer paces itself."""

    steps_per_version: int = field(default=1, metadata={"help": "GRPO steps between saved adapter versions."})
    poll_seconds: float = field(default=1.0, metadata={"help": "How long to sleep when the buffer is empty."})
    tolerance: float = field(default=0.0, metadata={"help": "Promote when held-back score >= promoted - this."})
    alternate: bool = field(default=False, metadata={"help": "Alternate planner and executor steps."})
    max_failures: int = field(default=3, metadata={"help": "Stop after this many failed steps in a row."})
    max_staleness: int | None = field(default=2, metadata={
        "help": "Drop buffered groups sampled more than this many promoted versions ago (0: only groups of the "
                "serving version; None: train on every group however old)."})

    def __post_init__(self) -> None:
        if self.max_staleness is not None and self.max_staleness < 0:
            raise ValueError(f"max_staleness must be >= 0 or None, got {self.max_staleness}")
        if self.steps_per_version < 1:
            raise ValueError(f"steps_per_version must be >= 1, got {self.steps_per_version}")
        if self.poll_seconds <= 0:
            raise ValueError(f"poll_seconds must be > 0, got {self.poll_seconds}")


@dataclass
class RoleTrainer:
    """Everything needed to train one role: its learner, its version registry, how to serve and check it."""

    learner: GRPOLearner
    registry: AdapterRegistry
    publisher: AdapterPublisher | None = None
    evaluator: Callable[[AdapterVersion], float] | None = None
    """Held-back score of a version (higher is better). None promotes every version unchecked."""
    steps_since_save: int = 0
    groups_since_save: list[str] = field(default_factory=list)

    @property
    def role(self) -> str:
        return self.learner.settings.role


@dataclass(kw_only=True, frozen=True, slots=True)
class WorkerEvent:
    """Something the worker did, with a monotonic timestamp."""

    kind: str
    """'step_start', 'step_end', 'promoted', 'rejected', 'error', 'dropped' (stale groups set aside)."""
    role: str
    at: float
    step: StepResult | None = None
    decision: GateDecision | None = None
    version: str | None = None
    error: str | None = None
    groups: tuple[str, ...] = ()
    """Ids of the groups dropped ('dropped')."""


def version_number(name: str | None) -> int:
    """The number of a version name ('v3' -> 3); None (not recorded) is ``v0``.

    >>> version_number("v12"), version_number(None)
    (12, 0)
    """
    if name is None:
        return 0
    if not (isinstance(name, str) and name[:1] == "v" and name[1:].isdigit()):
        raise ValueError(f"not an adapter version name: {name!r}")
    return int(name[1:])


def staleness(registry: AdapterRegistry, sampled: str | None) -> int:
    """How many versions of ``registry`` were promoted after ``sampled`` (the version that sampled a group)."""
    n = version_number(sampled)
    return sum(1 for v in registry.versions() if v.status == "promoted" and v.number > n)


class TrainingWorker:
    """Runs GRPO steps in a daemon thread. ``step_hook(kind, groups)`` is called at 'start' and 'end' of a step."""

    def __init__(self, buffer: ExperienceBuffer, planner: RoleTrainer, *, executor: RoleTrainer | None = None,
                 config: WorkerConfig | None = None,
                 step_hook: Callable[[str, list[ExperienceGroup]], None] | None = None,
                 on_event: Callable[[WorkerEvent], None] | None = None):
        self.buffer = buffer
        self.roles = [planner] + ([executor] if executor is not None else [])
        self.config = config or WorkerConfig()
        self.step_hook = step_hook
        self.on_event = on_event
        self.events: list[WorkerEvent] = []
        self.training = threading.Event()
        """Set while a GRPO step is running (for latency measurements)."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._turn = 0
        self.failures = 0
        self.dropped: dict[str, int] = {}
        """Stale groups dropped so far, per role."""
        self.error: BaseException | None = None
        self.gave_up = False
        """True once the thread stopped after ``max_failures`` failed steps in a row (answering goes on)."""

    # ----- control -----
    def start(self) -> TrainingWorker:
        """Start the thread (a worker that gave up stays stopped: its failures are reported, not retried)."""
        if self.gave_up:
            return self
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="miaflow-grpo", daemon=True)
            self._thread.start()
        return self

    def notify(self) -> None:
        """New groups are in the buffer."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to finish after its current step and wait for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict[str, object]:
        """What the worker did, for reports: steps run, versions promoted / rejected, and whether it gave up."""
        kinds = [e.kind for e in self.events]
        return {"steps": kinds.count("step_end"), "promoted": kinds.count("promoted"),
                "rejected": kinds.count("rejected"), "errors": kinds.count("error"),
                "dropped_stale": sum(self.dropped.values()), "gave_up": self.gave_up,
                "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}"}

    def drain(self, timeout: float | None = None) -> None:
        """Run steps in the calling thread until no role has a full step pending (for benchmarks and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.run_once() is not None:
            if deadline is not None and time.monotonic() > deadline:
                break

    # ----- work -----
    def _emit(self, ev: WorkerEvent) -> None:
        self.events.append(ev)
        if self.on_event is not None:
            self.on_event(ev)

    def drop_stale(self, rt: RoleTrainer) -> list[str]:
        """Set aside ``rt``'s pending groups sampled more than ``max_staleness`` promoted versions ago."""
        k = self.config.max_staleness
        if k is None:
            return []
        old = []
        for g in self.buffer.pending(None, role=rt.role):
            try:
                age = staleness(rt.registry, g.metadata.get("adapter_version"))
            except ValueError:  # a version name this registry never gave: its age is unknown, keep it
                continue
            if age > k:
                old.append(g.group_id)
        if old:
            self.buffer.mark_stale(old, f"sampled more than {k} promoted version(s) before "
                                        f"{rt.registry.promoted.name}")
            self.dropped[rt.role] = self.dropped.get(rt.role, 0) + len(old)
            log.info("dropped %d %s group(s) sampled more than %d promoted version(s) ago (%d so far)", len(old),
                     rt.role, k, self.dropped[rt.role])
            self._emit(WorkerEvent(kind="dropped", role=rt.role, at=time.monotonic(), groups=tuple(old)))
        return old

    def _next_role(self) -> tuple[RoleTrainer, list[ExperienceGroup]] | None:
        n = len(self.roles)
        order = [self.roles[(self._turn + i) % n] for i in range(n)] if self.config.alternate else self.roles
        for rt in order:
            self.drop_stale(rt)
            k = rt.learner.settings.groups_per_step
            groups = self.buffer.pending(k, role=rt.role)
            if len(groups) == k:
                if self.config.alternate:
                    self._turn = (self.roles.index(rt) + 1) % n
                return rt, groups
        return None

    def run_once(self) -> StepResult | None:
        """One step for the next role that has enough pending groups; None when none has."""
        picked = self._next_role()
        if picked is None:
            return None
        rt, groups = picked
        self.training.set()
        try:
            self._emit(WorkerEvent(kind="step_start", role=rt.role, at=time.monotonic()))
            if self.step_hook:
                self.step_hook("start", groups)
            result = rt.learner.step(groups)
            if self.step_hook:
                self.step_hook("end", groups)
        finally:
            self.training.clear()
        self._emit(WorkerEvent(kind="step_end", role=rt.role, at=time.monotonic(), step=result))
        rt.steps_since_save += 1
        rt.groups_since_save.extend(result.groups)
        if rt.steps_since_save >= self.config.steps_per_version:
            self._save_and_gate(rt, result)
        return result

    def _save_and_gate(self, rt: RoleTrainer, last: StepResult) -> None:
        metrics = {"steps": rt.steps_since_save, "groups": len(rt.groups_since_save), "loss": last.loss,
                   "step_seconds": last.seconds, "tokens_per_second": last.tokens_per_second,
                   "reward_mean": last.metrics.get("reward"), "reward_std": last.metrics.get("reward_std")}
        version = rt.registry.add(rt.learner.save, metrics=metrics)
        self.buffer.mark_trained(rt.groups_since_save, version.name)
        rt.steps_since_save, rt.groups_since_save = 0, []
        if rt.evaluator is None:
            rt.registry.promote(version.name)
            decision = None
            promoted = True
        else:
            decision = rt.registry.gate(version.name, rt.evaluator, tolerance=self.config.tolerance)
            promoted = decision.promoted
        if promoted:
            if rt.publisher is not None:
                rt.publisher.publish(rt.registry.get(version.name))
            self._emit(WorkerEvent(kind="promoted", role=rt.role, at=time.monotonic(), decision=decision,
                                   version=version.name))
        else:
            rt.learner.load(rt.registry.promoted.path)
            self._emit(WorkerEvent(kind="rejected", role=rt.role, at=time.monotonic(), decision=decision,
                                   version=version.name))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.run_once()
                self.failures = 0
            except Exception as e:  # keep answering; report, and give up after repeated failures
                log.exception("GRPO step failed")
                self.error = e
                self.failures += 1
                self._emit(WorkerEvent(kind="error", role="?", at=time.monotonic(), error=repr(e)))
                if self.failures >= self.config.max_failures:
                    self.gave_up = True
                    log.warning("GRPO training stopped after %d failed steps in a row (last error: %s: %s); "
                                "answering goes on without learning", self.failures, type(e).__name__, e)
                    return
                result = None
            if result is None:
                self._wake.wait(self.config.poll_seconds)
                self._wake.clear()
