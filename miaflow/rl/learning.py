"""Wiring test-time learning onto a serving model: registry, learner, publisher, held-back gate, worker.

:func:`attach_learning` gives the serving ``LocalChatModel`` a planner adapter (a fresh LoRA equals the base
model until trained, or the promoted version when resuming), builds a :class:`~miaflow.rl.GRPOLearner` that
continues from the registry's current version, and returns a :class:`~miaflow.rl.TrainingWorker` ready to start.
A candidate version left ungated by a kill is rolled back on resume (the conservative choice).

:func:`attach_learning` can add the executor role beside it (the same pieces under ``adapters/executor``), and
both roles start from the shipped trained adapters of the bundled model when it serves them (:func:`start_adapter`):
``v0`` then stands for that adapter, the learner continues from it and a rollback returns to it.

:func:`heldback_evaluator` scores a version by running the research workflow without memory, greedy, on a few
held-back questions with that version loaded under a separate adapter name (``planner-eval``), so evaluation
never touches the adapter that serves answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .adapters import AdapterRegistry, AdapterVersion
from .buffer import ExperienceBuffer
from .grpo import GRPOLearner, GRPOSettings
from .publish import AdapterPublisher, LocalAdapterPublisher
from .worker import RoleTrainer, TrainingWorker, WorkerConfig

__all__ = ["attach_learning", "heldback_evaluator", "role_trainer", "start_adapter"]

log = logging.getLogger(__name__)


def heldback_evaluator(chat: Any, make_workflow: Callable[[str | None], Any], questions: Sequence[Any], *,
                       eval_adapter: str = "planner-eval", publisher: AdapterPublisher | None = None,
                       base_path: str | Path | None = None) -> Callable[[AdapterVersion], float]:
    """``evaluate(version) -> mean score`` on ``questions`` (objects with ``.question`` and ``.gold``).

    ``make_workflow(adapter_name)`` returns a workflow whose trained role (planner or executor) uses that adapter
    (None: base) and no memory. ``publisher`` loads the version to evaluate (default: into ``chat`` as
    ``eval_adapter``; a :class:`~miaflow.rl.VLLMAdapterPublisher` with its own prefix for a served model).
    ``base_path`` is the adapter ``v0`` stands for (the trained start of :func:`start_adapter`), if any.
    """
    cache: dict[str | None, Any] = {}

    def evaluate(version: AdapterVersion) -> float:
        name = None
        if version.path is None and base_path is not None:
            version = replace(version, path=Path(base_path))
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


def start_adapter(chat: Any, role: str) -> Path | None:
    """The trained adapter a role's learning starts from: the shipped adapter of the bundled model when ``chat``
    serves it for that role (``chat.role_adapters``), else None (a fresh LoRA, equal to the base model)."""
    if role not in (getattr(chat, "role_adapters", None) or {}):
        return None
    from ..llm.bundled import bundled_adapters

    return bundled_adapters().get(role)


def role_trainer(chat: Any, state_dir: str | Path, settings: GRPOSettings, *, adapter_name: str,
                 evaluator: Callable[[AdapterVersion], float] | None = None, model_dir: str | Path | None = None,
                 publisher: AdapterPublisher | None = None, start: str | Path | None = None) -> RoleTrainer:
    """One role's registry (``state_dir/adapters/<role>``), learner and publisher.

    ``start`` is what version ``v0`` stands for: a trained adapter the learner starts from and rolls back to, and
    the one served under ``adapter_name`` while ``v0`` is promoted (None: a fresh LoRA).
    """
    registry = AdapterRegistry(Path(state_dir) / "adapters" / settings.role)
    promoted, current = registry.promoted, registry.current
    if current.name != promoted.name and current.status == "candidate":
        log.warning("%s version %s was never gated (killed mid-gate?); rolling back to %s", settings.role,
                    current.name, promoted.name)
        registry.reject(current.name)
    if publisher is None:
        publisher = LocalAdapterPublisher(chat, adapter_name)
        if adapter_name not in getattr(chat, "adapters", []):
            if start is not None:
                chat.load_adapter(adapter_name, start)
            else:
                chat.add_adapter(adapter_name, settings.lora_config())
    if promoted.path is not None:
        publisher.publish(promoted)
    base_dir = model_dir or getattr(chat, "model_dir", None)
    if base_dir is None:
        raise ValueError("model_dir is needed to train when the serving model is not a LocalChatModel")
    learner = GRPOLearner(base_dir, settings, adapter_path=registry.current.path, base_adapter=start)
    return RoleTrainer(learner=learner, registry=registry, publisher=publisher, evaluator=evaluator)


def attach_learning(chat: Any, state_dir: str | Path, buffer: ExperienceBuffer, *,
                    settings: GRPOSettings | None = None, worker_config: WorkerConfig | None = None,
                    evaluator: Callable[[AdapterVersion], float] | None = None, adapter_name: str = "planner",
                    model_dir: str | Path | None = None, publisher: AdapterPublisher | None = None,
                    step_hook: Callable | None = None, executor: GRPOSettings | None = None,
                    executor_adapter: str = "executor",
                    executor_evaluator: Callable[[AdapterVersion], float] | None = None,
                    start_adapters: Mapping[str, str | Path | None] | None = None) -> TrainingWorker:
    """Build the planner's registry, learner, publisher and worker under ``state_dir/adapters/planner`` (and the
    executor's under ``state_dir/adapters/executor`` when ``executor`` settings are given).

    ``chat`` is the serving model: a LocalChatModel (default publisher: in-place load) or, with ``publisher`` set
    to a :class:`~miaflow.rl.VLLMAdapterPublisher` and ``model_dir`` to the same base model's folder, a server
    (the executor role needs the local model). Each role starts from ``start_adapters[role]`` (default:
    :func:`start_adapter`, the shipped trained adapter when the bundled model serves it).
    """
    settings = settings or GRPOSettings()
    starts = dict(start_adapters) if start_adapters is not None else {
        r: start_adapter(chat, r) for r in ("planner", "executor")}
    planner = role_trainer(chat, state_dir, settings, adapter_name=adapter_name, evaluator=evaluator,
                           model_dir=model_dir, publisher=publisher, start=starts.get(settings.role))
    exec_rt = None
    if executor is not None:
        if executor.role != "executor" or settings.role != "planner":
            raise ValueError(f"executor settings train role {executor.role!r} beside {settings.role!r}: pass the "
                             "planner's settings and the executor's (role='executor')")
        exec_rt = role_trainer(chat, state_dir, executor, adapter_name=executor_adapter,
                               evaluator=executor_evaluator, model_dir=model_dir, start=starts.get("executor"))
    return TrainingWorker(buffer, planner, executor=exec_rt, config=worker_config, step_hook=step_hook)
