"""Trajectory store at scale: recall latency against a raw Chroma query, write throughput, utility updates, memory.

At each size (10k and 100k trajectories by default) the store is filled with synthetic research trajectories
(generated here, compressed extractively, embedded in batches by the bundled MiniLM through ``add_many``), then:
recall p50/p95 including the query embedding, against a raw ``collection.query`` with the same embedding, the same
k1 and the same fields (the calls are interleaved so both see the same machine load); the part after the query
embedding on its own; utility-update latency; write throughput; resident memory and disk size.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from .report import BenchReport, Timer, percentile

__all__ = ["command", "synthetic_trajectory"]

_ROLES = "author painter architect composer director physicist chemist poet general senator novelist engineer".split()
_PLACES = ("Lyon Kyoto Lagos Quito Oslo Perth Porto Tartu Cusco Hanoi Dakar Graz Pune Turin Malmo Leeds Cork Split "
           "Bergen Gdansk Sapporo Tucson Valencia Kraków Bilbao").split()
_WORDS = ("river silent empire glass winter harbor crimson lantern orchard falcon copper meadow tide ember atlas "
          "willow granite comet saffron beacon quarry velvet thunder maple cobalt prairie summit marble echo harvest "
          "lotus ivory canyon raven delta jade monsoon cedar aurora basalt").split()
_VERBS = "wrote designed composed directed discovered founded painted built translated published".split()


def synthetic_trajectory(i: int, rng: random.Random) -> Any:
    """A plausible multi-hop research run with a unique question."""
    from ..memory.trajectory import Trajectory

    title = " ".join(rng.choice(_WORDS).capitalize() for _ in range(3))
    role, place, verb = rng.choice(_ROLES), rng.choice(_PLACES), rng.choice(_VERBS)
    year = rng.randint(1700, 2020)
    q = f"Which {role} born in {place} {verb} '{title}' around {year}, and where did they die?"
    steps = []
    for s in range(rng.randint(2, 5)):
        query = f"{title} {verb} {role} {place}" if s == 0 else f"{role} {rng.choice(_WORDS)} {year + s} biography"
        steps.append({
            "action": rng.choice(["search", "search", "open"]),
            "purpose": rng.choice(["find the work", "identify the person", "check birth place", "find death place"]),
            "input": query,
            "output": f"{title} is a work {verb} in {year} by a {role} from {place}. " * rng.randint(2, 6),
        })
    judgement = rng.choice(["correct", "correct", "incorrect", "unknown"])
    return Trajectory(
        task_id=f"bench-{i}", question=q,
        plan=f"1. search for '{title}'\n2. identify the {role}\n3. find where they died",
        steps=steps, evidence_ids=[f"doc{rng.randint(0, 99999)}" for _ in range(2)],
        answer=rng.choice(_PLACES), judgement=judgement,  # type: ignore[arg-type]
        reward={"correct": 1.0, "incorrect": -1.0, "unknown": 0.0}[judgement], model="SmolLM2",
    )


class _FillEmbedder:
    """Times the embedder; in ``perturbed`` mode returns real pool vectors plus noise (for filling big stores fast
    on a busy machine; queries are always embedded for real)."""

    def __init__(self, inner: Any, seed: int):
        import numpy as np

        self.inner = inner
        self.seconds = 0.0
        self.perturbed = False
        self.pool: list[Any] = []
        self.rng = np.random.default_rng(seed)

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        t = time.perf_counter()
        try:
            if not self.perturbed or len(self.pool) < 1000:
                vecs = self.inner.embed(texts)
                self.pool.extend(vecs[: max(0, 5000 - len(self.pool))])
                return vecs
            base = np.stack([self.pool[i] for i in self.rng.integers(len(self.pool), size=len(texts))])
            noisy = base + self.rng.normal(0, 0.3 / np.sqrt(base.shape[1]), base.shape).astype(np.float32)
            return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
        finally:
            self.seconds += time.perf_counter() - t


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def command(
    sizes: str = typer.Option("10000,100000", "--sizes", help="Store sizes to measure, ascending, comma-separated."),
    queries: int = typer.Option(200, "--queries", help="Recall queries timed at each size."),
    updates: int = typer.Option(300, "--updates", help="Utility updates (5 memories each) timed at each size."),
    batch: int = typer.Option(500, "--batch", help="Trajectories per add_many call."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic data."),
    path: Path | None = typer.Option(None, "--path", help="Store folder (default: a temporary one, removed after)."),
    threads: int = typer.Option(0, "--threads", help="torch threads for the embedder (0: torch's default)."),
    perturbed_fill: bool = typer.Option(
        False, "--perturbed-fill",
        help="Fill sizes after the first with noisy copies of real embeddings (fast on a busy machine); their "
             "write rate is reported apart. Query embeddings stay real.",
    ),
    out: Path = typer.Option(Path("bench-out"), "--out", help="Folder for memory.json and memory.png."),
) -> None:
    """Trajectory store: recall p50/p95 vs raw Chroma, write throughput, update latency and RSS at 10k/100k."""
    from rich.console import Console

    from .._import_utils import offline_env

    offline_env()
    targets = sorted({int(s) for s in sizes.split(",") if s.strip()})
    if not targets or targets[0] < 10:
        raise typer.BadParameter("give sizes >= 10, e.g. --sizes 10000,100000")
    rng = random.Random(seed)
    per_size: dict[int, dict[str, Any]] = {}
    with _bench_store(path, threads, seed) as bench:
        config = {"sizes": targets, "queries": queries, "updates": updates, "batch": batch, "seed": seed,
                  "k1": bench.store.config.k1, "k2": bench.store.config.k2}
        for n_size, size in enumerate(targets):
            bench.embedder.perturbed = perturbed_fill and n_size > 0
            fill = bench.fill(size, batch, rng)
            upd = bench.time_updates(size, updates, rng)
            recall = bench.time_recalls(queries, rng)
            per_size[size] = _figures(bench, size, fill, upd, recall)
    build_report(out, config, per_size).finish(console=Console(width=200))


# ---------------------------------------------------------------------------------------------- measure
class _Bench:
    """The store under test, its timed embedder, the real one (queries) and the ids written so far."""

    def __init__(self, store: Any, embedder: _FillEmbedder, real: Any, folder: Path):
        self.store, self.embedder, self.real, self.folder = store, embedder, real, folder
        self.ids: list[str] = []
        self.made = 0

    def fill(self, size: int, batch: int, rng: random.Random) -> dict[str, Any]:
        """Add synthetic trajectories (``batch`` per ``add_many``) until the store holds ``size``."""
        store, emb0, added0, t_write = self.store, self.embedder.seconds, len(self.ids), 0.0
        while store.count() < size:
            todo = min(batch, size - store.count())
            trajs = [synthetic_trajectory(self.made + j, rng) for j in range(todo)]
            self.made += todo
            with Timer() as t:
                kept = store.add_many(trajs)
            t_write += t.seconds
            self.ids.extend(dict.fromkeys(kept))
        written = len(self.ids) - added0
        ratios = [rec.compression_ratio for rec in store.get(self.ids[-min(200, len(self.ids)):])]
        return {"written": written, "write_per_s": written / t_write if t_write else float("nan"),
                "embedding_share_of_write": (self.embedder.seconds - emb0) / t_write if t_write else float("nan"),
                "ratios": ratios}

    def time_updates(self, size: int, updates: int, rng: random.Random) -> list[float]:
        """Utility-update latencies (ms), 5 memories per task."""
        out = []
        for u in range(updates):
            used = rng.sample(self.ids, 5)
            with Timer() as t:
                self.store.update_utilities(f"bench-task-{size}-{u}", used, rng.choice([1.0, -1.0, 0.5]))
            out.append(t.ms)
        return out

    def time_recalls(self, queries: int, rng: random.Random) -> dict[str, Any]:
        """Recall against a raw Chroma query with the same embedding, k1 and fields, interleaved so both see the
        same machine load; fresh questions of the same kind. Latencies in ms."""
        import numpy as np

        store, real = self.store, self.real
        col = store._collection(store.namespace, create=False)
        k1 = store.config.k1
        qs = [synthetic_trajectory(-1 - j, rng).question for j in range(queries)]
        for q in qs[:10]:  # warm-up
            store.recall(q)
        ms: dict[str, list[float]] = {"full": [], "raw": [], "post": [], "raw_q": []}
        used_memory = 0
        for j, q in enumerate(qs):
            for which in ((0, 1) if j % 2 == 0 else (1, 0)):
                t = time.perf_counter()
                e = real.embed([q])[0]
                t1 = time.perf_counter()
                if which == 0:
                    col.query(query_embeddings=np.asarray(e)[None, :], n_results=k1,
                              include=["metadatas", "distances"])
                else:
                    used_memory += store.recall_by_embedding(e).used_memory
                t2 = time.perf_counter()
                ms["raw" if which == 0 else "full"].append((t2 - t) * 1000)
                ms["raw_q" if which == 0 else "post"].append((t2 - t1) * 1000)
        return {**ms, "with_memory": used_memory / max(1, len(qs))}


@contextmanager
def _bench_store(path: Path | None, threads: int, seed: int) -> Iterator[_Bench]:
    """A trajectory store in ``path`` (a temporary folder, removed after, when None) with a warm, timed embedder.
    The real embedder has no query cache: each query is embedded twice (raw Chroma, then the store) and a cache
    hit would flatter one side."""
    from ..memory.embeddings import Embedder, EmbedderConfig
    from ..memory.store import TrajectoryStore

    tmp = Path(tempfile.mkdtemp(prefix="miaflow-bench-memory-")) if path is None else None
    folder = (tmp / "store") if tmp else path
    assert folder is not None
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    real = Embedder(config=EmbedderConfig(query_cache_size=0))
    embedder = _FillEmbedder(real, seed)
    embedder.embed(["warm up the embedder"])
    embedder.seconds = 0.0
    store = TrajectoryStore(folder, embedder=embedder)
    try:
        yield _Bench(store, embedder, real, folder)
    finally:
        store.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _figures(bench: _Bench, size: int, fill: dict[str, Any], upd: list[float], r: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import psutil

    full, raw = r["full"], r["raw"]
    return {
        "size": size, "written": fill["written"], "fill": "perturbed" if bench.embedder.perturbed else "real",
        "write_per_s": fill["write_per_s"], "embedding_share_of_write": fill["embedding_share_of_write"],
        "recall_p50_ms": percentile(full, 50), "recall_p95_ms": percentile(full, 95),
        "raw_p50_ms": percentile(raw, 50), "raw_p95_ms": percentile(raw, 95),
        "ratio_p50": percentile(full, 50) / percentile(raw, 50), "ratio_p95": percentile(full, 95) / percentile(raw, 95),
        "store_query_p50_ms": percentile(r["post"], 50), "raw_query_p50_ms": percentile(r["raw_q"], 50),
        "update_p50_ms": percentile(upd, 50), "update_p95_ms": percentile(upd, 95),
        "queries_with_memory": r["with_memory"],
        "mean_compression_ratio": float(np.mean(fill["ratios"])) if fill["ratios"] else float("nan"),
        "rss_mb": psutil.Process().memory_info().rss / 2**20, "disk_mb": _dir_mb(bench.folder),
    }


# ---------------------------------------------------------------------------------------------- report
def build_report(out: Path | None, config: dict[str, Any], per_size: dict[int, dict[str, Any]]) -> BenchReport:
    report = BenchReport("memory", out, config=config)
    rows = [[size, f"{r['write_per_s']:.0f}" + (" (perturbed)" if r["fill"] == "perturbed" else ""),
             f"{r['embedding_share_of_write']:.0%}", r["recall_p50_ms"], r["recall_p95_ms"], r["raw_p50_ms"],
             r["raw_p95_ms"], r["ratio_p50"], r["ratio_p95"], r["store_query_p50_ms"], r["raw_query_p50_ms"],
             r["update_p50_ms"], f"{r['rss_mb']:.0f}", f"{r['disk_mb']:.0f}"] for size, r in per_size.items()]
    report.table(
        "Trajectory store (ms; recall includes the query embedding; raw = embedding + collection.query, same k1/fields)",
        ["size", "writes/s", "embed share", "recall p50", "recall p95", "raw p50", "raw p95", "ratio p50",
         "ratio p95", "store query p50", "raw query p50", "update p50", "RSS MB", "disk MB"],
        rows,
    )
    report.results["sizes"] = per_size
    last = per_size[max(per_size)]
    real_fills = [r["write_per_s"] for r in per_size.values() if r["fill"] == "real"]
    report.headline = {
        "size": last["size"], "recall_p50_ms": last["recall_p50_ms"], "recall_p95_ms": last["recall_p95_ms"],
        "overhead_ratio_p50": last["ratio_p50"], "overhead_ratio_p95": last["ratio_p95"],
        "write_per_s": real_fills[-1] if real_fills else float("nan"), "rss_mb": last["rss_mb"],
    }
    report.plot("memory.png", lambda fig: _draw(fig, per_size))
    return report


def _draw(fig: Any, per_size: dict[int, dict[str, Any]]) -> None:
    ax = fig.add_subplot(1, 1, 1)
    xs = list(per_size)
    for key, label in (("recall_p50_ms", "recall p50"), ("recall_p95_ms", "recall p95"),
                       ("raw_p50_ms", "raw Chroma p50"), ("raw_p95_ms", "raw Chroma p95")):
        ax.plot(xs, [per_size[x][key] for x in xs], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("stored trajectories")
    ax.set_ylabel("ms (query embedding included)")
    ax.legend()
