"""Training examples for the offline stage, built from the structure of QA data sets, in the prompts the workflow uses.

Executor (reader) examples
    The prompt is exactly what :class:`~miaflow.agents.executor.Executor` sends when it answers: the executor system
    prompt and :func:`~miaflow.agents.prompts.answer_prompt` over 2-4 passages (the gold ones plus distractors from
    the same record, shuffled, each clipped as the workflow clips it). The target is ``"<answer> [<doc id>]"``: the
    gold answer span and the id of the passage that holds it.
    - HotpotQA (distractor setting, Hugging Face schema): the supporting paragraphs are gold; ids are titles, as the
      corpus loader gives them. The cited passage is the gold one containing the answer (the second supporting
      title for yes/no and when no gold passage contains the answer string).
    - SQuAD v1.1: the question's paragraph is gold, other paragraphs of the same article are distractors. Ids mimic
      the two id styles a user's corpus has: ``"Title #<hash>"`` (JSONL / MuSiQue-style) and a file path
      (``"title/p3.md"``, a folder corpus).

Planner examples
    The prompt is :meth:`~miaflow.agents.planner.Planner.messages` (sometimes with recalled exemplars, rendered as
    the workflow renders them: other training questions with their target plans). The target is one ``Thinking:``
    sentence and a numbered plan of atomic search steps that :func:`~miaflow.agents.planner.parse_plan` accepts and
    that states no answer:
    - MuSiQue: one step per question decomposition step; each sub-question becomes "Search for <its phrase>",
      with ``#k`` (an earlier step's answer) replaced by "the result of step k", so no intermediate answer leaks.
    - HotpotQA comparison: "Search for A", "Search for B", then "Compare ... and answer".
    - HotpotQA bridge: "Search for <the supporting title named in the question>", then a search for what the
      question asks about that entity's linked entity, phrased from the question, never from the answer.
    Every target is checked with ``parse_plan`` (no fallback) and against the gold answer (not contained).

Files are read from paths given by the caller; nothing here depends on the project's shared data. Every function is
deterministic for a given seed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...agents import prompts
from ...agents.planner import Planner, PlannerConfig, parse_plan
from ...errors import InvalidInputError

__all__ = [
    "SFTExample", "read_jsonl", "file_sha256", "hotpot_reader_examples", "squad_reader_examples",
    "musique_planner_examples", "hotpot_planner_examples", "executor_messages", "planner_target_ok",
]


@dataclass(frozen=True)
class SFTExample:
    """One supervised example in TRL's conversational prompt-completion form."""

    prompt: list[dict[str, str]]
    completion: str
    source: str = field(default="")
    qid: str = field(default="")

    def as_row(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "completion": [{"role": "assistant", "content": self.completion}],
                "source": self.source, "qid": self.qid}


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSON Lines file (``.gz`` read transparently) or of a JSON list file."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"training data file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        data = json.loads(text)
        if not isinstance(data, list):
            raise InvalidInputError(f"{path}: expected a JSON list of records")
        return data
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InvalidInputError(f"{path}, line {n}: not JSON ({e.msg})") from e
    return rows


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def executor_messages(question: str, passages: Sequence[tuple[str, str, str]], *, chars: int = 600
                      ) -> list[dict[str, str]]:
    """The executor's answering messages, as the workflow builds them."""
    return [{"role": "system", "content": prompts.EXECUTOR_SYSTEM},
            {"role": "user", "content": prompts.answer_prompt(question, passages, chars=chars)}]


