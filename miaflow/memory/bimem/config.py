"""Bi-Mem settings. One dataclass; each field's help text is the single place it is documented."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BiMemConfig", "MODES"]

MODES = ("flat", "top_down", "bottom_up", "graph")


@dataclass(kw_only=True)
class BiMemConfig:
    """How Bi-Mem builds its levels and retrieves from them.

    Retrieval defaults were tuned on LoCoMo samples 0-4 (fast mode, evidence recall@10): the temporal and speaker
    (persona) paths carry most of the gain over the hybrid seeds, then query expansion (multi-hop questions) and
    dates named in the query (temporal and single-hop questions)."""

    # graph construction
    similarity_threshold: float = field(default=0.55, metadata={"help": "cosine above which two facts are linked"})
    similarity_neighbors: int = field(default=5, metadata={"help": "at most this many similarity edges per new fact"})
    entity_max_df: float = field(
        default=0.05, metadata={"help": "entities in more than this share of a conversation's facts link nothing"}
    )
    temporal_window: int = field(default=1, metadata={"help": "link facts this many turns apart within a session"})
    community: str = field(default="label_propagation", metadata={"help": "'label_propagation' or 'louvain'"})
    max_scene_size: int = field(default=12, metadata={"help": "larger communities are split in time order"})
    summary_sentences: int = field(default=3, metadata={"help": "facts kept in an extractive scene summary"})
    seed: int = field(default=0, metadata={"help": "random seed of community detection"})
    # LLM mode
    extraction_window: int = field(default=6, metadata={"help": "turns per LLM fact-extraction call"})
    reflect: bool = field(default=True, metadata={"help": "check scene summaries against personas (LLM mode)"})
    persona_lines: int = field(default=5, metadata={"help": "facts kept in an extractive persona (fast mode)"})
    # retrieval
    dense_weight: float = field(default=0.5, metadata={"help": "seed = w*dense + (1-w)*minmax(BM25)"})
    seeds: int = field(default=20, metadata={"help": "facts seeded before spreading activation"})
    decay: float = field(default=0.5, metadata={"help": "activation kept per hop between levels"})
    temporal_decay: float = field(default=0.85, metadata={"help": "activation passed to the next/previous turn's fact"})
    entity_decay: float = field(default=0.3, metadata={"help": "activation passed to facts sharing a rare entity"})
    scene_fanout: int = field(default=5, metadata={"help": "facts an activated scene activates"})
    hops: int = field(default=2, metadata={"help": "rounds of spreading activation"})
    top_down: tuple[int, int, int] = field(default=(2, 3, 5), metadata={"help": "persona / scene / fact counts"})
    boost_seeds: bool = field(default=False, metadata={
        "help": "apply the persona boost before choosing seeds (True) or to activated facts after spreading"})
    speaker_boost: float = field(default=0.3, metadata={"help": "added to facts of a speaker named in the query"})
    expansion_weight: float = field(default=0.6, metadata={
        "help": "weight of BM25 over the conversation's words closest to the query's rare words (0 = no expansion)"})
    expansion_neighbors: int = field(default=5, metadata={"help": "words a query word expands into, at most"})
    expansion_threshold: float = field(default=0.5, metadata={"help": "cosine a word needs to join an expansion"})
    expansion_max_df: float = field(default=0.05, metadata={
        "help": "query words in more than this share of a conversation's facts are not expanded"})
    session_weight: float = field(default=0.05, metadata={
        "help": "added to a fact's seed times its session's score (min-max of the sum of its best seeds)"})
    session_top: int = field(default=3, metadata={"help": "best fact seeds summed into a session's score"})
    question_penalty: float = field(default=0.1, metadata={
        "help": "taken from facts that only ask a question (they rarely hold the answer)"})
    date_boost: float = field(default=0.2, metadata={
        "help": "added to the seed of facts dated within a date the query names (0 = ignore dates)"})
    max_turn_chars: int | None = field(default=8000, metadata={
        "help": "longer turns keep their head and end with a '[... N characters cut]' marker (None: no cap)"})
    date_window: tuple[int, int] = field(default=(2, 7), metadata={
        "help": "days before and after a named date that still match (reports of 'last week' come later)"})

    def __post_init__(self) -> None:
        bad = []
        if not -1.0 <= self.similarity_threshold <= 1.0:
            bad.append(f"similarity_threshold={self.similarity_threshold} (must be in [-1, 1])")
        if self.community not in ("label_propagation", "louvain"):
            bad.append(f"community={self.community!r} (must be 'label_propagation' or 'louvain')")
        if not 0.0 <= self.dense_weight <= 1.0:
            bad.append(f"dense_weight={self.dense_weight} (must be in [0, 1])")
        if not 0.0 <= self.decay <= 1.0 or not 0.0 <= self.temporal_decay <= 1.0 \
                or not 0.0 <= self.entity_decay <= 1.0:
            bad.append(f"decay={self.decay}, temporal_decay={self.temporal_decay}, entity_decay={self.entity_decay} (must be in [0, 1])")
        for name in ("similarity_neighbors", "max_scene_size", "summary_sentences", "extraction_window", "seeds",
                     "scene_fanout", "persona_lines", "expansion_neighbors", "session_top"):
            if getattr(self, name) < 1:
                bad.append(f"{name}={getattr(self, name)} (must be >= 1)")
        if self.hops < 0 or self.temporal_window < 0:
            bad.append(f"hops={self.hops}, temporal_window={self.temporal_window} (must be >= 0)")
        if len(self.top_down) != 3 or min(self.top_down) < 0:
            bad.append(f"top_down={self.top_down} (three counts >= 0)")
        if not 0.0 <= self.entity_max_df <= 1.0:
            bad.append(f"entity_max_df={self.entity_max_df} (must be in [0, 1])")
        for name in ("expansion_weight", "session_weight", "question_penalty", "date_boost"):
            if getattr(self, name) < 0:
                bad.append(f"{name}={getattr(self, name)} (must be >= 0)")
        if not 0.0 <= self.expansion_max_df <= 1.0 or not -1.0 <= self.expansion_threshold <= 1.0:
            bad.append(f"expansion_max_df={self.expansion_max_df} (in [0, 1]), expansion_threshold="
                       f"{self.expansion_threshold} (in [-1, 1])")
        if len(self.date_window) != 2 or min(self.date_window) < 0:
            bad.append(f"date_window={self.date_window} (two day counts >= 0)")
        if self.max_turn_chars is not None and self.max_turn_chars < 64:
            bad.append(f"max_turn_chars={self.max_turn_chars} (must be >= 64 or None)")
        if bad:
            raise ValueError("invalid BiMemConfig: " + "; ".join(bad))
