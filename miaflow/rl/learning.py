"""Wiring test-time learning onto a serving model: registry, learner, publisher, held-back gate, worker.

:func:`attach_learning` gives the serving ``LocalChatModel`` a planner adapter (a fresh LoRA equals the base
model until trained, or the promoted version when resuming), builds a :class:`~miaflow.rl.GRPOLearner` that
continues from the registry's current version, and returns a :class:`~miaflow.rl.TrainingWorker` ready to start.
A candidate version left ungated by a kill is rolled back on resume (the conservative choice).

:func:`heldback_evaluator` scores a version by running the research workflow without memory, greedy, on a few
held-back questions with that version loaded under a separate adapter name (``planner-eval``), so evaluation
never touches the adapter that serves answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .adapters import AdapterRegistry, AdapterVersion
from .buffer import ExperienceBuffer
from .grpo import GRPOLearner, GRPOSettings
from .publish import AdapterPublisher, LocalAdapterPublisher
from .worker import RoleTrainer, TrainingWorker, WorkerConfig

__all__ = ["attach_learning", "heldback_evaluator"]

log = logging.getLogger(__name__)


def heldback_evaluator(chat: Any, make_workflow: Callable[[str | None], Any], questions: Sequence[Any], *,
                       eval_adapter: str = "planner-eval", publisher: AdapterPublisher | None = None
                       ) -> Callable[[AdapterVersion], float]:
    """``evaluate(version) -> mean score`` on ``questions`` (objects with ``.question`` and ``.gold``).

    ``make_workflow(adapter_name)`` returns a workflow whose planner uses that adapter (None: base) and no memory.
    ``publisher`` loads the version to evaluate (default: into ``chat`` as ``eval_adapter``; a
    :class:`~miaflow.rl.VLLMAdapterPublisher` with its own prefix for a served model).
    """
    cache: dict[str | None, Any] = {}

    def evaluate(version: AdapterVersion) -> float:
        name = None
        if version.path is not None:
            if publisher is not None:
                name = publisher.publish(version)
            else:
                chat.load_adapter(eval_adapter, version.path)
                name = eval_adapter
        if name not in cache:
            cache[name] = make_workflow(name)
        wf = cache[name]
        scores = [float(wf.run(q.question, gold=q.gold, task_id=f"heldback-{version.name}-{i}",
                               remember=False).score) for i, q in enumerate(questions)]
        score = sum(scores) / len(scores) if scores else 0.0
        log.info("held-back score of %s: %.3f over %d questions", version.name, score, len(scores))
        return score

    return evaluate


def attach_learning(chat: Any, state_dir: str | Path, buffer: ExperienceBuffer, *,
                    settings: GRPOSettings | None = None, worker_config: WorkerConfig | None = None,
                    evaluator: Callable[[AdapterVersion], float] | None = None, adapter_name: str = "planner",
                    model_dir: str | Path | None = None, publisher: AdapterPublisher | None = None,
                    step_hook: Callable | None = None) -> TrainingWorker:
    """Build the planner's registry, learner, publisher and worker under ``state_dir/adapters/planner``.

    ``chat`` is the serving model: a LocalChatModel (default publisher: in-place load) or, with ``publisher`` set
    to a :class:`~miaflow.rl.VLLMAdapterPublisher` and ``model_dir`` to the same base model's folder, a server.
    """
    settings = settings or GRPOSettings()
    registry = AdapterRegistry(Path(state_dir) / "adapters" / settings.role)
    promoted, current = registry.promoted, registry.current
    if current.name != promoted.name and current.status == "candidate":
        log.warning("version %s was never gated (killed mid-gate?); rolling back to %s", current.name, promoted.name)
        registry.reject(current.name)
    if publisher is None:
        publisher = LocalAdapterPublisher(chat, adapter_name)
        if adapter_name not in getattr(chat, "adapters", []):
            chat.add_adapter(adapter_name, settings.lora_config())
    if promoted.path is not None:
        publisher.publish(promoted)
    base_dir = model_dir or getattr(chat, "model_dir", None)
    if base_dir is None:
        raise ValueError("model_dir is needed to train when the serving model is not a LocalChatModel")
    learner = GRPOLearner(base_dir, settings, adapter_path=registry.current.path)
    return TrainingWorker(buffer, RoleTrainer(learner=learner, registry=registry, publisher=publisher,
                                              evaluator=evaluator), config=worker_config, step_hook=step_hook)
