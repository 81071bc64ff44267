"""Training recipes: which data trains which role, for how many steps, with which LoRA and optimizer settings.

A recipe is a typed object so that the run folder can record it in full (``recipe.json``) and ``--resume`` can
check that it continues the same run. Named presets size the offline stage for where it runs:

- ``bundled``: the recipe behind the adapters shipped for SmolLM2-135M-Instruct, sized for a 2-core CPU (about an
  hour of SFT; prompts of 2-4 passages of at most 600 characters).
- ``reader``: a second, longer SFT pass of the executor alone, continuing from ``init_from`` (the ``bundled``
  run's adapters) on fresh examples (another seed); the planner is left as it is.
- ``tiny``: a handful of examples and steps, for tests and smoke checks (minutes on a CPU).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ...errors import InvalidInputError

__all__ = ["DataFiles", "SFTStage", "GRPOStage", "TrainRecipe", "recipe_preset", "PRESETS"]


@dataclass(frozen=True)
class DataFiles:
    """Where the training data lives (paths are given by the caller; nothing is read from a fixed place)."""

    hotpot: tuple[str, ...] = field(default=(), metadata={"help": "HotpotQA distractor files (HF schema, .jsonl[.gz])."})
    squad: tuple[str, ...] = field(default=(), metadata={"help": "SQuAD v1.1 files, one question per line."})
    musique: tuple[str, ...] = field(default=(), metadata={"help": "MuSiQue question files (with decompositions)."})
    exclude_last: int = field(default=0, metadata={
        "help": "Records kept out of training at the end of the first HotpotQA file (a validation slice)."})

    @classmethod
    def from_shared(cls, root: str | Path, *, exclude_last: int = 50) -> DataFiles:
        """The training files of a shared ``datasets`` folder (never its dev / report files)."""
        root = Path(root)
        pool = root / "train_pool"
        return cls(hotpot=(str(pool / "hotpotqa_pool.jsonl.gz"), str(root / "hotpotqa" / "train.jsonl"),
                           str(pool / "hotpotqa_train_extra.jsonl.gz")),
                   squad=(str(pool / "squad_v1_dev.jsonl.gz"),),
                   musique=(str(root / "musique" / "musique_train.json"),),
                   exclude_last=exclude_last)

    def all(self) -> list[str]:
        return [*self.hotpot, *self.squad, *self.musique]


@dataclass(frozen=True)
class SFTStage:
    """Stage 1: supervised warm start of one role's LoRA adapter (TRL ``SFTTrainer``)."""

    max_steps: int = field(default=120, metadata={"help": "Optimizer steps (0 skips the stage)."})
    batch_size: int = field(default=4, metadata={"help": "Examples per optimizer step."})
    learning_rate: float = field(default=3e-4, metadata={"help": "AdamW learning rate of the LoRA weights."})
    max_length: int = field(default=1024, metadata={"help": "Prompt + completion tokens kept per example."})
    examples: int = field(default=480, metadata={"help": "Examples drawn from the data (the rest is unused)."})
    squad_share: float = field(default=0.3, metadata={"help": "Share of reader examples drawn from SQuAD."})
    save_steps: int = field(default=20, metadata={"help": "Checkpoint every N steps (for --resume)."})


@dataclass(frozen=True)
class GRPOStage:
    """Stage 2: alternating GRPO (planner with the executor frozen, then the executor with the planner frozen)."""

    rounds: int = field(default=2, metadata={"help": "Alternation rounds (0 skips the stage)."})
    steps_per_round: int = field(default=4, metadata={"help": "GRPO steps per role in each round."})
    group_size: int = field(default=4, metadata={"help": "Completions per question (the GRPO group)."})
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate of the LoRA weights."})
    temperature: float = field(default=0.9, metadata={"help": "Sampling temperature of the trained role."})
    planner_tokens: int = field(default=96, metadata={"help": "Completion budget of a sampled plan."})
    executor_tokens: int = field(default=24, metadata={"help": "Completion budget of a sampled answer."})
    questions: int = field(default=64, metadata={"help": "Training questions the rollouts draw from."})


