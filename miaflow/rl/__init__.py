"""Online reinforcement learning for miaflow: rewards, the experience buffer, GRPO through TRL, adapter versions
with an eval gate, the background trainer, the memory <-> weights consolidation loop, and the learning loop's
per-question turn (:func:`run_group` -> :class:`GroupRollout`) shared by sessions and offline training.

Light on import: torch, trl and peft load only when a GRPO step runs.
"""

from __future__ import annotations

from .._lazy import lazy_exports

__all__ = [
    "planner_reward",
    "executor_reward",
    "majority_vote_scores",
    "plan_format_ok",
    "has_signal",
    "ExperienceGroup",
    "ExperienceBuffer",
    "BufferStats",
    "GRPOSettings",
    "GRPOLearner",
    "StepResult",
    "AdapterVersion",
    "AdapterRegistry",
    "GateDecision",
    "LocalAdapterPublisher",
    "VLLMAdapterPublisher",
    "WorkerConfig",
    "RoleTrainer",
    "TrainingWorker",
    "WorkerEvent",
    "ConsolidationConfig",
    "Consolidator",
    "ConsolidationReport",
    "attach_learning",
    "heldback_evaluator",
    "GroupRollout",
    "run_group",
    "rollout_from_results",
    "judge_scores",
    "buffer_rollout",
    "remember_rollout",
    "planner_completion",
]

_WHERE = {
    "planner_reward": "rewards",
    "executor_reward": "rewards",
    "majority_vote_scores": "rewards",
    "plan_format_ok": "rewards",
    "has_signal": "rewards",
    "ExperienceGroup": "buffer",
    "ExperienceBuffer": "buffer",
    "BufferStats": "buffer",
    "GRPOSettings": "grpo",
    "GRPOLearner": "grpo",
    "StepResult": "grpo",
    "AdapterVersion": "adapters",
    "AdapterRegistry": "adapters",
    "GateDecision": "adapters",
    "LocalAdapterPublisher": "publish",
    "VLLMAdapterPublisher": "publish",
    "WorkerConfig": "worker",
    "RoleTrainer": "worker",
    "TrainingWorker": "worker",
    "WorkerEvent": "worker",
    "ConsolidationConfig": "consolidation",
    "Consolidator": "consolidation",
    "ConsolidationReport": "consolidation",
    "attach_learning": "learning",
    "heldback_evaluator": "learning",
    "GroupRollout": "loop",
    "run_group": "loop",
    "rollout_from_results": "loop",
    "judge_scores": "loop",
    "buffer_rollout": "loop",
    "remember_rollout": "loop",
    "planner_completion": "loop",
}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
