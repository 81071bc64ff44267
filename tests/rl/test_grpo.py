"""One real GRPO step through TRL on the bundled model: the LoRA weights move, the result is saved as a new
version, promoted, and loaded in place into the serving model."""

import pytest

from miaflow.rl import ExperienceBuffer, GRPOSettings, attach_learning


def _lora(named_params, adapter):
    return {k.replace(f".{adapter}.", "."): v.detach().clone() for k, v in named_params if f"lora_B.{adapter}." in k}


@pytest.mark.slow
def test_real_grpo_step_moves_lora_weights_saves_and_publishes_a_version(tmp_path, bundled_model_dir, make_group):
    from miaflow.llm import LocalChatModel

    chat = LocalChatModel(bundled_model_dir, device="cpu")
    buf = ExperienceBuffer(tmp_path / "buffer.sqlite")
    settings = GRPOSettings(max_completion_length=32, learning_rate=1e-3, device="cpu",
                            work_dir=str(tmp_path / "scratch"))
    worker = attach_learning(chat, tmp_path, buf, settings=settings, evaluator=lambda v: 0.0)
    assert "planner" in chat.adapters  # a fresh LoRA (equal to the base model) serves until a version is promoted
    learner, registry = worker.roles[0].learner, worker.roles[0].registry
    buf.add(make_group("e0-q0", rewards=(1.0, 0.0, 0.55, 0.1)))
    buf.add(make_group("e0-q1", rewards=(0.3, 0.3, 0.3, 0.3)))  # zero variance: never handed to the trainer

    result = worker.run_once()
    assert result is not None and result.groups == ["e0-q0"]
    assert result.completion_tokens > 0 and result.seconds > 0 and result.metrics.get("reward_std", 1) > 0
    before, after = learner._initial, learner.lora_state()
    assert before and set(before) == set(after)
    moved = [k for k in before if not (before[k] == after[k]).all()]
    assert any("lora_B" in k for k in moved), "no LoRA tensor changed"

    v1 = registry.get("v1")
    assert (v1.path / "adapter_config.json").exists() and v1.metrics["steps"] == 1
    assert registry.promoted.name == "v1" and v1.metrics["held_back"] == 0.0
    assert buf.stats().trained == 1 and buf.stats().zero_variance == 1 and worker.run_once() is None
    # the promoted version now serves: the chat model's 'planner' adapter holds the trained weights
    served = _lora(chat.model.named_parameters(), "planner")
    trained = _lora(learner.model.named_parameters(), "default")
    assert served and set(served) == set(trained)
    assert all((served[k] == trained[k]).all() for k in served)
    assert [e.kind for e in worker.events] == ["step_start", "step_end", "promoted"]
    # one optimizer for the whole run: its AdamW state is saved with the version and carried to the next step
    assert learner.optimizer_steps == 1 and (v1.path / "optimizer.pt").exists()
    buf.add(make_group("e0-q2", rewards=(0.0, 1.0, 0.2, 0.4)))
    assert worker.run_once() is not None and learner.optimizer_steps == 2
    # resuming builds the learner from the registry's current version, optimizer state included
    again = attach_learning(chat, tmp_path, buf, settings=settings)
    resumed = again.roles[0].learner
    assert resumed.adapter_path == registry.current.path
    resumed.step([make_group("e0-q3", rewards=(1.0, 0.0, 0.0, 0.5))])
    assert resumed.optimizer_steps == 3, "the restored AdamW state continues, not restarts"
