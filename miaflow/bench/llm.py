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

import typer


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
    from .report import BenchReport

    report = BenchReport("llm", out, config={"repeats": repeats, "max_tokens": max_tokens, "sentences": sentences,
                                             "queries": queries, "embed_threads": embed_threads,
                                             "threads": torch.get_num_threads()})
    llm = LocalChatModel()
    tok, model = llm.tokenizer, llm.model
    prompt_msgs = [{"role": "user", "content": "Write a long story about a robot who learns to research."}]
    text = llm.render(prompt_msgs)
    enc = tok(text, return_tensors="pt", add_special_tokens=False)
    # min_new_tokens forces the same length on both sides so tokens/s compare like with like.
    fixed = dict(max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)

    def raw_greedy() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            out_ids = model.generate(**enc, **fixed, temperature=None, top_p=None, top_k=None)
        return (out_ids.shape[1] - enc["input_ids"].shape[1]) / (time.perf_counter() - t0)

    def ours_greedy() -> float:
        t0 = time.perf_counter()
        res = llm.chat(prompt_msgs, max_tokens=max_tokens, temperature=0.0, min_tokens=max_tokens)
        return res.completion_tokens / (time.perf_counter() - t0)

    raw_greedy()  # warm-up
    raw_tps, our_tps = [], []
    for _ in range(repeats):
        raw_tps.append(raw_greedy())
        our_tps.append(ours_greedy())
    gen_ratio = statistics.median(our_tps) / statistics.median(raw_tps)

    def batched() -> float:
        t0 = time.perf_counter()
        res = llm.chat(prompt_msgs, n=4, temperature=0.8, max_tokens=max_tokens, seed=0, min_tokens=max_tokens)
        return res.completion_tokens / (time.perf_counter() - t0)

    def sequential() -> float:
        t0 = time.perf_counter()
        total = 0
        for i in range(4):
            res = llm.chat(prompt_msgs, n=1, temperature=0.8, max_tokens=max_tokens, seed=i, min_tokens=max_tokens)
            total += res.completion_tokens
        return total / (time.perf_counter() - t0)

    b_tps, s_tps = [], []
    for _ in range(max(1, repeats // 2)):
        b_tps.append(batched())
        s_tps.append(sequential())
    batch_ratio = statistics.median(b_tps) / statistics.median(s_tps)

    chosen = Embedder(threads=embed_threads, query_cache_size=0)  # the backend 'auto' picks
    emb = Embedder(backend="torch", threads=embed_threads, query_cache_size=0)
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

    raw_eps, our_eps, chosen_eps = [], [], []
    for _ in range(repeats):
        raw_eps.append(eps(raw_encode))
        our_eps.append(eps(emb.embed))
        chosen_eps.append(eps(chosen.embed))
    emb_ratio = statistics.median(our_eps) / statistics.median(raw_eps)
    backend_ratio = statistics.median(chosen_eps) / statistics.median(our_eps)

    def one_query_ms(e: Embedder, i: int) -> float:
        t0 = time.perf_counter()
        e.embed([f"What did the agent find about topic {i} in the {i % 11}th report?"])
        return 1000 * (time.perf_counter() - t0)

    chosen_ms, torch_ms = [], []
    for i in range(queries):
        chosen_ms.append(one_query_ms(chosen, i))
        torch_ms.append(one_query_ms(emb, i))
    query_p50 = statistics.median(chosen_ms)

    rows = [
        ["local greedy generation", "tokens/s", statistics.median(our_tps), statistics.median(raw_tps), gen_ratio, ">= 0.95"],
        ["n=4 sampling: one batched call vs 4 calls", "tokens/s", statistics.median(b_tps), statistics.median(s_tps),
         batch_ratio, ">= 2"],
        ["embeddings (MiniLM, torch backend) vs raw encode", "sentences/s", statistics.median(our_eps),
         statistics.median(raw_eps), emb_ratio, ">= 0.95"],
        [f"embeddings: {chosen.backend} backend vs torch backend", "sentences/s", statistics.median(chosen_eps),
         statistics.median(our_eps), backend_ratio, ">= 2"],
        [f"single-query embedding p50: {chosen.backend} vs torch", "ms", query_p50, statistics.median(torch_ms),
         query_p50 / statistics.median(torch_ms), "<= 6 ms"],
    ]
    report.table("miaflow vs raw library calls (median of repeats)", ["measure", "unit", "miaflow", "baseline", "ratio",
                                                                     "target"], rows)
    report.results = {"generation": {"ours": our_tps, "raw": raw_tps}, "batched": {"batched": b_tps, "sequential": s_tps},
                      "embeddings": {"ours": our_eps, "raw": raw_eps, chosen.backend: chosen_eps},
                      "single_query_ms": {chosen.backend: chosen_ms, "torch": torch_ms}}
    report.headline = {"generation_ratio": round(gen_ratio, 3), "batched_speedup": round(batch_ratio, 2),
                       "embedding_ratio": round(emb_ratio, 3), "embedder_backend": chosen.backend,
                       "embedding_backend_speedup": round(backend_ratio, 2), "query_embedding_p50_ms": round(query_p50, 2)}

    def draw(fig: object) -> None:
        ax = fig.add_subplot(111)  # type: ignore[attr-defined]
        names = ["generation", "batched n=4", "embeddings", f"{chosen.backend} vs torch"]
        ax.bar(names, [gen_ratio, batch_ratio, emb_ratio, backend_ratio],
               color=["#4c72b0", "#55a868", "#c44e52", "#8172b2"])
        ax.axhline(1.0, color="gray", linestyle="--")
        ax.set_ylabel("ratio (miaflow / baseline)")
        ax.set_title("miaflow bench llm")

    report.plot("llm.png", draw)
    report.finish()
