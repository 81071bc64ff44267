"""LoCoMo memory benchmark: evidence recall@k of Bi-Mem's retrieval modes against BM25 and flat dense retrieval on
the same turns, with ingest and query costs, and (with --model) answer F1.

Fair counting: every method is read as the ordered list of turns it puts into the context (a fact brings its source
turns, a scene all the turns of its facts, a persona none); recall@k is the share of a question's gold evidence
turns among the first k of those turns, and the context tokens of the items that bring the first 10 turns are
reported beside it. Evidence ids that do not name a turn of the conversation are dropped (a few are malformed in
the released file); questions left without evidence are counted and skipped. Category 5 (adversarial) is reported
apart. Answer F1 follows the official scorer's rules (multi-hop: partial F1 over comma-separated sub-answers;
open-domain: the gold's first ';' alternative; adversarial: right when the answer abstains) without its stemming.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from .report import Timer

__all__ = ["command", "turns_recall", "locomo_f1"]

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
KS = (5, 10, 20)
ABSTAIN = ("no information available", "not mentioned")


def turns_recall(ranked_turns: list[str], gold: set[str], k: int) -> float:
    """Share of ``gold`` among the first ``k`` distinct turns of ``ranked_turns``.

    >>> turns_recall(["D1:1", "D1:2", "D1:1", "D2:5"], {"D1:2", "D2:5"}, 2)
    0.5
    """
    seen = list(dict.fromkeys(ranked_turns))[:k]
    return len(gold.intersection(seen)) / len(gold) if gold else 0.0


def _first_sessions(conv: Any, n: int) -> Any:
    """``conv`` cut to its first ``n`` sessions, with the questions whose evidence lies entirely in them."""
    import dataclasses

    kept = sorted({t.session for t in conv.turns})[:n]
    turns = tuple(t for t in conv.turns if t.session in kept)
    ids = {t.id for t in turns}
    qa = tuple(q for q in conv.qa if q.evidence and set(q.evidence) <= ids)
    return dataclasses.replace(conv, turns=turns, qa=qa)


def locomo_f1(prediction: str, answer: str, category: int) -> float:
    """The official LoCoMo answer score for one question (token F1 without stemming)."""
    from .._text import token_f1

    if category == 5:
        p = prediction.lower()
        return float(any(a in p for a in ABSTAIN))
    if category == 3:
        answer = answer.split(";")[0].strip()
    if category == 1:
        preds = [p.strip() for p in prediction.split(",")]
        golds = [g.strip() for g in answer.split(",")]
        return sum(max(token_f1(p, g) for p in preds) for g in golds) / len(golds)
    return token_f1(prediction, answer)


ANSWER_PROMPT = """Memories of a conversation:
{context}

