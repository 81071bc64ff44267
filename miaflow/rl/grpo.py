"""GRPO steps on the session's own groups, through TRL's ``GRPOTrainer``.

TRL does the loss (group-normalised advantages, clipped ratio, optional KL) and the optimizer step; we only feed
it. Each step builds a small ``datasets.Dataset`` with one row per buffered group (its prompt messages) and hands
TRL an experimental ``rollout_func`` that, instead of sampling, returns the completions already sampled while
answering (tokenised with the same chat template) plus the reward inputs as extra columns. TRL then calls
:func:`~miaflow.rl.rewards.planner_reward` on them, so the reward TRL optimises is the one the session logged.

Simplifications, said plainly:
- The completions come from the serving adapter, which may be a version or two behind the trained one, so the
  update is slightly off-policy; TRL's ratio is computed against the current weights (``num_iterations=1``).
- Every step calls ``trainer.train()`` again with ``max_steps=1`` on a fresh dataset, but on the same trainer: its
  AdamW optimizer is created once (the Trainer creates one only when it has none, and accelerate hands an
  already-prepared optimizer back unchanged), so the moment estimates carry across steps. :meth:`GRPOLearner.save`
  writes them beside the adapter (``optimizer.pt``) and a learner resumed from that version restores them, so a
  restarted session continues with the same optimizer state. The learning-rate schedule is constant.
- The first trainer wraps the base model with a LoRA ``peft_config``; resuming from a saved version loads it as a
  trainable ``PeftModel`` instead (TRL refuses a ``PeftModel`` together with a ``peft_config``). With a
  ``base_adapter`` (the shipped trained adapter of the bundled model) the learner starts from that adapter, and
  rolling back to ``v0`` means back to it, not to a fresh LoRA.
- A sample the judge could not score (column ``unjudged``) gets reward 0 inside TRL too, so an unparseable verdict
  never earns the format or replan part of a reward.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._import_utils import offline_env, require
from ..errors import InvalidInputError
from ..llm.bundled import cache_dir
from .buffer import ExperienceGroup
from .rewards import executor_reward, planner_reward

__all__ = ["GRPOSettings", "GRPOLearner", "StepResult", "OPTIMIZER_FILE"]

OPTIMIZER_FILE = "optimizer.pt"
"""The AdamW state saved beside an adapter version, restored when a learner resumes from that version."""

log = logging.getLogger(__name__)


@dataclass
class GRPOSettings:
    """Training settings for the LoRA adapter of one role (planner or executor)."""

    role: str = field(default="planner", metadata={"help": "Which policy: 'planner' or 'executor'."})
    num_generations: int = field(default=4, metadata={"help": "Completions per group (n plans per question)."})
    groups_per_step: int = field(default=1, metadata={"help": "Groups in one GRPO step (batch = groups * n)."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate for the LoRA weights."})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient (0 skips the reference forward pass)."})
    max_prompt_tokens: int = field(default=1024, metadata={"help": "Prompts are cut to their last N tokens."})
    max_completion_length: int = field(default=256, metadata={"help": "Completions are cut to N tokens."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj"), metadata={"help": "Modules that get LoRA weights."}
    )
    device: str = field(default="auto", metadata={"help": "'cpu', 'cuda' or 'auto' (cuda when available)."})
    seed: int = field(default=0, metadata={"help": "Trainer seed."})
    work_dir: str | None = field(default=None, metadata={"help": "Scratch folder for TRL's output_dir."})

    def __post_init__(self) -> None:
        if self.role not in ("planner", "executor"):
            raise ValueError(f"role must be 'planner' or 'executor', got {self.role!r}")
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 for GRPO, got {self.num_generations}")
        if self.groups_per_step < 1:
            raise ValueError(f"groups_per_step must be >= 1, got {self.groups_per_step}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")

    def lora_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
        )


@dataclass(kw_only=True, frozen=True, slots=True)
class StepResult:
    """What one GRPO step did."""

    groups: list[str]
    """Ids of the groups trained on."""
    seconds: float
    """Wall time of ``trainer.train()`` for this step."""
    prompt_tokens: int
    """Prompt tokens processed (prompt repeated once per completion)."""
    completion_tokens: int
    """Completion tokens the loss was computed on."""
    loss: float
    """TRL's training loss."""
    metrics: dict[str, float]
    """TRL's logged metrics for the step (reward, reward_std, frac_reward_zero_std, ...)."""

    @property
    def tokens_per_second(self) -> float:
        return (self.prompt_tokens + self.completion_tokens) / self.seconds if self.seconds > 0 else 0.0


