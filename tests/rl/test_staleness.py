"""On-policy bookkeeping: each buffered group names the adapter version that sampled it, and the trainer drops
groups sampled more than ``max_staleness`` promoted versions ago (counted, logged, never trained on)."""

import logging
from pathlib import Path

import pytest

from miaflow.rl import (
    AdapterRegistry,
    ExperienceBuffer,
    GRPOSettings,
    RoleTrainer,
    TrainingWorker,
    WorkerConfig,
)
from miaflow.rl.grpo import StepResult
from miaflow.rl.worker import staleness


class Learner:
    def __init__(self):
        self.settings = GRPOSettings()
        self.trained = []

    def step(self, groups):
        self.trained += [g.group_id for g in groups]
        return StepResult(groups=[g.group_id for g in groups], seconds=0.01, prompt_tokens=1, completion_tokens=1,
                          loss=0.0, metrics={})

    def save(self, path):
        (Path(path) / "adapter_config.json").write_text("{}")

    def load(self, path):
        pass


def _registry(root):
    """v1 promoted, v2 rejected, v3 and v4 promoted: three versions served after v0."""
    reg = AdapterRegistry(root)
    for name, ok in [("v1", True), ("v2", False), ("v3", True), ("v4", True)]:
        v = reg.add(lambda p: (p / "adapter_config.json").write_text("{}"))
        assert v.name == name
        reg.promote(name) if ok else reg.reject(name)
    return reg


def test_groups_older_than_max_staleness_are_dropped_before_a_step(tmp_path, make_group, caplog):
    reg = _registry(tmp_path / "planner")
    assert [staleness(reg, v) for v in (None, "v0", "v1", "v2", "v3", "v4")] == [3, 3, 2, 2, 1, 0]
    buf = ExperienceBuffer(tmp_path / "b.sqlite")
    for gid, version in [("old-none", None), ("old-v0", "v0"), ("old-v1", "v1"), ("ok-v3", "v3"),
                         ("ok-v4", "v4"), ("odd", "latest")]:
        g = make_group(gid)
        meta = {**g.metadata} if version is None else {**g.metadata, "adapter_version": version}
        buf.add(type(g)(**{**{f: getattr(g, f) for f in g.__slots__}, "metadata": meta}))
    learner = Learner()
    worker = TrainingWorker(buf, RoleTrainer(learner=learner, registry=reg), config=WorkerConfig(max_staleness=1))
    caplog.set_level(logging.INFO, logger="miaflow.rl.worker")
    worker.drain()
    assert learner.trained == ["ok-v3", "ok-v4", "odd"]  # an unknown version name is kept, not guessed old
    assert worker.status()["dropped_stale"] == 3 and worker.dropped == {"planner": 3}
    assert buf.stats().stale == 3 and buf.stats().trained == 3 and buf.stats().pending == 0
    [ev] = [e for e in worker.events if e.kind == "dropped"]
    assert set(ev.groups) == {"old-none", "old-v0", "old-v1"}
    assert any("dropped 3 planner group(s)" in r.getMessage() for r in caplog.records)


def test_max_staleness_none_keeps_every_group_and_bad_values_are_refused(tmp_path, make_group):
    reg = _registry(tmp_path / "planner")
    buf = ExperienceBuffer(tmp_path / "b.sqlite")
    buf.add(make_group("ancient"))
    learner = Learner()
    TrainingWorker(buf, RoleTrainer(learner=learner, registry=reg), config=WorkerConfig(max_staleness=None)).drain()
    assert learner.trained == ["ancient"] and buf.stats().stale == 0
    with pytest.raises(ValueError, match="max_staleness"):
        WorkerConfig(max_staleness=-1)