Answer the question in a few words, using only the memories. If they do not contain the answer, say "No \
information available".
Question: {question}
Answer:"""


def command(
    data: Path = typer.Option(..., "--data", help="A LoCoMo-format JSON file (e.g. locomo10.json)."),
    out: Path = typer.Option(Path("bench-out"), "--out", help="Folder for locomo.json and the PNG chart."),
    modes: str = typer.Option("graph,flat,top_down,bottom_up", "--modes", help="Bi-Mem modes to measure."),
    conversations: int = typer.Option(0, "--conversations", help="Use only the first N conversations (0 = all)."),
    sessions: int = typer.Option(0, "--sessions", help=(
        "Use only the first N sessions of each conversation, and the questions whose evidence lies in them "
        "(0 = all); makes --llm-ingest runs short enough for a small model.")),
    model: str | None = typer.Option(None, "--model", help="Chat model for answer F1 (as load_chat_model takes)."),
    answer_mode: str = typer.Option("graph", "--answer-mode", help="Bi-Mem mode whose context the model reads."),
    max_answers: int = typer.Option(100, "--max-answers", help="Questions answered by the model, evenly spaced over the file (0 = all)."),
    llm_ingest: bool = typer.Option(False, "--llm-ingest", help="Build memory with the model (slow) instead of fast mode."),
    store: Path | None = typer.Option(None, "--store", help="Memory folder (default: a temporary folder)."),
    torch_threads: int = typer.Option(0, "--torch-threads", help=(
        "Threads torch may use for the embedder (0 = torch's default). On a small, busy machine 1 thread embeds "
        "several times faster than the default, which contends for the cores.")),
) -> None:
    """Bi-Mem on LoCoMo: evidence recall@5/10/20 per category against BM25 and dense baselines, costs, answer F1."""
    from .._import_utils import offline_env

    offline_env()
    from ..memory.bimem import load_locomo
    from ._locomo_report import build_report

    mode_list = _modes(modes)
    convs = load_locomo(data)[: conversations or None]
    if sessions:
        convs = [_first_sessions(c, sessions) for c in convs]
    llm = _chat_model(model) if model else None
    with _memory(store, llm if llm_ingest else None, torch_threads) as mem:
        config = {"data": str(data), "conversations": [c.sample_id for c in convs], "sessions": sessions,
                  "modes": mode_list, "model": model, "llm_ingest": llm_ingest, "torch_threads": torch_threads,
                  "bimem_config": mem.config.__dict__}
        texts = ingest(mem, convs)
        queries = embed_questions(mem, convs)
        methods = {"bm25": bm25_baseline(convs, texts), "dense": dense_baseline(mem, convs, texts, queries, llm_ingest),
                   **{f"bimem-{m}": bimem_method(mem, m, queries) for m in mode_list}}
        measured = measure_retrieval(convs, methods)
        answers = measure_answers(mem, llm, convs, answer_mode, max_answers) if llm is not None else None
        build_report(out, config, texts=texts, queries=queries, measured=measured, answers=answers,
                     ingest=ingest_figures(mem, convs, texts), model=model, answer_mode=answer_mode,
                     main=f"bimem-{mode_list[0]}", llm_calls=int(mem.stats["llm_calls"])).finish()


# ---------------------------------------------------------------------------------------------- setup
def _modes(modes: str) -> list[str]:
    from ..memory.bimem.config import MODES

    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    bad = [m for m in mode_list if m not in MODES]
    if bad or not mode_list:
        raise typer.BadParameter(f"unknown modes {bad}; choose from {MODES}")
    return mode_list


def _chat_model(model: str) -> Any:
    try:
        from ..llm import load_chat_model
    except ImportError as e:
        raise typer.BadParameter(f"--model needs miaflow.llm.load_chat_model ({e})") from None
    return load_chat_model(model)


@contextmanager
def _memory(store: Path | None, llm: Any, torch_threads: int) -> Iterator[Any]:
    """A Bi-Mem memory in ``store`` (a temporary folder, removed after, when None), its embedder warm."""
    from ..memory.bimem import BiMemory

    if torch_threads > 0:
        import torch

        torch.set_num_threads(torch_threads)
    with tempfile.TemporaryDirectory(prefix="bimem-locomo-") as tmp:
        mem = BiMemory(store if store is not None else Path(tmp), llm=llm)
        mem.embedder.embed(["warm up"])
        yield mem


# ---------------------------------------------------------------------------------------------- measure
@dataclass
class IngestedText:
    """What the baselines index and embed per (conversation, turn): Bi-Mem's fast-mode fact text, and the dated
    text a turn costs in the context (as Bi-Mem's items)."""

    turn: dict[tuple[str, str], str] = field(default_factory=dict)
    context: dict[tuple[str, str], str] = field(default_factory=dict)
    n_turns: int = 0


def ingest(mem: Any, convs: list[Any]) -> IngestedText:
    """Every conversation into ``mem``, one session at a time (incremental adds)."""
    from rich.progress import track

    texts = IngestedText()
    for c in track(convs, description="ingesting", transient=True):
        by_session: dict[int, list] = defaultdict(list)
        for t in c.turns:
            by_session[t.session].append(t)
            texts.turn[(c.sample_id, t.id)] = f"{t.speaker}: {t.text}"
            texts.context[(c.sample_id, t.id)] = f"({t.time}) {t.speaker}: {t.text}" if t.time else f"{t.speaker}: {t.text}"
        for s in sorted(by_session):
            texts.n_turns += mem.add_turns(c.sample_id, by_session[s])
    return texts


def ingest_figures(mem: Any, convs: list[Any], texts: IngestedText) -> dict[str, Any]:
    n = max(texts.n_turns, 1)
    return {"turns": texts.n_turns, "facts": int(mem.stats["facts"]),
            "scenes": sum(len(mem.scenes(c.sample_id)) for c in convs),
            "ingest_ms_per_turn": 1000 * mem.stats["ingest_seconds"] / n,
            "embed_ms_per_turn": 1000 * mem.stats["embed_seconds"] / n, "llm_calls": int(mem.stats["llm_calls"]),
            "extraction_fallbacks": int(mem.stats["extraction_fallbacks"])}


@dataclass
class QueryVectors:
    """Every question embedded once (batched) and shared by the dense methods; the cost of one query embedding
    is measured apart on a sample, one question at a time."""

    vectors: dict[str, Any]
    batched_ms: float
    single_ms: list[float]


def embed_questions(mem: Any, convs: list[Any]) -> QueryVectors:
    questions = list(dict.fromkeys(qa.question for c in convs for qa in c.qa))
    with Timer() as t:
        vectors = dict(zip(questions, mem.embedder.embed(questions), strict=True))
    single = []
    for q in questions[:50]:
        with Timer() as one:
            mem.embedder.embed_one(q)
        single.append(one.ms)
    return QueryVectors(vectors, t.ms / max(len(questions), 1), single)


Retriever = Callable[[str, str], list[tuple[tuple[str, ...], str]]]
"""(conversation id, question) -> the retrieved items as (turn ids, context text), best first."""


def bm25_baseline(convs: list[Any], texts: IngestedText) -> Retriever:
    """BM25 over each conversation's turns (Bi-Mem's terms)."""
    from ..memory.bimem._bm25 import new_index

    indexes = {}
    for c in convs:
        indexes[c.sample_id] = bm = new_index()
        for t in c.turns:
            bm.add(t.id, texts.turn[(c.sample_id, t.id)])

    def run(cid: str, q: str) -> list[tuple[tuple[str, ...], str]]:
        return [((i,), texts.context[(cid, i)]) for i, _ in indexes[cid].top(q, 20)]
    return run


def dense_baseline(mem: Any, convs: list[Any], texts: IngestedText, queries: QueryVectors, llm_ingest: bool
                   ) -> Retriever:
    """Flat cosine over each conversation's turns, with the same embedder (the fast-mode fact vectors reused)."""
    import numpy as np

    mats = {}
    for c in convs:
        ids = [t.id for t in c.turns]
        facts = {f.turn_ids[0]: f.id for f in mem.facts(c.sample_id)} if not llm_ingest else {}
        st = mem._states[c.sample_id]
        if not llm_ingest and all(tid in facts for tid in ids):
            mat = np.stack([st.fact_vecs[facts[tid]] for tid in ids])
        else:
            mat = mem.embedder.embed([texts.turn[(c.sample_id, tid)] for tid in ids])
        mats[c.sample_id] = (ids, mat)

    def run(cid: str, q: str) -> list[tuple[tuple[str, ...], str]]:
        ids, mat = mats[cid]
        top = np.argsort(-(mat @ queries.vectors[q]))[:20]
        return [((ids[int(j)],), texts.context[(cid, ids[int(j)])]) for j in top]
    return run


def bimem_method(mem: Any, mode: str, queries: QueryVectors) -> Retriever:
    def run(cid: str, q: str) -> list[tuple[tuple[str, ...], str]]:
        return [(it.turn_ids, it.text) for it in mem.retrieve(q, cid, k=20, mode=mode, query_vector=queries.vectors[q])]
    return run


@dataclass
class Retrieval:
    """Per method: recall by category and k, context tokens of the items that bring the first 10 turns, and
    query latency (ms, after the query embedding)."""

    recall: dict[str, dict[int, dict[int, list[float]]]]
    tokens: dict[str, list[int]]
    latency: dict[str, list[float]]
    skipped: int = 0


def measure_retrieval(convs: list[Any], methods: dict[str, Retriever]) -> Retrieval:
    """Every question with gold evidence, through every method."""
    from .._text import count_tokens

    res = Retrieval(recall={m: defaultdict(lambda: defaultdict(list)) for m in methods}, tokens=defaultdict(list),
                    latency=defaultdict(list))
    for c in convs:
        known = {t.id for t in c.turns}
        for qa in c.qa:
            gold = {e for e in qa.evidence if e in known}
            if not gold:
                res.skipped += 1
                continue
            for name, fn in methods.items():
                with Timer() as t:
                    items = fn(c.sample_id, qa.question)
                res.latency[name].append(t.ms)
                ranked = [tid for tids, _ in items for tid in tids]
                for k in KS:
                    res.recall[name][qa.category][k].append(turns_recall(ranked, gold, k))
                seen: set[str] = set()
                ctx = 0
                for tids, text in items:
                    if len(seen) >= 10:
                        break
                    ctx += count_tokens(text)
                    seen.update(tids)
                res.tokens[name].append(ctx)
    return res


def measure_answers(mem: Any, llm: Any, convs: list[Any], answer_mode: str, max_answers: int
                    ) -> tuple[dict[int, list[float]], float]:
    """Answer F1 per category of an evenly spaced sample of the questions (so every category and conversation
    shows), the model reading Bi-Mem's top 10 items; and the seconds it took."""
    from rich.progress import track

    from ..llm.base import GenerationConfig

    f1s: dict[int, list[float]] = defaultdict(list)
    answered = [(c, qa) for c in convs for qa in c.qa]
    if max_answers and len(answered) > max_answers:
        answered = [answered[i * len(answered) // max_answers] for i in range(max_answers)]
    t0 = time.perf_counter()
    for c, qa in track(answered, description="answering", transient=True):
        items = mem.retrieve(qa.question, c.sample_id, k=10, mode=answer_mode)
        context = "\n".join(f"- {it.text}" for it in items)
        pred = llm.chat(ANSWER_PROMPT.format(context=context, question=qa.question),
                        GenerationConfig(max_tokens=32)).text.strip().split("\n")[0]
        f1s[qa.category].append(locomo_f1(pred, qa.answer, qa.category))
    return f1s, time.perf_counter() - t0
