"""The loop between memories and weights (parametric <-> non-parametric).

- Memories -> weights: high-utility memories (correct, Q-value above ``min_q``) become planner training prompts.
  Their questions are replayed *without* memory (so the planner must carry the knowledge itself), a group of n plans
  is judged against the memory's answer, and the group goes into the experience buffer like any other.
- Weights -> memories: replayed plans that succeed are written back into the store as fresh trajectories.
- Compaction: when every plan of a memory's replay succeeds without memory ``absorb_after`` times, the planner has
  absorbed that memory; with ``compact=True`` it is deleted, which bounds the store's growth.

Simplifications: "absorbed" is judged on the memory's own question only (no paraphrases), and the memory's
stored answer stands in for gold (it was judged correct when written).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .adapters import write_json_atomic
from .buffer import ExperienceBuffer
from .loop import buffer_rollout, run_group

__all__ = ["ConsolidationConfig", "ConsolidationReport", "Consolidator"]

log = logging.getLogger(__name__)


@dataclass
class ConsolidationConfig:
    """Which memories turn into training prompts and when they count as absorbed."""

    min_q: float = field(default=0.3, metadata={"help": "Smallest Q-value of a memory worth replaying."})
    max_prompts: int = field(default=4, metadata={"help": "Memories replayed per consolidation round."})
    group_size: int | None = field(default=None, metadata={"help": "Plans sampled per replayed question (None: "
                                                                  "the session's group size, else 4)."})
    absorb_after: int = field(default=1, metadata={"help": "All-correct replays (no memory) before a memory is "
                                                           "absorbed."})
    compact: bool = field(default=True, metadata={"help": "Delete absorbed memories from the store."})
    write_back: bool = field(default=True, metadata={"help": "Store successful replayed plans as memories."})

    def __post_init__(self) -> None:
        if self.max_prompts < 1 or (self.group_size is not None and self.group_size < 1) or self.absorb_after < 1:
            raise ValueError(f"max_prompts, group_size and absorb_after must be >= 1, got {self.max_prompts}, "
                             f"{self.group_size}, {self.absorb_after}")


@dataclass(kw_only=True, frozen=True, slots=True)
class ConsolidationReport:
    """What one consolidation round did."""

    replayed: list[str]
    """Memory ids whose questions were replayed."""
    groups_added: int
    """New groups in the buffer (with or without signal)."""
    written_back: int
    """Successful plans stored as memories."""
    absorbed: list[str]
    """Memories that count as absorbed after this round."""
    compacted: list[str]
    """Memories deleted from the store."""


class Consolidator:
    """Turns a store's high-utility memories into training groups; compacts absorbed ones.

    ``replay_workflow`` must run *without* memory (a ResearchWorkflow built with ``store=None``).
    ``state_path`` (JSON) keeps the absorption counts across restarts. ``adapter_version()`` names the planner
    version serving, recorded with each replayed group like a session's (the trainer drops stale ones).
    """

    def __init__(self, store: Any, replay_workflow: Any, state_path: str | Path, *,
                 config: ConsolidationConfig | None = None,
                 adapter_version: Callable[[], str | None] | None = None):
        self.store = store
        self.adapter_version = adapter_version or (lambda: None)
        self.workflow = replay_workflow
        self.state_path = Path(state_path)
        self.config = config or ConsolidationConfig()
        self._state: dict[str, Any] = (json.loads(self.state_path.read_text()) if self.state_path.exists()
                                       else {"successes": {}, "absorbed": [], "compacted": []})

    def candidates(self) -> list[Any]:
        """Correct memories with Q >= min_q that are not absorbed yet, highest Q first."""
        gone = set(self._state["absorbed"])
        recs = [r for r in self.store.iter_records()
                if r.judgement == "correct" and r.q_value >= self.config.min_q and r.id not in gone and r.answer]
        recs.sort(key=lambda r: (-r.q_value, r.id))
        return recs[: self.config.max_prompts]

    def _write_back(self, rec: Any, result: Any) -> None:
        from ..memory import Trajectory, compress

        traj = Trajectory(task_id=result.task_id, question=rec.question, plan=result.plan,
                          steps=[f"{s.get('tool')}({s.get('input')})" for s in result.steps],
                          evidence_ids=list(result.evidence_ids), answer=result.answer, judgement="correct",
                          reward=1.0, model=getattr(result, "model", None), adapter_version=result.adapter)
        self.store.add(compress(traj))

    def run(self, buffer: ExperienceBuffer, *, tag: str = "r") -> ConsolidationReport:
        cfg = self.config
        replayed, absorbed_now, compacted = [], [], []
        added = written = 0
        for rec in self.candidates():
            task = f"replay-{tag}-{rec.id}"
            try:
                roll = run_group(self.workflow, rec.question, cfg.group_size or 4, gold=rec.answer,
                                 judge_mode="gold", task_id=task, adapter_version=self.adapter_version())
            except InvalidInputError:  # the workflow returned no results
                continue
            replayed.append(rec.id)
            scores = roll.scores
            if buffer_rollout(buffer, roll, metadata={"memory_id": rec.id, "source": "replay"}):
                added += 1
            if all(s >= 0.5 for s in scores):
                n = self._state["successes"].get(rec.id, 0) + 1
                self._state["successes"][rec.id] = n
                if n >= cfg.absorb_after:
                    self._state["absorbed"].append(rec.id)
                    absorbed_now.append(rec.id)
                    continue
            if cfg.write_back:
                for r, s in zip(roll.results, scores, strict=True):
                    if s >= 0.5:
                        self._write_back(rec, r)
                        written += 1
                        break  # one successful plan per replay is enough
        if cfg.compact and absorbed_now:
            self.store.delete(ids=absorbed_now)
            compacted = list(absorbed_now)
            self._state["compacted"] += compacted
        write_json_atomic(self.state_path, self._state)
        return ConsolidationReport(replayed=replayed, groups_added=added, written_back=written,
                                   absorbed=absorbed_now, compacted=compacted)
