"""The Planner (MIA): a numbered plan of atomic steps from the question and recalled memories; reflection (replan
yes/no) after a first answer; a supplementary replan; n samples in one call; best-of-n picked by the model.

Small models garble plans. The text is parsed leniently (numbered or bulleted lines, else a JSON list); steps that
are empty, too long or state an answer are dropped; when nothing usable is left the default plan (search the
question, read the top documents, answer) is used and counted in ``stats["fallback"]``.
Simplified: the thinking part is one sentence, kept out of the plan the executor sees.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..llm.base import GenerationConfig, Message
from ..llm.structured import extract_json, parse_numbered_list
from . import prompts
from .records import Plan, Usage, call_model

__all__ = ["PlannerConfig", "Planner", "default_plan", "parse_plan"]


@dataclass
class PlannerConfig:
    """Settings of the planner's model calls and plan parsing."""

    max_steps: int = field(default=5, metadata={"help": "Steps kept from a plan (later ones are dropped)."})
    max_replan_steps: int = field(default=3, metadata={"help": "Steps kept from a supplementary replan."})
    max_tokens: int = field(default=128, metadata={"help": "Token budget of a plan (MIA allows ~400 words)."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature of a single plan."})
    group_temperature: float = field(default=0.8, metadata={"help": "Temperature when sampling n plans."})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter of the planner (None: base)."})
    max_step_chars: int = field(default=200, metadata={"help": "Longer steps are cut to this many characters."})

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.max_replan_steps < 1:
            raise ValueError(f"max_steps and max_replan_steps must be >= 1, got {self.max_steps}, "
                             f"{self.max_replan_steps}")
        if self.max_tokens < 8:
            raise ValueError(f"max_tokens must be >= 8, got {self.max_tokens}")


def default_plan(question: str) -> tuple[str, ...]:
    """The plan used when the model's plan is unusable."""
    return (f"Search for {question.strip().rstrip('?')}.", "Read the top documents.",
            "Answer the question from the documents.")


_ANSWERY = re.compile(r"^\s*(final\s+)?answer\s*[:=]|\bthe answer is\b|^\s*(think|thinking|write the plan|the plan is)\b",
                      re.IGNORECASE)
_THINK = re.compile(r"<think>(.*?)</think>|^[ \t]*thinking[ \t]*:[ \t]*([^\n]*)$", re.IGNORECASE | re.DOTALL | re.MULTILINE)


def _split_steps(text: str) -> list[str]:
    items = parse_numbered_list(text)
    if not items:
        data = extract_json(text)
        if isinstance(data, dict):
            data = data.get("steps") or data.get("plan")
        if isinstance(data, list):
            items = [str(x) for x in data if isinstance(x, str | int | float)]
    return items


def _degenerate(step: str) -> bool:
    """A step that repeats itself (a small model's loop) or has almost no words."""
    words = re.findall(r"[a-z]+", step.lower())
    return len(words) < 2 or (len(words) >= 6 and len(set(words)) / len(words) < 0.5)


def parse_plan(text: str, question: str, *, max_steps: int = 5, max_chars: int = 200) -> Plan:
    """Parse a model's plan text into a :class:`Plan`, falling back to :func:`default_plan`.

    >>> parse_plan("Thinking: two hops.\\n1. Search for the band\\n2. Find its first show", "q").steps
    ('Search for the band', 'Find its first show')
    >>> parse_plan("garbled ###", "Who won?").fallback
    True
    >>> parse_plan("1. Think: Thinking: Thinking: Thinking: Thinking: Thinking:", "Who won?").fallback
    True
    """
    text = text or ""
    m = _THINK.search(text)
    thinking = (m.group(1) or m.group(2) or "").strip() if m else ""
    body = _THINK.sub("", text)
    steps: list[str] = []
    seen: set[str] = set()
    for item in _split_steps(body):
        step = " ".join(item.split()).strip(" *#`")
        step = step[:max_chars].strip()
        key = step.lower()
        if len(step.split()) < 2 or _ANSWERY.search(step) or key in seen or _degenerate(step):
            continue
        seen.add(key)
        steps.append(step)
        if len(steps) == max_steps:
            break
    if not steps:
        return Plan(steps=default_plan(question), thinking=thinking, raw=text, fallback=True)
    return Plan(steps=tuple(steps), thinking=thinking, raw=text)


class Planner:
    """Writes plans with a chat model. Any object with ``plan``/``reflect``/``replan``/``messages`` can replace it."""

    def __init__(self, model: Any, config: PlannerConfig | None = None):
        self.model = model
        self.config = config or PlannerConfig()
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, key: str, k: int = 1) -> None:
        with self._lock:
            self.stats[key] += k

    def _gen(self, **kw: Any) -> GenerationConfig:
        base = GenerationConfig(max_tokens=self.config.max_tokens, temperature=self.config.temperature,
                                adapter=self.config.adapter)
        return replace(base, **kw)

    def messages(self, question: str, memories: dict[str, Any] | None = None, context: str = "") -> list[Message]:
        """The planner's chat messages (the prompt GRPO trains on)."""
        memories = memories or {}
        user = prompts.plan_prompt(question, memories.get("positive", ()), memories.get("negative", ()),
                                   context or memories.get("conversation", ""), max_steps=self.config.max_steps)
        return [{"role": "system", "content": prompts.PLANNER_SYSTEM}, {"role": "user", "content": user}]

    def plan(self, question: str, memories: dict[str, Any] | None = None, *, n: int = 1,
             usage: Usage | None = None, adapter: str | None = None, messages: list[Message] | None = None
             ) -> list[Plan]:
        """Sample ``n`` plans in one model call (greedy when n == 1 and temperature is 0)."""
        msgs = messages or self.messages(question, memories)
        temp = self.config.temperature if n == 1 else max(self.config.group_temperature, 1e-3)
        cfg = self._gen(n=n, temperature=temp, adapter=adapter if adapter is not None else self.config.adapter)
        result = call_model(self.model, msgs, cfg, usage)
        plans = [parse_plan(t, question, max_steps=self.config.max_steps, max_chars=self.config.max_step_chars)
                 for t in result.texts[:n]]
        self._count("plans", len(plans))
        self._count("fallback", sum(p.fallback for p in plans))
        return plans

    def choose(self, question: str, plans: Sequence[Plan], *, usage: Usage | None = None) -> int:
        """Best-of-n: the index of the plan the model prefers (the first usable plan when it does not say)."""
        usable = [i for i, p in enumerate(plans) if not p.fallback] or [0]
        if len(plans) < 2:
            return 0
        text = call_model(self.model, prompts.choose_prompt(question, [p.text for p in plans]),
                          self._gen(max_tokens=4, temperature=0.0), usage).text
        m = re.search(r"\b([A-Z])\b", text.strip().upper()) or re.search(r"([A-Z])", text.strip().upper())
        if m and 0 <= ord(m.group(1)) - 65 < len(plans):
            return ord(m.group(1)) - 65
        self._count("choose_unparsed")
        return usable[0]

    def reflect(self, question: str, plan: Plan, answer: str, evidence: str, *, usage: Usage | None = None,
                adapter: str | None = None) -> bool:
        """True when the model asks to replan. An empty answer always replans; an unclear reply does not."""
        if not answer.strip():
            return True
        text = call_model(self.model, prompts.reflect_prompt(question, plan.text, answer, evidence),
                          self._gen(max_tokens=4, temperature=0.0, adapter=adapter or self.config.adapter),
                          usage).text.strip().lower()
        return text.startswith("yes")

    def replan(self, question: str, plan: Plan, answer: str, evidence: str, *, usage: Usage | None = None,
               adapter: str | None = None) -> Plan:
        """A supplementary plan for what is still missing."""
        msgs = [{"role": "system", "content": prompts.PLANNER_SYSTEM},
                {"role": "user", "content": prompts.replan_prompt(question, plan.text, answer, evidence,
                                                                  max_steps=self.config.max_replan_steps)}]
        result = call_model(self.model, msgs, self._gen(adapter=adapter or self.config.adapter), usage)
        new = parse_plan(result.text, question, max_steps=self.config.max_replan_steps,
                         max_chars=self.config.max_step_chars)
        self._count("replans")
        self._count("replan_fallback", int(new.fallback))
        return new
