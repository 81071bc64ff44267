"""The Judge: with a gold answer, exact match and token F1 (optionally an LLM judge); without one, MIA's
unsupervised judgment (three evaluators, reasoning 0.5 / sourcing 0.3 / validity 0.2, then an arbiter) or,
cheaper, agreement with the majority answer of a group (test-time RL by voting).

Simplified: each evaluator returns one 0-10 number; the arbiter sees the three scores and says correct/incorrect,
and when its reply is unclear the weighted score decides. An evaluator reply with no number makes the verdict
``unknown`` (counted in ``stats``): a guess there would let garbage pass. Answers that are empty or only restate the
question are ``incorrect`` before any model is asked, with or without gold.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._text import exact_match, normalize_answer, token_f1
from ..llm.base import GenerationConfig
from . import prompts
from .records import Judgement, Usage, call_model

__all__ = ["JudgeConfig", "Judge", "majority_vote", "vacuous_answer"]


@dataclass
class JudgeConfig:
    """How answers are judged."""

    f1_threshold: float = field(default=0.5, metadata={"help": "F1 at or above which a gold-judged answer is correct."})
    llm_with_gold: bool = field(default=False, metadata={"help": "Ask the model too when EM/F1 say incorrect."})
    without_gold: str = field(default="evaluators", metadata={"help": "'evaluators' (3 + arbiter) or 'none'."})
    weights: tuple[float, float, float] = field(default=(0.5, 0.3, 0.2),
                                                metadata={"help": "Weights of reasoning, sourcing, validity."})
    pass_score: float = field(default=0.5, metadata={"help": "Weighted evaluator score at which the arbiter's "
                                                            "unclear reply counts as correct."})

    def __post_init__(self) -> None:
        if not 0 <= self.f1_threshold <= 1:
            raise ValueError(f"f1_threshold must be in [0, 1], got {self.f1_threshold}")
        if self.without_gold not in ("evaluators", "none"):
            raise ValueError(f"without_gold must be 'evaluators' or 'none', got {self.without_gold!r}")
        if len(self.weights) != 3 or abs(sum(self.weights) - 1) > 1e-6:
            raise ValueError(f"weights must be three numbers summing to 1, got {self.weights}")


def vacuous_answer(question: str, answer: str) -> str | None:
    """Why ``answer`` cannot be correct whatever a model says (``"empty"``, ``"restates the question"``), or None.

    >>> vacuous_answer("Where was Alpha founded?", "  "), vacuous_answer("Where was Alpha founded?", "where was alpha founded")
    ('empty', 'restates the question')
    >>> vacuous_answer("Is it Paris or Lyon?", "Paris") is None
    True
    """
    norm = normalize_answer(answer)
    if not norm or not any(ch.isalnum() for ch in norm):
        return "empty"
    q_words = set(normalize_answer(question).split())
    a_words = set(norm.split())
    if q_words and a_words <= q_words and len(a_words) >= 0.8 * len(q_words):
        return "restates the question"
    return None


def _number(text: str) -> float | None:
    m = re.search(r"\d+(?:\.\d+)?", text or "")
    return min(max(float(m.group()), 0.0), 10.0) if m else None


class Judge:
    """Judges answers. ``model`` is only needed for the LLM judge and the unsupervised evaluators."""

    def __init__(self, model: Any = None, config: JudgeConfig | None = None):
        self.model = model
        self.config = config or JudgeConfig()
        self.stats: Counter[str] = Counter()

    def score_gold(self, answer: str, gold: str | Sequence[str]) -> Judgement:
        """EM and token F1 against the gold answer (the best over aliases)."""
        golds = [gold] if isinstance(gold, str) else list(gold)
        em = max(exact_match(answer, g) for g in golds)
        f1 = max(token_f1(answer, g) for g in golds)
        ok = em == 1.0 or f1 >= self.config.f1_threshold
        return Judgement(label="correct" if ok else "incorrect", score=f1, method="gold", em=em, f1=f1)

    def judge(self, question: str, answer: str, gold: str | Sequence[str] | None = None, evidence: str = "",
              *, usage: Usage | None = None) -> Judgement:
        if gold is not None and gold != "" and gold != []:
            j = self.score_gold(answer, gold)
            if (j.label == "incorrect" and self.config.llm_with_gold and self.model is not None
                    and vacuous_answer(question, answer) is None):
                g = gold if isinstance(gold, str) else gold[0]
                reply = call_model(self.model, prompts.llm_judge_prompt(question, answer, g),
                                   GenerationConfig(max_tokens=3), usage).text.strip().lower()
                if reply.startswith("yes"):
                    return Judgement(label="correct", score=max(j.score, 0.5), method="llm", em=j.em, f1=j.f1,
                                     details={"llm": reply})
            return j
        if self.config.without_gold == "none" or self.model is None:
            return Judgement(label="unknown", score=0.0, method="none")
        return self.evaluate(question, answer, evidence, usage=usage)

    def evaluate(self, question: str, answer: str, evidence: str, *, usage: Usage | None = None) -> Judgement:
        """Three evaluators and an arbiter (no gold answer); ``unknown`` when an evaluator's reply has no score."""
        why = vacuous_answer(question, answer)
        if why is not None:
            self.stats["vacuous_answers"] += 1
            return Judgement(label="incorrect", score=0.0, method="evaluators", details={"vacuous": why})
        scores: dict[str, float] = {}
        for aspect in prompts.EVALUATORS:
            reply = call_model(self.model, prompts.evaluator_prompt(aspect, question, answer, evidence),
                               GenerationConfig(max_tokens=4), usage).text
            value = _number(reply)
            if value is None:
                self.stats["evaluator_unparsed"] += 1
                self.stats["unknown"] += 1
                return Judgement(label="unknown", score=0.0, method="evaluators",
                                 details={"scores": scores, "unparsed": aspect, "reply": reply[:200]})
            scores[aspect] = value
        weighted = sum(w * scores[a] / 10 for w, a in zip(self.config.weights, prompts.EVALUATORS, strict=True))
        reply = call_model(self.model, prompts.arbiter_prompt(question, answer, scores),
                           GenerationConfig(max_tokens=3), usage).text.strip().lower()
        if reply.startswith("correct"):
            label = "correct"
        elif reply.startswith("incorrect"):
            label = "incorrect"
        else:
            self.stats["arbiter_unparsed"] += 1
            label = "correct" if weighted >= self.config.pass_score else "incorrect"
        return Judgement(label=label, score=weighted, method="evaluators", details={"scores": scores,
                                                                                    "arbiter": reply})


def majority_vote(answers: Sequence[str]) -> tuple[str, list[Judgement]]:
    """The majority answer (by normalised text; the first seen wins ties) and each answer's agreement with it.

    >>> ans, js = majority_vote(["Paris", "paris.", "Lyon"])
    >>> ans, [j.label for j in js]
    ('Paris', ['correct', 'correct', 'incorrect'])
    """
    norms = [normalize_answer(a) for a in answers]
    counts = Counter(n for n in norms if n)
    if not counts:
        return "", [Judgement(label="incorrect", score=0.0, method="vote") for _ in answers]
    top = max(counts.values())
    winner = next(n for n in norms if n and counts[n] == top)
    majority = answers[norms.index(winner)]
    share = top / len(answers)
    out = [Judgement(label="correct" if n == winner else "incorrect", score=1.0 if n == winner else 0.0,
                     method="vote", details={"majority": majority, "share": share}) for n in norms]
    return majority, out
