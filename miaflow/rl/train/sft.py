"""Stage 1 of offline training: the supervised warm start of one role's LoRA adapter, through TRL's ``SFTTrainer``.

TRL does the chat templating, the completion-only loss, the optimizer and the checkpoints; we hand it the examples
of :mod:`miaflow.rl.train.data` and a LoRA ``peft_config``. Checkpoints (adapter, optimizer, scheduler, RNG) are
written every ``save_steps`` into the stage's folder, so a killed run continues with ``resume=True`` from the last
one, across sessions.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..._import_utils import offline_env, require
from .data import SFTExample
from .recipe import SFTStage, TrainRecipe

__all__ = ["SFTResult", "run_sft", "resolve_device", "latest_checkpoint"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTResult:
    """What one SFT stage did."""

    role: str
    steps: int
    seconds: float
    tokens: int
    loss: float
    losses: list[tuple[int, float]]
    model: Any
    resumed_from: str | None

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def resolve_device(device: str) -> str:
    """'cpu', 'cuda', or for 'auto' cuda when a GPU is visible."""
    if device not in ("cpu", "cuda", "auto"):
        from ...errors import InvalidInputError

        raise InvalidInputError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` folder of a trainer output folder."""
    if not folder.exists():
        return None
    done = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name.split("-")[-1])) if done else None


def load_base(model_dir: Path, device: str, adapter: Path | None = None, trainable: bool = True) -> tuple[Any, Any]:
    """The base model (float32 on CPU, bf16/fp16 on a GPU) and its tokenizer, with ``adapter`` loaded if given."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = torch.float32 if device == "cpu" else (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)  # a PeftModel once wrapped
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)
    return model, tok


def lora_config(recipe: TrainRecipe) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=0.0,
                      target_modules=list(recipe.target_modules), task_type="CAUSAL_LM")


def init_adapter(recipe: TrainRecipe, role: str) -> Path | None:
    """The adapter ``role``'s SFT continues from (``recipe.init_from``), or None for a fresh LoRA."""
    if not recipe.init_from:
        return None
    root = Path(recipe.init_from)
    for cand in (root / role, *sorted((root / role / "versions").glob("v*"), key=lambda p: int(p.name[1:] or 0),
                                      reverse=True)):
        if (cand / "adapter_config.json").exists():
            return cand
    from ...errors import InvalidInputError

    raise InvalidInputError(f"init_from {root} holds no {role} adapter (expected {root / role}/adapter_config.json "
                            f"or a run folder's {role}/versions/vN)")


def run_sft(role: str, examples: list[SFTExample], stage: SFTStage, recipe: TrainRecipe, *, model_dir: Path,
            work_dir: Path, device: str = "auto", resume: bool = False) -> SFTResult:
    """Train ``role``'s adapter on ``examples`` for ``stage.max_steps`` steps; checkpoints go to ``work_dir``.

    With ``recipe.init_from`` the role's existing adapter is loaded trainable and training continues it."""
    offline_env()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    require("trl")
    require("peft")
    require("datasets")
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    dev = resolve_device(device)
    cpu = dev == "cpu"
    start = init_adapter(recipe, role)
    model, tok = load_base(model_dir, dev, adapter=start, trainable=True)
    if start is not None:
        log.info("%s SFT continues from %s", role, start)
    import torch

    bf16 = (not cpu) and torch.cuda.is_bf16_supported()
    args = SFTConfig(
        output_dir=str(work_dir),
        use_cpu=cpu,
        bf16=bf16,
        fp16=(not cpu) and not bf16,
        report_to=[],
        max_steps=stage.max_steps,
        per_device_train_batch_size=stage.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=stage.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, stage.max_steps // 20),
        logging_steps=1,
        save_strategy="steps",
        save_steps=stage.save_steps,
        save_total_limit=2,
        max_length=stage.max_length,
        completion_only_loss=True,
        packing=False,
        seed=recipe.seed,
        data_seed=recipe.seed,
        dataloader_num_workers=0,
    )
    dataset = Dataset.from_list([e.as_row() for e in examples]).select_columns(["prompt", "completion"])
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                         peft_config=None if start is not None else lora_config(recipe))
    ckpt = latest_checkpoint(work_dir) if resume else None
    if ckpt is not None:
        log.info("%s SFT resumes from %s", role, ckpt)
    t0 = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    seconds = time.perf_counter() - t0
    hist = trainer.state.log_history
    losses = [(int(h["step"]), float(h["loss"])) for h in hist if "loss" in h]
    tokens_logged = [float(n) for h in hist if (n := h.get("num_tokens")) is not None]
    first_step = int(ckpt.name.split("-")[-1]) if ckpt else 0
    tokens_before = next((float(h["num_tokens"]) for h in hist if h.get("step") == first_step and "num_tokens" in h), 0.0)
    tokens = int((tokens_logged[-1] if tokens_logged else 0) - tokens_before)
    return SFTResult(role=role, steps=int(trainer.state.global_step), seconds=seconds, tokens=tokens,
                     loss=float(out.training_loss), losses=losses, model=trainer.model,
                     resumed_from=str(ckpt) if ckpt else None)
