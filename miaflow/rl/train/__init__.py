"""Offline training (MIA's first stage): SFT warm start of the planner and executor adapters, then alternating
GRPO through TRL, written as versioned adapters with their recipe, data hashes and metrics.

Light on import: torch, trl and peft load only when a stage runs.
"""

from __future__ import annotations

from ..._lazy import lazy_exports

__all__ = ["TrainRecipe", "DataFiles", "SFTStage", "GRPOStage", "recipe_preset", "train", "TrainRun",
           "build_examples", "run_alternating", "run_sft"]

_WHERE = {
    "TrainRecipe": "recipe",
    "DataFiles": "recipe",
    "SFTStage": "recipe",
    "GRPOStage": "recipe",
    "recipe_preset": "recipe",
    "train": "run",
    "TrainRun": "run",
    "build_examples": "run",
    "run_alternating": "alternate",
    "run_sft": "sft",
}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