@dataclass(frozen=True)
class TrainRecipe:
    """One offline training run (MIA's first stage) for the planner and executor adapters."""

    name: str = field(default="custom", metadata={"help": "Recipe name, recorded in the run."})
    roles: tuple[str, ...] = field(default=("executor", "planner"), metadata={"help": "Roles to train."})
    data: DataFiles = field(default_factory=DataFiles, metadata={"help": "Training data files."})
    executor_sft: SFTStage = field(default_factory=SFTStage, metadata={"help": "Executor SFT settings."})
    planner_sft: SFTStage = field(default_factory=lambda: SFTStage(max_steps=60, examples=240, learning_rate=3e-4),
                                  metadata={"help": "Planner SFT settings."})
    grpo: GRPOStage = field(default_factory=GRPOStage, metadata={"help": "Alternating GRPO settings."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        metadata={"help": "Modules that get LoRA weights."})
    passage_chars: int = field(default=600, metadata={"help": "Characters per passage (the executor's setting)."})
    seed: int = field(default=0, metadata={"help": "Seed of example sampling and training."})
    init_from: str = field(default="", metadata={
        "help": "Folder with one adapter per role (a run folder, or the shipped adapters) that the SFT stages "
                "continue from instead of a fresh LoRA; empty starts fresh."})

    def __post_init__(self) -> None:
        bad = set(self.roles) - {"planner", "executor"}
        if bad or not self.roles:
            raise InvalidInputError(f"roles must be among 'planner', 'executor'; got {list(self.roles)}")
        for st in (self.executor_sft, self.planner_sft):
            if st.max_steps < 0 or st.batch_size < 1 or st.examples < 1:
                raise InvalidInputError(f"SFT stage settings out of range: {st}")
        if self.grpo.rounds < 0 or self.grpo.steps_per_round < 1 or self.grpo.group_size < 2:
            raise InvalidInputError(f"GRPO stage needs steps_per_round >= 1 and group_size >= 2: {self.grpo}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainRecipe:
        kw = dict(data)
        files: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in kw["data"].items()}
        kw["data"] = DataFiles(**files)
        kw["executor_sft"] = SFTStage(**kw["executor_sft"])
        kw["planner_sft"] = SFTStage(**kw["planner_sft"])
        kw["grpo"] = GRPOStage(**kw["grpo"])
        for k in ("roles", "target_modules"):
            kw[k] = tuple(kw[k])
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in kw.items() if k in names})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1))

    def with_steps(self, max_steps: int | None) -> TrainRecipe:
        """The recipe with every SFT stage capped at ``max_steps`` (the ``--max-steps`` option)."""
        if max_steps is None:
            return self
        return replace(self, executor_sft=replace(self.executor_sft, max_steps=min(self.executor_sft.max_steps, max_steps)),
                       planner_sft=replace(self.planner_sft, max_steps=min(self.planner_sft.max_steps, max_steps)),
                       grpo=replace(self.grpo, steps_per_round=min(self.grpo.steps_per_round, max_steps)))


def _tiny(data: DataFiles) -> TrainRecipe:
    return TrainRecipe(name="tiny", data=data,
                       executor_sft=SFTStage(max_steps=3, batch_size=2, examples=8, save_steps=2, max_length=512),
                       planner_sft=SFTStage(max_steps=2, batch_size=2, examples=6, save_steps=2, max_length=384),
                       grpo=GRPOStage(rounds=1, steps_per_round=1, group_size=2, questions=2, planner_tokens=48,
                                      executor_tokens=12),
                       lora_r=4, lora_alpha=8)


def _bundled(data: DataFiles) -> TrainRecipe:
    # Sized for a 2-core CPU shared with other work (~30-110 trained tokens/s): under an hour in all.
    return TrainRecipe(name="bundled", data=data,
                       executor_sft=SFTStage(max_steps=40, batch_size=4, examples=160, learning_rate=5e-4,
                                             save_steps=5),
                       planner_sft=SFTStage(max_steps=24, batch_size=4, examples=96, learning_rate=5e-4,
                                            save_steps=6),
                       grpo=GRPOStage(rounds=1, steps_per_round=2, questions=16))


def _reader(data: DataFiles) -> TrainRecipe:
    # The executor is the role the bundled model is weakest at; this pass gives it 3x the first pass's examples.
    return TrainRecipe(name="reader", roles=("executor",), data=data, seed=1,
                       executor_sft=SFTStage(max_steps=120, batch_size=4, examples=480, learning_rate=3e-4,
                                             save_steps=8),
                       grpo=GRPOStage(rounds=0))


PRESETS = {"bundled": _bundled, "reader": _reader, "tiny": _tiny}


def recipe_preset(name: str, data: DataFiles) -> TrainRecipe:
    if name not in PRESETS:
        raise InvalidInputError(f"unknown recipe {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name](data)
