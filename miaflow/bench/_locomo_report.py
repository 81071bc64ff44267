"""Figures of ``miaflow bench locomo`` from its measurements: evidence recall@k per category and method, query
cost (context tokens, latency, the query embedding apart), ingest cost, answer F1, the recall chart and the
headline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .locomo import CATEGORIES, KS, IngestedText, QueryVectors, Retrieval
from .report import BenchReport, mean, percentile

__all__ = ["build_report"]


def _recall(report: BenchReport, m: Retrieval, n_turns: int) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """The recall table; returns the figures per method and the questions per category."""
    rows: list[list[Any]] = []
    res: dict[str, dict[str, Any]] = {}
    for name in m.recall:
        res[name] = {}
        for k in KS:
            per = {cat: mean(m.recall[name][cat][k]) for cat in CATEGORIES}
            core = [x for cat in (1, 2, 3, 4) for x in m.recall[name][cat][k]]
            res[name][f"recall@{k}"] = {**{CATEGORIES[c]: v for c, v in per.items()}, "cats 1-4": mean(core)}
            rows.append([name, k, *[per[c] for c in (1, 2, 3, 4)], mean(core), per[5]])
    n_q = {CATEGORIES[c]: len(m.recall["bm25"][c][10]) for c in CATEGORIES}
    report.table(f"LoCoMo evidence recall@k by turns in context ({sum(n_q.values())} questions, {n_turns} turns)",
                 ["method", "k", "1 multi-hop", "2 temporal", "3 open-domain", "4 single-hop", "cats 1-4",
                  "5 adversarial"], rows)
    return res, n_q


def _cost(report: BenchReport, m: Retrieval, q: QueryVectors, res: dict[str, dict[str, Any]]) -> float:
    """The cost table; returns the p95 of one query embedding."""
    rows = []
    for name in m.recall:
        cost = {"context_tokens_per_query@10": mean(m.tokens[name]), "query_ms_p50": percentile(m.latency[name], 50),
                "query_ms_p95": percentile(m.latency[name], 95)}
        res[name]["cost"] = cost
        rows.append([name, cost["context_tokens_per_query@10"], cost["query_ms_p50"], cost["query_ms_p95"]])
    p50, p95 = percentile(q.single_ms, 50), percentile(q.single_ms, 95)
    report.table(f"Query cost (retrieval after the query embedding; one query embedding alone: p50 {p50:.1f} ms, "
                 f"p95 {p95:.1f} ms; batched {q.batched_ms:.1f} ms/query)",
                 ["method", "context tokens/query (first 10 turns)", "p50 ms", "p95 ms"], rows)
    report.results["query_embedding_ms"] = {"single_p50": p50, "single_p95": p95, "batched_mean": q.batched_ms}
    return p95


def _answers(report: BenchReport, answers: tuple[dict[int, list[float]], float], model: str | None,
             answer_mode: str) -> None:
    f1s, seconds = answers
    rows: list[list[Any]] = [[CATEGORIES[c], len(f1s[c]), mean(f1s[c])] for c in sorted(f1s)]
    core = [x for c in (1, 2, 3, 4) for x in f1s[c]]
    rows.append(["cats 1-4", len(core), mean(core)])
    report.table(f"Answer F1 ({model}, context: bimem-{answer_mode} top 10; cat 5 = abstention rate)",
                 ["category", "questions", "F1"], rows)
    report.results["answer_f1"] = {r[0]: {"n": r[1], "f1": r[2]} for r in rows}
    report.results["answer_seconds"] = seconds
    report.headline["answer_f1_1to4"] = mean(core)


def _draw(fig: Any, m: Retrieval) -> None:
    ax = fig.add_subplot(1, 1, 1)
    cats = [1, 2, 3, 4, 5]
    width = 0.8 / len(m.recall)
    for i, name in enumerate(m.recall):
        vals = [mean(m.recall[name][c][10]) for c in cats]
        ax.bar([c + (i - (len(m.recall) - 1) / 2) * width for c in cats], vals, width, label=name)
    ax.set_xticks(cats, [f"{c} {CATEGORIES[c]}" for c in cats])
    ax.set_ylabel("evidence recall@10 (turns)")
    ax.set_ylim(0, 1)
    ax.set_title("LoCoMo evidence recall@10 by category")
    ax.legend(fontsize=8)


def build_report(out: Path | None, config: dict[str, Any], *, texts: IngestedText, queries: QueryVectors,
                 measured: Retrieval, answers: tuple[dict[int, list[float]], float] | None,
                 ingest: dict[str, Any], model: str | None, answer_mode: str, main: str, llm_calls: int
                 ) -> BenchReport:
    """The report of a run; ``main`` is the Bi-Mem method the headline names."""
    report = BenchReport("locomo", out, config=config)
    res, n_q = _recall(report, measured, texts.n_turns)
    emb_p95 = _cost(report, measured, queries, res)
    report.table("Ingest (fast mode unless --llm-ingest)", list(ingest), [list(ingest.values())])
    report.results.update({"recall": res, "ingest": ingest, "questions": n_q, "skipped_no_evidence": measured.skipped})
    if answers is not None:
        _answers(report, answers, model, answer_mode)
    report.plot("locomo_recall_by_category.png", lambda fig: _draw(fig, measured))
    report.headline.update({
        f"{main}_recall10_1to4": res[main]["recall@10"]["cats 1-4"],
        f"{main}_recall10_multihop": res[main]["recall@10"]["multi-hop"],
        "bm25_recall10_1to4": res["bm25"]["recall@10"]["cats 1-4"],
        "bm25_recall10_multihop": res["bm25"]["recall@10"]["multi-hop"],
        "dense_recall10_1to4": res["dense"]["recall@10"]["cats 1-4"],
        "ingest_ms_per_turn": ingest["ingest_ms_per_turn"], "embed_ms_per_turn": ingest["embed_ms_per_turn"],
        f"{main}_query_p95_ms": res[main]["cost"]["query_ms_p95"],
        f"{main}_query_p95_ms_with_embedding": res[main]["cost"]["query_ms_p95"] + emb_p95, "llm_calls": llm_calls,
    })
    return report
