"""Model layer overhead: miaflow's backends against the raw library calls with the same settings, in one run.

Ratios: local greedy generation tokens/s vs raw ``model.generate``; batched n=4 sampling vs 4 sequential
calls (throughput); embeddings/s of the torch backend vs raw sentence-transformers ``encode``, and of the chosen
backend (ONNX Runtime when its export exists) vs the torch backend; and the single-query embedding latency that every
recall pays. Runs interleave the two sides and take the median of several repeats so that machine noise hits both
alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from .report import BenchReport


def command(
    out: Path = typer.Option(Path("bench-out"), "--out", help="Folder for llm.json and llm.png."),
    repeats: int = typer.Option(5, help="Repeats per measurement (median is reported)."),
    max_tokens: int = typer.Option(64, help="New tokens per generation."),
    sentences: int = typer.Option(512, help="Sentences per embedding batch."),
    queries: int = typer.Option(60, help="Single-query embeddings timed per backend (distinct texts, no cache hits)."),
    embed_threads: int = typer.Option(0, "--embed-threads", help="Threads of both embedders (0 = library default)."),
) -> None:
    """Local generation, batched sampling and embeddings against the raw library calls."""
    import torch

    from ..llm.local import LocalChatModel
    from ..memory.embeddings import Embedder

    config = {"repeats": repeats, "max_tokens": max_tokens, "sentences": sentences, "queries": queries,
              "embed_threads": embed_threads, "threads": torch.get_num_threads()}
    llm = LocalChatModel()
    gen = measure_generation(llm, repeats, max_tokens)
    chosen = Embedder(threads=embed_threads, query_cache_size=0)  # the backend 'auto' picks
    emb = Embedder(backend="torch", threads=embed_threads, query_cache_size=0)
    eps = measure_embeddings(chosen, emb, repeats, sentences)
    single = measure_query_latency(chosen, emb, queries)
    build_report(out, config, gen, eps, single, chosen.backend).finish()


# ---------------------------------------------------------------------------------------------- measure
def measure_generation(llm: Any, repeats: int, max_tokens: int) -> dict[str, list[float]]:
    """Tokens/s of greedy generation, ours vs raw ``model.generate`` (interleaved), and of n=4 sampling in one
    batched call vs 4 calls."""
    import torch

    tok, model = llm.tokenizer, llm.model
    prompt_msgs = [{"role": "user", "content": "Write a long story about a robot who learns to research."}]
    enc = tok(llm.render(prompt_msgs), return_tensors="pt", add_special_tokens=False)
    # min_new_tokens forces the same length on both sides so tokens/s compare like with like.
    fixed = dict(max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)

    def raw_greedy() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            out_ids = model.generate(**enc, **fixed, temperature=None, top_p=None, top_k=None)
        return (out_ids.shape[1] - enc["input_ids"].shape[1]) / (time.perf_counter() - t0)

    def tps(n: int, seeds: list[int | None], temperature: float) -> float:
        t0 = time.perf_counter()
        total = sum(llm.chat(prompt_msgs, n=n, temperature=temperature, max_tokens=max_tokens, seed=s,
                             min_tokens=max_tokens).completion_tokens for s in seeds)
        return total / (time.perf_counter() - t0)

    raw_greedy()  # warm-up
    out: dict[str, list[float]] = {"raw": [], "ours": [], "batched": [], "sequential": []}
    for _ in range(repeats):
        out["raw"].append(raw_greedy())
        out["ours"].append(tps(1, [None], 0.0))
    for _ in range(max(1, repeats // 2)):
        out["batched"].append(tps(4, [0], 0.8))
        out["sequential"].append(tps(1, [0, 1, 2, 3], 0.8))
    return out


def measure_embeddings(chosen: Any, emb: Any, repeats: int, sentences: int) -> dict[str, list[float]]:
    """Sentences/s of raw sentence-transformers ``encode``, our torch backend and the chosen backend."""
    st = emb.model
    texts = [f"Sentence {i}: a research agent searched the corpus for evidence about topic {i % 37}." for i in range(sentences)]
    emb.embed(texts[:32])
    chosen.embed(texts[:32])

    def eps(fn: Callable[[list[str]], object]) -> float:
        t0 = time.perf_counter()
        fn(texts)
        return len(texts) / (time.perf_counter() - t0)

    def raw_encode(batch: list[str]) -> object:
        return st.encode(batch, batch_size=emb.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)

    out: dict[str, list[float]] = {"ours": [], "raw": [], chosen.backend: []}
    for _ in range(repeats):
        out["raw"].append(eps(raw_encode))
        out["ours"].append(eps(emb.embed))
        out[chosen.backend].append(eps(chosen.embed))
    return out


def measure_query_latency(chosen: Any, emb: Any, queries: int) -> dict[str, list[float]]:
    """Latency (ms) of single-query embeddings of distinct texts, the two backends interleaved."""
    def one(e: Any, i: int) -> float:
        t0 = time.perf_counter()
        e.embed([f"What did the agent find about topic {i} in the {i % 11}th report?"])
        return 1000 * (time.perf_counter() - t0)

    chosen_ms, torch_ms = [], []
    for i in range(queries):
        chosen_ms.append(one(chosen, i))
        torch_ms.append(one(emb, i))
    return {chosen.backend: chosen_ms, "torch": torch_ms}


# ---------------------------------------------------------------------------------------------- report
def build_report(out: Path | None, config: dict[str, Any], gen: dict[str, list[float]], eps: dict[str, list[float]],
                 single: dict[str, list[float]], backend: str) -> BenchReport:
    med = statistics.median
    gen_ratio = med(gen["ours"]) / med(gen["raw"])
    batch_ratio = med(gen["batched"]) / med(gen["sequential"])
    emb_ratio = med(eps["ours"]) / med(eps["raw"])
    backend_ratio = med(eps[backend]) / med(eps["ours"])
    query_p50 = med(single[backend])
    report = BenchReport("llm", out, config=config)
    rows = [
        ["local greedy generation", "tokens/s", med(gen["ours"]), med(gen["raw"]), gen_ratio, ">= 0.95"],
        ["n=4 sampling: one batched call vs 4 calls", "tokens/s", med(gen["batched"]), med(gen["sequential"]),
         batch_ratio, ">= 2"],
        ["embeddings (MiniLM, torch backend) vs raw encode", "sentences/s", med(eps["ours"]), med(eps["raw"]),
         emb_ratio, ">= 0.95"],
        [f"embeddings: {backend} backend vs torch backend", "sentences/s", med(eps[backend]), med(eps["ours"]),
         backend_ratio, ">= 2"],
        [f"single-query embedding p50: {backend} vs torch", "ms", query_p50, med(single["torch"]),
         query_p50 / med(single["torch"]), "<= 6 ms"],
    ]
    report.table("miaflow vs raw library calls (median of repeats)", ["measure", "unit", "miaflow", "baseline", "ratio",
                                                                     "target"], rows)
    report.results = {"generation": {"ours": gen["ours"], "raw": gen["raw"]},
                      "batched": {"batched": gen["batched"], "sequential": gen["sequential"]},
                      "embeddings": eps, "single_query_ms": single}
    report.headline = {"generation_ratio": round(gen_ratio, 3), "batched_speedup": round(batch_ratio, 2),
                       "embedding_ratio": round(emb_ratio, 3), "embedder_backend": backend,
                       "embedding_backend_speedup": round(backend_ratio, 2), "query_embedding_p50_ms": round(query_p50, 2)}

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(111)
        names = ["generation", "batched n=4", "embeddings", f"{backend} vs torch"]
        ax.bar(names, [gen_ratio, batch_ratio, emb_ratio, backend_ratio],
               color=["#4c72b0", "#55a868", "#c44e52", "#8172b2"])
        ax.axhline(1.0, color="gray", linestyle="--")
        ax.set_ylabel("ratio (miaflow / baseline)")
        ax.set_title("miaflow bench llm")

    report.plot("llm.png", draw)
    return report
