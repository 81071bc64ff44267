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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

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
    from .._text import count_tokens
    from ..memory.bimem import BiMemory, load_locomo
    from ..memory.bimem._bm25 import BM25Index
    from ..memory.bimem.config import MODES
    from .report import BenchReport, percentile

    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    bad = [m for m in mode_list if m not in MODES]
    if bad or not mode_list:
        raise typer.BadParameter(f"unknown modes {bad}; choose from {MODES}")
    convs = load_locomo(data)
    if conversations:
        convs = convs[:conversations]
    if sessions:
        convs = [_first_sessions(c, sessions) for c in convs]
    llm = None
    if model:
        try:
            from ..llm import load_chat_model  # type: ignore[attr-defined]
        except ImportError as e:
            raise typer.BadParameter(f"--model needs miaflow.llm.load_chat_model ({e})") from None
        llm = load_chat_model(model)
    tmp = None
    if store is None:
        tmp = tempfile.TemporaryDirectory(prefix="bimem-locomo-")
        store = Path(tmp.name)
    if torch_threads > 0:
        import torch

        torch.set_num_threads(torch_threads)
    mem = BiMemory(store, llm=llm if llm_ingest else None)
    mem.embedder.embed(["warm up"])
    report = BenchReport("locomo", out, config={
        "data": str(data), "conversations": [c.sample_id for c in convs], "sessions": sessions, "modes": mode_list,
        "model": model, "llm_ingest": llm_ingest, "torch_threads": torch_threads, "bimem_config": mem.config.__dict__})

    # ---- ingest, one session at a time (incremental adds)
    turn_text: dict[tuple[str, str], str] = {}  # what the baselines index and embed (Bi-Mem's fast-mode fact text)
    context_text: dict[tuple[str, str], str] = {}  # what a turn costs in the context (dated, as Bi-Mem's items)
    n_turns = 0
    from rich.progress import track

    for c in track(convs, description="ingesting", transient=True):
        sessions: dict[int, list] = defaultdict(list)
        for t in c.turns:
            sessions[t.session].append(t)
            turn_text[(c.sample_id, t.id)] = f"{t.speaker}: {t.text}"
            context_text[(c.sample_id, t.id)] = f"({t.time}) {t.speaker}: {t.text}" if t.time else f"{t.speaker}: {t.text}"
        for s in sorted(sessions):
            n_turns += mem.add_turns(c.sample_id, sessions[s])
    ingest_ms = 1000 * mem.stats["ingest_seconds"] / max(n_turns, 1)
    embed_ms = 1000 * mem.stats["embed_seconds"] / max(n_turns, 1)
    ingest_calls = int(mem.stats["llm_calls"])

    # ---- baselines over the same turns (same texts, same embedder)
    import numpy as np

    baselines: dict[str, Any] = {}
    for c in convs:
        ids = [t.id for t in c.turns]
        bm = BM25Index()
        for tid in ids:
            bm.add(tid, turn_text[(c.sample_id, tid)])
        facts = {f.turn_ids[0]: f.id for f in mem.facts(c.sample_id)} if not llm_ingest else {}
        st = mem._states[c.sample_id]
        if not llm_ingest and all(tid in facts for tid in ids):
            mat = np.stack([st.fact_vecs[facts[tid]] for tid in ids])
        else:
            mat = mem.embedder.embed([turn_text[(c.sample_id, tid)] for tid in ids])
        baselines[c.sample_id] = (ids, bm, mat)

    # every question is embedded once (batched) and the vector shared by the dense methods; the cost of one
    # query embedding is measured apart on a sample, one question at a time
    questions = list(dict.fromkeys(qa.question for c in convs for qa in c.qa))
    t0 = time.perf_counter()
    qvecs = dict(zip(questions, mem.embedder.embed(questions), strict=True))
    embed_batched_ms = 1000 * (time.perf_counter() - t0) / max(len(questions), 1)
    single_ms = []
    for q in questions[:50]:
        t0 = time.perf_counter()
        mem.embedder.embed_one(q)
        single_ms.append(1000 * (time.perf_counter() - t0))

    def run_bm25(cid: str, q: str) -> list[tuple[tuple[str, ...], str]]:
        ids, bm, _ = baselines[cid]
        sc = bm.scores(q)
        top = sorted(sc, key=lambda i: -sc[i])[:20]
        return [((i,), context_text[(cid, i)]) for i in top]

    def run_dense(cid: str, q: str) -> list[tuple[tuple[str, ...], str]]:
        ids, _, mat = baselines[cid]
        sims = mat @ qvecs[q]
        top = np.argsort(-sims)[:20]
        return [((ids[int(j)],), context_text[(cid, ids[int(j)])]) for j in top]

    def run_mode(mode: str):
        def run(cid: str, q: str) -> list[tuple[tuple[str, ...], str]]:
            return [(it.turn_ids, it.text) for it in mem.retrieve(q, cid, k=20, mode=mode, query_vector=qvecs[q])]
        return run

    methods = {"bm25": run_bm25, "dense": run_dense, **{f"bimem-{m}": run_mode(m) for m in mode_list}}
    recall: dict[str, dict[int, dict[int, list[float]]]] = {m: defaultdict(lambda: defaultdict(list)) for m in methods}
    tokens: dict[str, list[int]] = defaultdict(list)
    latency: dict[str, list[float]] = defaultdict(list)
    skipped = 0
    for c in convs:
        known = {t.id for t in c.turns}
        for qa in c.qa:
            gold = {e for e in qa.evidence if e in known}
            if not gold:
                skipped += 1
                continue
            for name, fn in methods.items():
                t0 = time.perf_counter()
                items = fn(c.sample_id, qa.question)
                latency[name].append(1000 * (time.perf_counter() - t0))
                ranked = [t for tids, _ in items for t in tids]
                for k in KS:
                    recall[name][qa.category][k].append(turns_recall(ranked, gold, k))
                # context tokens of the items that bring the first 10 turns
                seen: set[str] = set()
                ctx = 0
                for tids, text in items:
                    if len(seen) >= 10:
                        break
                    ctx += count_tokens(text)
                    seen.update(tids)
                tokens[name].append(ctx)

    def avg(xs: Sequence[float]) -> float:
        return float(sum(xs) / len(xs)) if xs else float("nan")

    rows: list[list[Any]] = []
    res: dict[str, dict[str, Any]] = {}
    for name in methods:
        res[name] = {}
        for k in KS:
            per = {cat: avg(recall[name][cat][k]) for cat in CATEGORIES}
            core = [x for cat in (1, 2, 3, 4) for x in recall[name][cat][k]]
            per_all = {**{CATEGORIES[c]: v for c, v in per.items()}, "cats 1-4": avg(core)}
            res[name][f"recall@{k}"] = per_all
            rows.append([name, k, *[per[c] for c in (1, 2, 3, 4)], avg(core), per[5]])
    n_q = {CATEGORIES[c]: len(recall["bm25"][c][10]) for c in CATEGORIES}
    report.table(f"LoCoMo evidence recall@k by turns in context ({sum(n_q.values())} questions, {n_turns} turns)",
                 ["method", "k", "1 multi-hop", "2 temporal", "3 open-domain", "4 single-hop", "cats 1-4",
                  "5 adversarial"], rows)
    cost_rows = []
    for name in methods:
        cost = {"context_tokens_per_query@10": avg(tokens[name]), "query_ms_p50": percentile(latency[name], 50),
                "query_ms_p95": percentile(latency[name], 95)}
        res[name]["cost"] = cost
        cost_rows.append([name, cost["context_tokens_per_query@10"], cost["query_ms_p50"], cost["query_ms_p95"]])
    emb_p50, emb_p95 = percentile(single_ms, 50), percentile(single_ms, 95)
    report.table(f"Query cost (retrieval after the query embedding; one query embedding alone: p50 {emb_p50:.1f} ms, "
                 f"p95 {emb_p95:.1f} ms; batched {embed_batched_ms:.1f} ms/query)",
                 ["method", "context tokens/query (first 10 turns)", "p50 ms", "p95 ms"], cost_rows)
    report.results["query_embedding_ms"] = {"single_p50": emb_p50, "single_p95": emb_p95,
                                            "batched_mean": embed_batched_ms}
    n_scenes = sum(len(mem.scenes(c.sample_id)) for c in convs)
    ingest = {"turns": n_turns, "facts": int(mem.stats["facts"]), "scenes": n_scenes,
              "ingest_ms_per_turn": ingest_ms, "embed_ms_per_turn": embed_ms, "llm_calls": ingest_calls,
              "extraction_fallbacks": int(mem.stats["extraction_fallbacks"])}
    report.table("Ingest (fast mode unless --llm-ingest)", list(ingest), [list(ingest.values())])
    report.results.update({"recall": res, "ingest": ingest, "questions": n_q, "skipped_no_evidence": skipped})

    # ---- answers
    if llm is not None:
        from ..llm.base import GenerationConfig

        f1s: dict[int, list[float]] = defaultdict(list)
        answered = [(c, qa) for c in convs for qa in c.qa]
        if max_answers and len(answered) > max_answers:  # evenly spaced, so every category and conversation shows
            answered = [answered[i * len(answered) // max_answers] for i in range(max_answers)]
        calls0 = time.perf_counter()
        from rich.progress import track

        for c, qa in track(answered, description="answering", transient=True):
            items = mem.retrieve(qa.question, c.sample_id, k=10, mode=answer_mode)
            context = "\n".join(f"- {it.text}" for it in items)
            pred = llm.chat(ANSWER_PROMPT.format(context=context, question=qa.question),
                            GenerationConfig(max_tokens=32)).text.strip().split("\n")[0]
            f1s[qa.category].append(locomo_f1(pred, qa.answer, qa.category))
        f1_rows = [[CATEGORIES[c], len(f1s[c]), avg(f1s[c])] for c in sorted(f1s)]
        core = [x for c in (1, 2, 3, 4) for x in f1s[c]]
        f1_rows.append(["cats 1-4", len(core), avg(core)])
        report.table(f"Answer F1 ({model}, context: bimem-{answer_mode} top 10; cat 5 = abstention rate)",
                     ["category", "questions", "F1"], f1_rows)
        report.results["answer_f1"] = {r[0]: {"n": r[1], "f1": r[2]} for r in f1_rows}
        report.results["answer_seconds"] = time.perf_counter() - calls0
        report.headline["answer_f1_1to4"] = avg(core)

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        cats = [1, 2, 3, 4, 5]
        width = 0.8 / len(methods)
        for i, name in enumerate(methods):
            vals = [avg(recall[name][c][10]) for c in cats]
            ax.bar([c + (i - (len(methods) - 1) / 2) * width for c in cats], vals, width, label=name)
        ax.set_xticks(cats, [f"{c} {CATEGORIES[c]}" for c in cats])
        ax.set_ylabel("evidence recall@10 (turns)")
        ax.set_ylim(0, 1)
        ax.set_title("LoCoMo evidence recall@10 by category")
        ax.legend(fontsize=8)

    report.plot("locomo_recall_by_category.png", draw)
    main = f"bimem-{mode_list[0]}"
    report.headline.update({
        f"{main}_recall10_1to4": res[main]["recall@10"]["cats 1-4"],
        f"{main}_recall10_multihop": res[main]["recall@10"]["multi-hop"],
        "bm25_recall10_1to4": res["bm25"]["recall@10"]["cats 1-4"],
        "bm25_recall10_multihop": res["bm25"]["recall@10"]["multi-hop"],
        "dense_recall10_1to4": res["dense"]["recall@10"]["cats 1-4"],
        "ingest_ms_per_turn": ingest_ms, "embed_ms_per_turn": embed_ms,
        f"{main}_query_p95_ms": res[main]["cost"]["query_ms_p95"],
        f"{main}_query_p95_ms_with_embedding": res[main]["cost"]["query_ms_p95"] + emb_p95, "llm_calls": int(mem.stats["llm_calls"]),
    })
    report.finish()
    if tmp is not None:
        tmp.cleanup()