def _norm(s: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", s.lower()))


def _n_passages(rng: random.Random, n_gold: int) -> int:
    return max(n_gold, rng.choice((2, 3, 3, 4)))


def _hotpot_paragraphs(rec: dict[str, Any]) -> list[tuple[str, str]]:
    ctx = rec.get("context") or {}
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(ctx, dict):
        pairs = zip(ctx.get("title", []), ctx.get("sentences", []), strict=False)
    else:
        pairs = ((c[0], c[1]) for c in ctx)
    return [(str(t).strip(), "".join(s).strip()) for t, s in pairs if str(t).strip() and "".join(s).strip()]


def _support_titles(rec: dict[str, Any]) -> list[str]:
    sf = rec.get("supporting_facts") or {}
    titles = sf.get("title", []) if isinstance(sf, dict) else [f[0] for f in sf]
    return list(dict.fromkeys(str(t).strip() for t in titles))


def hotpot_reader_examples(records: Iterable[dict[str, Any]], *, seed: int = 0, chars: int = 600,
                           source: str = "hotpotqa") -> list[SFTExample]:
    """Reader examples from HotpotQA distractor records (see the module docstring)."""
    rng = random.Random(seed)
    out = []
    for rec in records:
        paras = dict(_hotpot_paragraphs(rec))
        gold = [t for t in _support_titles(rec) if t in paras]
        answer = str(rec.get("answer", "")).strip()
        if not gold or not answer:
            continue
        yesno = _norm(answer) in ("yes", "no")
        holding = [t for t in gold if _norm(answer) in _norm(paras[t][:chars])]
        if not yesno and not holding:
            continue  # the answer would not be visible in the clipped passage: nothing to learn to read
        cite = holding[0] if holding else gold[-1]
        others = [t for t in paras if t not in gold]
        rng.shuffle(others)
        shown = gold + others[: _n_passages(rng, len(gold)) - len(gold)]
        rng.shuffle(shown)
        passages = [(t, t, paras[t]) for t in shown]
        out.append(SFTExample(executor_messages(rec["question"], passages, chars=chars), f"{answer} [{cite}]",
                              source, str(rec.get("id", ""))))
    return out


def _squad_id(title: str, text: str, k: int, style: int) -> str:
    name = title.replace("_", " ")
    if style == 0:
        return f"{name} #{hashlib.sha1(text.encode('utf-8')).hexdigest()[:6]}"
    return f"{title.lower()}/p{k}.md"


def squad_reader_examples(records: Iterable[dict[str, Any]], *, seed: int = 0, chars: int = 600,
                          source: str = "squad") -> list[SFTExample]:
    """Reader examples from SQuAD v1.1 records; other paragraphs of the same article are the distractors."""
    rng = random.Random(seed)
    records = list(records)
    by_title: dict[str, list[str]] = {}
    for r in records:
        ctxs = by_title.setdefault(r["title"], [])
        if r["context"] not in ctxs:
            ctxs.append(r["context"])
    out = []
    for r in records:
        answers = [a for a in r.get("answers", []) if a.strip()]
        ctx = r["context"]
        if not answers:
            continue
        answer = min(answers, key=len)
        if _norm(answer) not in _norm(ctx[:chars]):
            continue
        style = rng.randrange(2)
        pool = [c for c in by_title[r["title"]] if c != ctx]
        rng.shuffle(pool)
        shown = [ctx] + pool[: _n_passages(rng, 1) - 1]
        rng.shuffle(shown)
        index = by_title[r["title"]]
        passages = [(_squad_id(r["title"], c, index.index(c), style), r["title"].replace("_", " "), c) for c in shown]
        cite = passages[shown.index(ctx)][0]
        out.append(SFTExample(executor_messages(r["question"], passages, chars=chars), f"{answer} [{cite}]",
                              source, str(r.get("id", ""))))
    return out


# ----- planner targets -------------------------------------------------------------------------------------------
_WH = re.compile(r"^\s*(?:who|whom|whose|what|which|when|where|why|how(?:\s+(?:many|much|long|old|far))?|in\s+which|"
                 r"in\s+what|on\s+what|at\s+what)\b\s*(?:(?:is|was|are|were|did|does|do|has|had|have|can|could|will)\b)?\s*",
                 re.IGNORECASE)


def _phrase(question: str) -> str:
    """A search phrase from a (sub-)question: its wh-word and auxiliary dropped, ``#k`` made a step reference."""
    q = " ".join(question.replace("?", " ").split())
    q = re.sub(r"#(\d+)", r"the result of step \1", q)
    p = _WH.sub("", q).strip(" .,")
    return p if len(p.split()) >= 2 else q.strip(" .,")


def planner_target_ok(target: str, question: str, answer: str, max_steps: int = 5) -> bool:
    """A target plan the parser accepts without falling back, within the step limit, that does not state the answer."""
    plan = parse_plan(target, question, max_steps=max_steps)
    body = _norm(" ".join(plan.steps))
    ans = _norm(answer)
    leaks = bool(ans) and ans not in ("yes", "no") and ans not in _norm(question) and f" {ans} " in f" {body} "
    return not plan.fallback and len(plan.steps) == len(re.findall(r"^\d+\.", target, re.MULTILINE)) and not leaks


def _plan_text(thinking: str, steps: Sequence[str]) -> str:
    return "Thinking: " + thinking + "\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))


def musique_planner_examples(records: Iterable[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(qid, question, answer, target plan) from MuSiQue question decompositions."""
    out = []
    for r in records:
        decomp = r.get("question_decomposition") or []
        if not decomp:
            continue
        phrases = [_phrase(d["question"]) for d in decomp][:4]
        steps = [f"Search for {p}." for p in phrases] + ["Answer the question from the documents."]
        thinking = f"The question has {len(phrases)} parts, each found with one search."
        out.append((str(r.get("id", "")), r["question"], str(r.get("answer", "")), _plan_text(thinking, steps)))
    return out


def hotpot_planner_examples(records: Iterable[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(qid, question, answer, target plan) from HotpotQA supporting titles and question type."""
    out = []
    for r in records:
        titles = _support_titles(r)
        q = r["question"]
        if len(titles) < 2:
            continue
        # titles lose their disambiguation ("High School (1968 film)" -> "High School"): the planner only knows
        # what the question says, and a year in brackets may be the very answer
        a, b = (t.split(" (")[0].strip() for t in titles[:2])
        if r.get("type") == "comparison":
            steps = [f"Search for {a}.", f"Search for {b}.", "Compare the two and answer the question."]
            thinking = "Two entities are compared: find each one, then compare."
        else:
            named = [t for t in (a, b) if _norm(t) and _norm(t) in _norm(q)]
            first = named[0] if named else a
            steps = [f"Search for {first}.", "Read the top documents.",
                     f"Search for {_phrase(q)}.", "Answer the question from the documents."]
            thinking = f"Two hops: first {first}, then what the question asks about the entity it leads to."
        out.append((str(r.get("id", "")), q, str(r.get("answer", "")), _plan_text(thinking, steps)))
    return out


def planner_examples(items: Sequence[tuple[str, str, str, str]], *, seed: int = 0, exemplar_rate: float = 0.3,
                     source: str = "planner", config: PlannerConfig | None = None) -> list[SFTExample]:
    """Planner SFT examples; a share of them carry 1-2 recalled exemplars (other items' plans) in the prompt."""
    rng = random.Random(seed)
    planner = Planner(model=None, config=config or PlannerConfig())
    kept = [it for it in items if planner_target_ok(it[3], it[1], it[2], planner.config.max_steps)]
    out = []
    for qid, question, _answer, target in kept:
        memories: dict[str, Any] = {}
        if len(kept) > 3 and rng.random() < exemplar_rate:
            picks = rng.sample([k for k in kept if k[0] != qid], rng.choice((1, 2)))
            memories["positive"] = [{"question": k[1], "plan": k[3].split("\n", 1)[1]} for k in picks]
        out.append(SFTExample(planner.messages(question, memories), target, source, qid))
    return out
