"""Every default figure of the trajectory store and of trajectory compression, in typed config dataclasses.

Figures follow MemRL (two-phase retrieval: k1=10 candidates above a similarity floor delta, then
0.5 * z(sim) + 0.5 * z(Q) z-scores clipped to +-3, keep k2=5, no memory at all when even the best similarity is under
tau; Q <- Q + alpha * (r - Q) with alpha=0.3 and Q0=0) and MIA (workflow summaries of at most 300 words; a
near-duplicate at cosine >= 0.9999 replaces an incorrect entry, or a correct one only when its summary is shorter).
delta and tau are not fixed by the papers for MiniLM; the defaults here were picked so unrelated questions fall under
tau and paraphrases stay above it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import InvalidInputError

__all__ = ["TrajectoryStoreConfig", "CompressionConfig"]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidInputError(message)


@dataclass(kw_only=True, frozen=True, slots=True)
class CompressionConfig:
    """How a finished trajectory becomes the short workflow summary that is stored (MIA)."""

    max_words: int = field(default=300, metadata={"help": "Upper bound on the summary's length in words (MIA: 300)."})
    max_llm_tokens: int = field(default=400, metadata={"help": "Generation budget for the LLM summary."})
    step_input_words: int = field(
        default=14, metadata={"help": "Extractive summary: words kept from each step's input (the query)."}
    )
    step_output_words: int = field(
        default=18, metadata={"help": "Extractive summary: words kept from each step's output (the observation)."}
    )
    min_llm_steps: int = field(
        default=1, metadata={"help": "An LLM summary with fewer numbered steps than this falls back to extractive."}
    )

    def __post_init__(self) -> None:
        _check(self.max_words >= 10, f"max_words must be >= 10, got {self.max_words}")
        _check(self.max_llm_tokens >= 16, f"max_llm_tokens must be >= 16, got {self.max_llm_tokens}")
        _check(self.step_input_words >= 1, f"step_input_words must be >= 1, got {self.step_input_words}")
        _check(self.step_output_words >= 1, f"step_output_words must be >= 1, got {self.step_output_words}")
        _check(self.min_llm_steps >= 1, f"min_llm_steps must be >= 1, got {self.min_llm_steps}")


@dataclass(kw_only=True, frozen=True, slots=True)
class TrajectoryStoreConfig:
    """Retrieval, utility-learning, write-rule and capacity settings of a :class:`TrajectoryStore`."""

    # --- two-phase recall (MemRL)
    k1: int = field(default=10, metadata={"help": "Phase A: candidates taken by cosine similarity."})
    k2: int = field(default=5, metadata={"help": "Phase B: memories kept after re-ranking with Q-values."})
    delta: float = field(default=0.25, metadata={"help": "Phase A similarity floor: candidates below it are dropped."})
    tau: float = field(
        default=0.35, metadata={"help": "If even the best similarity is under tau, no memory is used at all."}
    )
    sim_weight: float = field(default=0.5, metadata={"help": "Weight of z(similarity) in the phase-B score."})
    q_weight: float = field(default=0.5, metadata={"help": "Weight of z(Q) in the phase-B score."})
    z_clip: float = field(default=3.0, metadata={"help": "z-scores are clipped to +-z_clip."})
    epsilon: float = field(
        default=0.0, metadata={"help": "Epsilon-greedy exploration: with this probability keep a random k2 subset."}
    )
    seed: int | None = field(default=None, metadata={"help": "Seed of the exploration random generator."})
    # --- utility update (MemRL)
    alpha: float = field(default=0.3, metadata={"help": "Learning rate of Q <- Q + alpha * (r - Q)."})
    q_init: float = field(default=0.0, metadata={"help": "Q0, the utility of a new memory."})
    success_threshold: float = field(
        default=0.0, metadata={"help": "A reward above this counts as a success in success_count."}
    )
    compact_after_events: int = field(
        default=64, metadata={"help": "Fold a memory's pending utility events into its base once it has this many."}
    )
    compaction_grace_s: float = field(
        default=30.0,
        metadata={"help": "Only events older than this are folded, so concurrent writers never lose one."},
    )
    applied_window: int = field(
        default=512, metadata={"help": "Folded (task, memory) keys remembered per memory for idempotency."}
    )
    # --- write rules (MIA)
    duplicate_threshold: float | None = field(
        default=0.9999, metadata={"help": "Cosine at or above which a new trajectory is a near-duplicate (None: off)."}
    )
    # --- capacity
    max_records: int | None = field(
        default=None, metadata={"help": "Records per namespace before eviction (None: unlimited)."}
    )
    evict_fraction: float = field(
        default=0.05, metadata={"help": "Extra share of max_records evicted at once, to amortise the scan."}
    )
    recency_weight: float = field(
        default=0.5, metadata={"help": "Eviction keeps records by Q + recency_weight * 2^(-idle / half_life)."}
    )
    recency_half_life_s: float = field(
        default=7 * 24 * 3600.0, metadata={"help": "Half-life of the recency bonus used by eviction, in seconds."}
    )
    collection_prefix: str = field(default="mia-traj", metadata={"help": "Prefix of the Chroma collection names."})
    # --- size caps (longer text keeps its head and ends with a "[... N characters cut]" marker; None: no cap)
    max_question_chars: int | None = field(default=4000, metadata={"help": "Cap on a stored question."})
    max_answer_chars: int | None = field(default=4000, metadata={"help": "Cap on a stored answer."})
    max_plan_chars: int | None = field(default=8000, metadata={"help": "Cap on a stored plan."})
    max_summary_chars: int | None = field(default=8000, metadata={"help": "Cap on a stored workflow summary."})
    max_tool_output_chars: int | None = field(
        default=4000, metadata={"help": "Cap on each tool input and output of a trajectory, before compression."}
    )
    verify_on_open: bool = field(
        default=True, metadata={"help": "Check an embedded store against its manifest and vector index on open."}
    )

    def __post_init__(self) -> None:
        _check(self.k1 >= 1 and self.k2 >= 1, f"k1 and k2 must be >= 1, got k1={self.k1}, k2={self.k2}")
        _check(self.k2 <= self.k1, f"k2 must be <= k1, got k1={self.k1}, k2={self.k2}")
        _check(-1.0 <= self.delta <= 1.0, f"delta must be in [-1, 1], got {self.delta}")
        _check(-1.0 <= self.tau <= 1.0, f"tau must be in [-1, 1], got {self.tau}")
        for name in ("sim_weight", "q_weight", "z_clip", "recency_weight"):
            v = getattr(self, name)
            _check(math.isfinite(v) and v >= 0, f"{name} must be finite and >= 0, got {v}")
        _check(self.sim_weight + self.q_weight > 0, "sim_weight + q_weight must be > 0")
        _check(0.0 <= self.epsilon <= 1.0, f"epsilon must be in [0, 1], got {self.epsilon}")
        _check(0.0 < self.alpha <= 1.0, f"alpha must be in (0, 1], got {self.alpha}")
        _check(-1.0 <= self.q_init <= 1.0, f"q_init must be in [-1, 1], got {self.q_init}")
        _check(-1.0 <= self.success_threshold < 1.0, f"success_threshold must be in [-1, 1), got {self.success_threshold}")
        _check(self.compact_after_events >= 1, f"compact_after_events must be >= 1, got {self.compact_after_events}")
        _check(self.compaction_grace_s >= 0, f"compaction_grace_s must be >= 0, got {self.compaction_grace_s}")
        _check(self.applied_window >= 1, f"applied_window must be >= 1, got {self.applied_window}")
        if self.duplicate_threshold is not None:
            _check(0.0 < self.duplicate_threshold <= 1.0,
                   f"duplicate_threshold must be in (0, 1] or None, got {self.duplicate_threshold}")
        if self.max_records is not None:
            _check(self.max_records >= 1, f"max_records must be >= 1 or None, got {self.max_records}")
        _check(0.0 <= self.evict_fraction < 1.0, f"evict_fraction must be in [0, 1), got {self.evict_fraction}")
        _check(self.recency_half_life_s > 0, f"recency_half_life_s must be > 0, got {self.recency_half_life_s}")
        for name in ("max_question_chars", "max_answer_chars", "max_plan_chars", "max_summary_chars",
                     "max_tool_output_chars"):
            v = getattr(self, name)
            _check(v is None or v >= 64, f"{name} must be >= 64 or None, got {v}")
        _check(3 <= len(self.collection_prefix) <= 40 and self.collection_prefix[0].isalnum(),
               f"collection_prefix must be 3-40 characters starting alphanumeric, got {self.collection_prefix!r}")