def unjudged_masked(fn: Any) -> Any:
    """``fn`` (a reward function) with the reward of every ``unjudged`` sample set to 0."""

    def reward(completions: list[Any], **kwargs: Any) -> list[float]:
        mask = kwargs.pop("unjudged", None)
        out = list(fn(completions, **kwargs))
        if mask is not None:
            out = [0.0 if m else r for m, r in zip(mask, out, strict=True)]
        return out

    reward.__name__ = getattr(fn, "__name__", "reward")
    return reward


def _prompt_key(messages: Any) -> str:
    return json.dumps(messages, sort_keys=True, default=str)


class GRPOLearner:
    """Holds a trainable copy of the base model with one LoRA adapter and runs GRPO steps on groups.

    ``model_dir`` is the converted safetensors folder (never a GGUF file). ``adapter_path`` resumes from a saved
    adapter version. ``base_adapter`` is what version ``v0`` stands for (a trained adapter to start from; None: a
    fresh LoRA, equal to the base model). The model loads lazily on the first step.
    """

    def __init__(self, model_dir: str | Path, settings: GRPOSettings | None = None, *,
                 adapter_path: str | Path | None = None, base_adapter: str | Path | None = None):
        self.model_dir = Path(model_dir)
        if (self.model_dir / "config.json").exists() is False:
            raise InvalidInputError(f"{self.model_dir} is not a transformers model folder (no config.json)")
        self.settings = settings or GRPOSettings()
        self.base_adapter = Path(base_adapter) if base_adapter else None
        self.adapter_path = Path(adapter_path) if adapter_path else self.base_adapter
        self.trainer: Any = None
        self.tokenizer: Any = None
        self._lock = threading.Lock()
        self._queue: dict[str, deque[ExperienceGroup]] = defaultdict(deque)
        self._last_tokens = (0, 0)
        self._initial: dict[str, Any] = {}

    # ----- set-up -----
    def _device(self) -> str:
        if self.settings.device != "auto":
            return self.settings.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def _build(self, first_dataset: Any) -> None:
        offline_env()
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
        require("trl")
        require("peft")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import GRPOConfig, GRPOTrainer

        s = self.settings
        cpu = self._device() == "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.float32 if cpu else (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
        model: Any = AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=dtype)  # or a PeftModel
        peft_config = None
        if self.adapter_path is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(self.adapter_path), is_trainable=True)
        else:
            peft_config = s.lora_config()
        work = s.work_dir or str(cache_dir() / "grpo-scratch")
        bf16 = (not cpu) and dtype == torch.bfloat16
        args = GRPOConfig(
            output_dir=work,
            use_cpu=cpu,
            bf16=bf16,
            fp16=(not cpu) and not bf16,
            report_to=[],
            save_strategy="no",
            logging_steps=1,
            disable_tqdm=True,
            max_steps=1,
            num_generations=s.num_generations,
            per_device_train_batch_size=s.num_generations * s.groups_per_step,
            gradient_accumulation_steps=1,
            learning_rate=s.learning_rate,
            lr_scheduler_type="constant",
            warmup_steps=0,
            beta=s.beta,
            max_completion_length=s.max_completion_length,
            seed=s.seed,
        )
        reward = unjudged_masked(planner_reward if s.role == "planner" else executor_reward)
        self.trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward,
            args=args,
            train_dataset=first_dataset,
            processing_class=self.tokenizer,
            peft_config=peft_config,
            rollout_func=self._rollout,
        )
        self._initial = self.lora_state()
        if self.adapter_path is not None and (self.adapter_path / OPTIMIZER_FILE).exists():
            self._restore_optimizer(self.adapter_path / OPTIMIZER_FILE)

    def _restore_optimizer(self, path: Path) -> None:
        """Create the trainer's optimizer now and load a saved state into it (the next step prepares it as usual)."""
        import torch

        self.trainer.create_optimizer()
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
            self.trainer.optimizer.load_state_dict(state)
        except (OSError, RuntimeError, ValueError, KeyError) as e:  # a damaged file costs the moments, not the run
            log.warning("optimizer state %s could not be restored (%s); starting with fresh moments", path, e)
            self.trainer.optimizer = None
            self.trainer.create_optimizer()

    @property
    def optimizer_steps(self) -> int:
        """AdamW steps taken by the current optimizer (carried across steps and restored on resume)."""
        opt = None if self.trainer is None else self.trainer.optimizer
        if opt is None:
            return 0
        steps = [int(st["step"]) for st in opt.state_dict().get("state", {}).values() if "step" in st]
        return max(steps, default=0)

    # ----- the rollout hook: hand TRL the completions we already have -----
    def _rollout(self, prompts: list, trainer: Any) -> dict[str, list | None]:
        s = self.settings
        prompt_ids: list[list[int]] = []
        completion_ids: list[list[int]] = []
        extra: dict[str, list] = defaultdict(list)
        eos = self.tokenizer.eos_token_id
        block: list[tuple[ExperienceGroup, int]] = []
        names = sorted({k for q in self._queue.values() for g in q for k in g.columns})
        for i, prompt in enumerate(prompts):
            if i % s.num_generations == 0:
                # TRL repeats each dataset row num_generations times in a row: one row = one group.
                group = self._queue[_prompt_key(prompt)].popleft()
                block = [(group, j) for j in range(s.num_generations)]
            group, j = block[i % s.num_generations]
            ids = self.tokenizer.apply_chat_template(group.prompt, add_generation_prompt=True, tokenize=True,
                                                     return_dict=False)
            ids = list(ids)[-s.max_prompt_tokens:]
            comp = self.tokenizer(group.completions[j], add_special_tokens=False)["input_ids"]
            comp = list(comp)[: s.max_completion_length - 1] + [eos]
            prompt_ids.append(ids)
            completion_ids.append(comp)
            for name in names:  # a column some group lacks (written before it existed) is None there
                col = group.columns.get(name)
                extra[name].append(None if col is None else col[j])
        self._last_tokens = (sum(map(len, prompt_ids)), sum(map(len, completion_ids)))
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None, **extra}

    # ----- public -----
    def step(self, groups: list[ExperienceGroup]) -> StepResult:
        """One GRPO optimizer step on ``groups`` (each with ``num_generations`` completions)."""
        from datasets import Dataset

        s = self.settings
        if len(groups) != s.groups_per_step:
            raise InvalidInputError(f"a step takes {s.groups_per_step} group(s), got {len(groups)}")
        for g in groups:
            if len(g.completions) != s.num_generations:
                raise InvalidInputError(
                    f"group {g.group_id} has {len(g.completions)} completions, expected {s.num_generations}"
                )
        with self._lock:
            self._queue.clear()
            for g in groups:
                self._queue[_prompt_key(g.prompt)].append(g)
            dataset = Dataset.from_list([{"prompt": g.prompt} for g in groups])
            if self.trainer is None:
                self._build(dataset)
            else:
                self.trainer.train_dataset = dataset
            logged_before = len(self.trainer.state.log_history)
            t0 = time.perf_counter()
            out = self.trainer.train()
            seconds = time.perf_counter() - t0
            logs = [h for h in self.trainer.state.log_history[logged_before:] if "loss" in h]
            metrics = {k: float(v) for k, v in (logs[-1] if logs else {}).items() if isinstance(v, int | float)}
            p, c = self._last_tokens
            return StepResult(groups=[g.group_id for g in groups], seconds=seconds, prompt_tokens=p,
                              completion_tokens=c, loss=float(out.training_loss), metrics=metrics)

    @property
    def model(self) -> Any:
        """The trainable PeftModel (None before the first step)."""
        return None if self.trainer is None else self.trainer.model

    def lora_state(self) -> dict[str, Any]:
        """A detached copy of the LoRA tensors (to check that a step moved them)."""
        if self.trainer is None:
            return {}
        return {k: v.detach().cpu().clone() for k, v in self.trainer.model.named_parameters() if "lora_" in k}

    def save(self, path: str | Path) -> Path:
        """Write the current adapter (PEFT format) to ``path``."""
        if self.trainer is None:
            raise InvalidInputError("nothing trained yet: run a step before saving")
        import torch

        path = Path(path)
        with self._lock:
            self.trainer.model.save_pretrained(str(path))
            if self.trainer.optimizer is not None:
                torch.save(self.trainer.optimizer.state_dict(), str(path / OPTIMIZER_FILE))
        return path

    def load(self, path: str | Path | None) -> None:
        """Reset the trained adapter's weights to a saved version, or to the start (``base_adapter`` or a fresh LoRA)
        for None (rollback)."""
        if self.trainer is None:
            self.adapter_path = Path(path) if path else self.base_adapter
            return
        if path is None:
            with self._lock:
                params = dict(self.trainer.model.named_parameters())
                import torch

                with torch.no_grad():
                    for k, v in self._initial.items():
                        params[k].copy_(v.to(params[k].device))
            return
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        with self._lock:
            weights = load_peft_weights(str(path), device="cpu")
            model = self.trainer.model
            set_peft_model_state_dict(model, weights, adapter_name=model.active_adapter)
