"""One real GRPO step through TRL on the bundled model: the LoRA weights move and the result is a new version."""

import pytest

from miaflow.rl import (
    AdapterRegistry,
    ExperienceBuffer,
    GRPOLearner,
    GRPOSettings,
    RoleTrainer,
    TrainingWorker,
)


@pytest.mark.slow
def test_real_grpo_step_moves_lora_weights_and_saves_a_version(tmp_path, bundled_model_dir, make_group):
    buf = ExperienceBuffer(tmp_path / "buffer.sqlite")
    buf.add(make_group("e0-q0", rewards=(1.0, 0.0, 0.55, 0.1)))
    learner = GRPOLearner(bundled_model_dir, GRPOSettings(max_completion_length=32, learning_rate=1e-3,
                                                          work_dir=str(tmp_path / "scratch")))
    reg = AdapterRegistry(tmp_path / "adapters" / "planner")
    seen = {}

    def hook(kind, groups):
        if kind == "end":
            seen["after"] = learner.lora_state()

    worker = TrainingWorker(buf, RoleTrainer(learner=learner, registry=reg, evaluator=lambda v: 0.0),
                            step_hook=hook)
    orig_rollout = learner._rollout

    def rollout(prompts, trainer):  # snapshot the freshly initialised LoRA weights before the optimizer step
        seen.setdefault("before", learner.lora_state())
        return orig_rollout(prompts, trainer)

    learner._rollout = rollout
    learner_build = learner._build

    def build(ds):
        learner_build(ds)
        learner.trainer.rollout_func = rollout

    learner._build = build
    result = worker.run_once()
    assert result is not None and result.groups == ["e0-q0"]
    assert result.completion_tokens > 0 and result.seconds > 0
    before, after = seen["before"], seen["after"]
    assert before and set(before) == set(after)
    moved = [k for k in before if not (before[k] == after[k]).all()]
    assert moved, "no LoRA tensor changed"
    assert any("lora_B" in k for k in moved)
    # saved and gated as v1 (scores equal to the base -> promoted), group marked trained
    v1 = reg.get("v1")
    assert (v1.path / "adapter_config.json").exists() and v1.metrics["steps"] == 1
    assert reg.promoted.name == "v1"
    assert buf.stats().trained == 1 and buf.count_pending() == 0
    # a zero-variance group is never handed to the trainer
    buf.add(make_group("e0-q1", rewards=(0.3, 0.3, 0.3, 0.3)))
    assert worker.run_once() is None
    # the saved version loads back into a fresh learner (resume) with the trained weights
    from peft.utils import load_peft_weights
    saved = load_peft_weights(str(v1.path), device="cpu")
    k = next(k for k in moved if "lora_B" in k)
    short = k.replace(".default", "")
    match = [s for s in saved if s.endswith(short.split("base_model.model.", 1)[-1])]
    assert match and (saved[match[0]] == after[k]).all()
