"""Streaming learning benchmark (the Evo-Memory protocol): a QA data set becomes a task stream; the agent
answers each task, gets feedback from the gold judge (EM/F1) and updates its memory before the next one.

Arms, on the same streams in the same run, with the model and the corpus index loaded once for all of them:
``frozen`` (no memory), ``similarity`` (ExpRAG's baseline: the k2 most similar cases by cosine, no Q-values:
the store's ``q_weight`` is 0), ``memory`` (MemRL's two-phase recall with Q-values) and ``memory+grpo`` (the
same memory plus test-time GRPO in the background, versions gated on ``--heldback`` questions). Each arm starts
from an empty memory for every seed. Splits (``repeat``, ``transfer``, ``distractor``) are built as
:mod:`miaflow.bench._streams` documents; seeds are stream orders. A task's accuracy is the share of its group's
answers with token F1 >= 0.5 against the gold answer (the session runner's ``gold_accuracy``). The figures and
plots are made in :mod:`miaflow.bench._learn_report`.

``--speed N`` also times, on N stream questions with the frozen workflow, one single research run against one
group of ``--group-size`` plans (same questions, same run): the cost of a GRPO group relative to answering once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from ._streams import (
    LearnTask,
    distractor_pairs,
    from_examples,
    musique_steps,
    select_stream,
    stream_order,
    transfer_split,
)
from .report import cached_file, write_json

__all__ = ["command", "run_bench", "prepare", "LearnSetup", "ARMS", "SPLITS"]

ARMS = ("frozen", "similarity", "memory", "memory+grpo")
SPLITS = ("repeat", "transfer", "distractor")


def command(
    data: Path = typer.Option(None, "--data", help="HotpotQA (.jsonl), MuSiQue (.json) or miaflow questions "
                              "JSONL; default: the shipped sample."),
    format: str = typer.Option("hotpotqa", "--format", help="hotpotqa, musique or jsonl."),  # noqa: A002
    corpus: Path = typer.Option(None, "--corpus", help="Corpus of a jsonl questions file (hotpotqa and musique "
                                "use the paragraphs of the selected questions)."),
    limit: int = typer.Option(50, "--limit", min=1, help="Tasks in the stream."),
    epochs: int = typer.Option(2, "--epochs", min=1, help="Passes over the stream (epoch 2 = the repeat split)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Stream orders (seeds 0..N-1)."),
    arms: str = typer.Option(",".join(ARMS), "--arms", help="Comma-separated subset of " + ", ".join(ARMS) + "."),
    splits: str = typer.Option(",".join(SPLITS), "--splits", help="Comma-separated subset of repeat, transfer, "
                               "distractor (repeat always runs: it is the stream)."),
    group_size: int = typer.Option(4, "--group-size", min=1, help="Plans per task (2+ for memory+grpo)."),
    window: int = typer.Option(10, "--window", min=1, help="Tasks per accuracy window."),
    transfer_limit: int = typer.Option(25, "--transfer-limit", min=0, help="Most transfer tasks."),
    transfer_pool: list[Path] = typer.Option([], "--transfer-pool", help="More files (same format) to draw "
                                             "transfer questions from; repeatable."),
    distractor_limit: int = typer.Option(8, "--distractor-limit", min=0, help="Most (source, near-duplicate) pairs."),
    heldback: int = typer.Option(2, "--heldback", min=0, help="Questions that gate GRPO versions (memory+grpo)."),
    speed: int = typer.Option(3, "--speed", min=0, help="Questions on which to time one run vs one group (0: off)."),
    reflect: bool = typer.Option(False, "--reflect/--no-reflect", help="Reflect and maybe replan (slower)."),
    model: str = typer.Option("local", "--model", help="'local' (bundled SmolLM2), a model folder or an "
                              "OpenAI-compatible URL (memory+grpo needs a local model)."),
    out: Path = typer.Option(Path("bench-out"), "--out", help="Folder for learn.json and the PNG plots."),
) -> None:
    """Streaming learning benchmark (Evo-Memory): frozen vs similarity vs Q-value memory vs memory + GRPO."""
    from rich.console import Console

    from ..errors import MiaflowError

    try:
        run_bench(data=data, format=format, corpus=corpus, limit=limit, epochs=epochs, seeds=seeds, arms=arms,
                  splits=splits, group_size=group_size, window=window, transfer_limit=transfer_limit,
                  transfer_pool=list(transfer_pool), distractor_limit=distractor_limit, heldback=heldback,
                  speed=speed, reflect=reflect, model=model, out=out)
    except (MiaflowError, ValueError) as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None


@dataclass
class LearnSetup:
    """The streams of one benchmark run and the corpus that holds their evidence."""

    stream: list[LearnTask]
    transfer: list[LearnTask]
    pairs: list[tuple[LearnTask, LearnTask]]
    heldback: list[LearnTask]
    corpus: Path
    corpus_format: str
    notes: list[str] = field(default_factory=list)


def _parse(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    from ..errors import InvalidInputError

    got = [a.strip() for a in value.split(",") if a.strip()]
    bad = [a for a in got if a not in allowed]
    if not got or bad:
        raise InvalidInputError(f"--{what} takes a comma-separated subset of {', '.join(allowed)}; got {value!r}")
    return list(dict.fromkeys(got))


def _record_id(rec: dict[str, Any], where: str) -> str:
    return str(rec.get("id") or rec.get("_id") or where)


def _subset_corpus(files: list[Path], fmt: str, ids: set[str], folder: Path) -> Path:
    """One data file holding only the records ``ids`` of ``files`` (their paragraphs are the corpus)."""
    from ..tools.loaders import read_records

    keep: dict[str, dict[str, Any]] = {}
    for f in files:
        for where, rec in read_records(f):
            rid = _record_id(rec, where) if isinstance(rec, dict) else ""
            if rid in ids and rid not in keep:
                keep[rid] = rec
    recs = [keep[i] for i in sorted(keep)]
    if fmt == "hotpotqa":
        payload, suffix = "".join(json.dumps(r) + "\n" for r in recs), ".jsonl"
    else:
        payload, suffix = json.dumps(recs), ".json"
    return cached_file(folder, f"learn-{files[0].stem}-{len(recs)}", f"corpus{suffix}", payload)


def prepare(data: Path | None, fmt: str, *, limit: int, corpus: Path | None = None, transfer_pool: Sequence[Path] = (),
            transfer_limit: int = 25, distractor_limit: int = 8, heldback: int = 0, splits: Sequence[str] = SPLITS,
            cache: Path) -> LearnSetup:
    """Load the questions and build the splits (see :mod:`miaflow.bench._streams`) and the corpus they need."""
    from ..errors import InvalidInputError
    from ..tools import load_questions

    if fmt not in ("hotpotqa", "musique", "jsonl"):
        raise InvalidInputError(f"--format must be hotpotqa, musique or jsonl, got {fmt!r}")
    if data is None:
        from ..tools.sample import sample_corpus_path, sample_questions_path

        data, fmt, corpus = sample_questions_path(), "jsonl", corpus or sample_corpus_path()
    data = Path(data).expanduser().resolve()
    files = [data] + [Path(p).expanduser().resolve() for p in transfer_pool]
    for f in files:
        if not f.is_file():
            raise InvalidInputError(f"data file not found: {f}")
    if fmt == "jsonl" and corpus is None:
        raise InvalidInputError("a jsonl questions file needs --corpus (its documents)")
    questions = from_examples(load_questions(data, fmt))
    extra = [t for f in files[1:] for t in from_examples(load_questions(f, fmt))]
    steps = [t for f in files for t in musique_steps(f)] if fmt == "musique" else []
    notes = []
    want_transfer = "transfer" in splits and transfer_limit > 0
    pool_all = questions + extra + steps
    stream = select_stream(questions, limit, pool_all if want_transfer else [])
    if len(stream) < limit:
        notes.append(f"the data holds {len(stream)} questions, fewer than --limit {limit}")
    used = {t.id for t in stream}
    transfer = transfer_split(stream, [t for t in pool_all if t.id not in used], transfer_limit) \
        if want_transfer else []
    if want_transfer and not transfer:
        notes.append("no held-out question shares a supporting title with the stream: the transfer split is empty "
                     "(add --transfer-pool files, or use MuSiQue, whose decomposition steps share them)")
    pairs = distractor_pairs(questions + extra, distractor_limit) if "distractor" in splits and distractor_limit \
        else []
    if "distractor" in splits and distractor_limit and not pairs:
        notes.append("no near-duplicate pairs in the data: the distractor split is empty")
    taken = used | {t.id for t in transfer} | {t.id for p in pairs for t in p}
    held = [t for t in questions if t.id not in taken][:heldback]
    if corpus is not None:
        corpus_path, corpus_fmt = Path(corpus).expanduser().resolve(), "auto"
        if not corpus_path.exists():
            raise InvalidInputError(f"corpus not found: {corpus_path}")
    else:
        sources = {t.source for t in stream + transfer + held} | {t.source for p in pairs for t in p}
        corpus_path, corpus_fmt = _subset_corpus(files, fmt, sources, cache), fmt
    return LearnSetup(stream=stream, transfer=transfer, pairs=pairs, heldback=held, corpus=corpus_path,
                      corpus_format=corpus_fmt, notes=notes)


class _Recorder:
    """The workflow a Session drives (``run_group`` + ``remember``), keeping the last group's results so the
    benchmark can read tokens, EM and F1 per task."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.last: list[Any] = []

    def run_group(self, question: str, n: int = 4, gold: Any = None, task_id: str | None = None, **kw: Any
                  ) -> list[Any]:
        self.last = self.inner.run_group(question, n=n, gold=gold, task_id=task_id, **kw)
        return self.last

    def remember(self, result: Any) -> Any:
        return self.inner.remember(result)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class _Parts:
    """What every arm shares: the serving model, the index, the run settings."""

    chat: Any
    index: Any
    corpus: Path
    research: Any
    grpo: Any
    group_size: int


def _session(arm: str, parts: _Parts, state: Path, held: list[LearnTask]) -> Any:
    """A fresh session (empty memory) for ``arm`` under ``state``."""
    from ..memory import TrajectoryStore, TrajectoryStoreConfig
    from ..workflows import ResearchWorkflow
    from ..workflows.session import Session, SessionConfig, build_session

    cfg = SessionConfig(group_size=parts.group_size, epochs=1, learn=arm == "memory+grpo", remember=arm != "frozen")
    if arm == "memory+grpo":
        from ..rl.worker import WorkerConfig

        if "planner" in getattr(parts.chat, "adapters", []):  # every seed trains its own adapter from scratch
            parts.chat.delete_adapter("planner")
        sess = build_session(parts.corpus, state, config=cfg, chat=parts.chat, index=parts.index, use_memory=True,
                             heldback=[_question(t) for t in held], research_config=parts.research, grpo=parts.grpo,
                             worker_config=WorkerConfig(poll_seconds=0.5))
    else:
        store = None
        if arm != "frozen":
            store = TrajectoryStore(state / "memory",
                                    config=TrajectoryStoreConfig(q_weight=0.0) if arm == "similarity" else None)
        wf = ResearchWorkflow(planner=parts.chat, index=parts.index, store=store, config=parts.research)
        sess = Session(wf, state, config=cfg)
    sess.workflow = _Recorder(sess.workflow)
    return sess


def _question(t: LearnTask) -> Any:
    from ..workflows.session import SessionQuestion

    return SessionQuestion(id=t.id, question=t.question, gold=t.answer)


def _answer(sess: Any, t: LearnTask, *, epoch: int, index: int) -> dict[str, Any]:
    o = sess.answer(_question(t), epoch=epoch, index=index)
    res = sess.workflow.last
    n = max(len(res), 1)
    return {"id": t.id, "split": t.split, "partner": t.partner, "epoch": epoch, "pos": index,
            "accuracy": o.gold_accuracy if o.gold_accuracy is not None else o.accuracy, "score": o.accuracy,
            "em": sum(float(r.em or 0.0) for r in res) / n, "f1": sum(float(r.f1 or 0.0) for r in res) / n,
            "tokens": sum(int(r.tokens.get("total", 0)) for r in res), "wall_s": o.seconds,
            "memories_used": o.used_memories, "answers": o.answers, "adapter": o.adapter_version}


def _qid(task_id: str) -> str:
    """The question id of a stored run's task id (``e{epoch}-{qid}/p{k}``)."""
    body = task_id.split("-", 1)[1] if task_id.startswith("e") and "-" in task_id else task_id
    return body.rsplit("/p", 1)[0]


def _mislead(store: Any, pairs: list[tuple[LearnTask, LearnTask]]) -> list[dict[str, Any]]:
    """Where the source's stored case ranks when each near-duplicate is recalled (1 = first; None = not shown)."""
    out = []
    for src, dup in pairs:
        rec = store.recall(dup.question)
        shown = sorted(list(rec.positive) + list(rec.negative) + list(rec.neutral), key=lambda m: -m.score)
        ranks = [i for i, m in enumerate(shown, 1) if _qid(m.record.task_id) == src.id]
        out.append({"source": src.id, "near_duplicate": dup.id, "recalled": len(shown),
                    "rank": ranks[0] if ranks else None,
                    "q_value": shown[ranks[0] - 1].record.q_value if ranks else None,
                    "similarity": shown[ranks[0] - 1].similarity if ranks else None})
    return out


def _run_stream(sess: Any, plan: list[tuple[int, LearnTask]], tick: Any) -> list[dict[str, Any]]:
    """Answer ``(epoch, task)`` in order; the GRPO worker (if any) trains alongside, then drains."""
    rows: list[dict[str, Any]] = []
    worker = sess.worker
    if worker is not None:
        worker.start()
    try:
        pos: dict[int, int] = {}
        for epoch, t in plan:
            rows.append(_answer(sess, t, epoch=epoch, index=pos.setdefault(epoch, 0)))
            pos[epoch] += 1
            tick(t.split)
    finally:
        if worker is not None:
            worker.stop(timeout=None)
    if worker is not None and not getattr(worker, "gave_up", False):
        worker.drain()  # train (and gate) on what is still buffered, so every group is used once
    return rows


def run_arm(arm: str, seed: int, setup: LearnSetup, parts: _Parts, root: Path, *, epochs: int,
            tick: Any = lambda split: None) -> dict[str, Any]:
    """One arm on one seed: the stream for ``epochs`` epochs then the transfer tasks (one memory), and the
    distractor stream in a memory of its own."""
    order = stream_order(setup.stream, seed)
    plan = [(e, t) for e in range(epochs) for t in order] + [(epochs, t) for t in stream_order(setup.transfer, seed)]
    sess = _session(arm, parts, root / "stream", setup.heldback)
    a0 = time.perf_counter()
    rows = _run_stream(sess, plan, tick)
    out: dict[str, Any] = {"arm": arm, "seed": seed, "order": [t.id for t in order], "rows": rows,
                           "wall_s": time.perf_counter() - a0}
    store = getattr(sess.workflow, "store", None)
    out["q_values"] = [r.q_value for r in store.iter_records()] if store is not None else []
    out["memories_stored"] = len(out["q_values"])
    if sess.worker is not None:
        summary = sess.summary()
        out["versions"] = summary.adapter_versions
        out["grpo_steps"] = sum(e.kind == "step_end" for e in sess.worker.events)
        status = getattr(sess.worker, "status", None)
        out["learning"] = status() if callable(status) else None
    if setup.pairs:
        pairs = stream_order(setup.pairs, seed)
        dplan = [(e, t) for e in range(epochs) for t in [p[0] for p in pairs] + [p[1] for p in pairs]]
        dsess = _session(arm, parts, root / "distractor", setup.heldback)
        out["distractor_rows"] = _run_stream(dsess, dplan, tick)
        dstore = getattr(dsess.workflow, "store", None)
        out["mislead"] = _mislead(dstore, pairs) if dstore is not None else []
    return out


def _speed(parts: _Parts, tasks: list[LearnTask]) -> dict[str, Any]:
    """One research run vs one group, per question, with the frozen workflow (nothing remembered)."""
    from ..workflows import ResearchWorkflow

    wf = ResearchWorkflow(planner=parts.chat, index=parts.index, store=None, config=parts.research)
    single, group = [], []
    for t in tasks:
        t0 = time.perf_counter()
        wf.run(t.question, gold=t.answer, task_id=f"speed1-{t.id}", remember=False)
        single.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        wf.run_group(t.question, n=parts.group_size, gold=t.answer, task_id=f"speedn-{t.id}")
        group.append(time.perf_counter() - t0)
    ratio = sum(group) / sum(single) if single and sum(single) > 0 else float("nan")
    return {"questions": [t.id for t in tasks], "single_s": single, "group_s": group, "group_size": parts.group_size,
            "ratio": ratio}


def run_bench(*, data: Path | None = None, format: str = "hotpotqa", corpus: Path | None = None,  # noqa: A002
              limit: int = 50, epochs: int = 2, seeds: int = 3, arms: str = ",".join(ARMS),
              splits: str = ",".join(SPLITS), group_size: int = 4, window: int = 10, transfer_limit: int = 25,
              transfer_pool: Sequence[Path] = (), distractor_limit: int = 8, heldback: int = 2, speed: int = 3,
              reflect: bool = False, model: str = "local", out: Path | None = Path("bench-out"), chat: Any = None,
              console: Any = None) -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .._cache import cache_dir
    from .._import_utils import offline_env
    from ..agents import ExecutorConfig, PlannerConfig
    from ..errors import InvalidInputError
    from ..rl.grpo import GRPOSettings
    from ..tools import CorpusIndex
    from ..workflows import ResearchConfig
    from ._learn_report import build_report

    offline_env()
    console = console or Console()
    wanted = _parse(arms, ARMS, "arms")
    split_list = _parse(splits, SPLITS, "splits")
    if "memory+grpo" in wanted and group_size < 2:
        raise InvalidInputError("memory+grpo needs --group-size 2 or more (GRPO compares the plans of a group)")
    out = Path(out or "bench-out")
    run_dir = out / f"learn-run-{int(time.time())}"
    run_dir.mkdir(parents=True, exist_ok=True)
    setup = prepare(data, format, limit=limit, corpus=corpus, transfer_pool=list(transfer_pool),
                    transfer_limit=transfer_limit, distractor_limit=distractor_limit,
                    heldback=heldback if "memory+grpo" in wanted else 0, splits=split_list,
                    cache=cache_dir() / "bench-index")
    for note in setup.notes:
        console.print(f"[yellow]note:[/] {note}")
    t0 = time.perf_counter()
    tag = hashlib.sha1(str(setup.corpus).encode()).hexdigest()[:10]
    index = CorpusIndex.open(setup.corpus, cache_dir() / "bench-index" / f"learn-{setup.corpus.stem}-{tag}",
                             format=setup.corpus_format)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    if chat is None:
        from ..llm import load_chat_model

        chat = load_chat_model(model)
    t_model = time.perf_counter() - t0
    research = ResearchConfig(planner=PlannerConfig(max_tokens=96), executor=ExecutorConfig(answer_max_tokens=24),
                              reflect=reflect)
    grpo = GRPOSettings(num_generations=group_size, max_completion_length=128, learning_rate=5e-4) \
        if "memory+grpo" in wanted else None
    parts = _Parts(chat=chat, index=index, corpus=setup.corpus, research=research, grpo=grpo, group_size=group_size)
    config = {"data": str(data or "shipped sample"), "format": format, "corpus": str(setup.corpus),
              "corpus_docs": len(index), "limit": limit, "epochs": epochs, "seeds": seeds, "arms": wanted,
              "splits": split_list, "group_size": group_size, "window": window, "reflect": reflect,
              "model": getattr(chat, "name", model), "index_seconds": t_index, "model_load_seconds": t_model,
              "stream": [t.id for t in setup.stream], "notes": setup.notes,
              "transfer": [{"id": t.id, "question": t.question, "answer": t.answer, "partner": t.partner,
                            "shared_title": t.link} for t in setup.transfer],
              "distractor_pairs": [{"source": a.id, "source_question": a.question, "source_answer": a.answer,
                                    "near_duplicate": b.id, "question": b.question, "answer": b.answer,
                                    "link": b.link} for a, b in setup.pairs],
              "heldback": [t.id for t in setup.heldback]}
    per_seed = epochs * len(setup.stream) + len(setup.transfer) + epochs * 2 * len(setup.pairs)
    total = seeds * len(wanted) * per_seed + 2 * min(speed, len(setup.stream))
    runs: list[dict[str, Any]] = []
    speed_res: dict[str, Any] | None = None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        job = bar.add_task("learn", total=total)
        if speed:
            bar.update(job, description="speed: one run vs one group")
            speed_res = _speed(parts, setup.stream[:speed])
            bar.advance(job, 2 * min(speed, len(setup.stream)))
        for seed in range(seeds):
            for arm in wanted:
                def tick(split: str, arm: str = arm, seed: int = seed) -> None:
                    bar.update(job, advance=1, description=f"seed {seed} {arm} {split}")

                runs.append(run_arm(arm, seed, setup, parts, run_dir / f"seed{seed}" / arm.replace("+", "-"),
                                    epochs=epochs, tick=tick))
    write_json(run_dir / "runs.json", runs)
    report = build_report(out, config=config, runs=runs, speed=speed_res, epochs=epochs, window=window)
    return report.finish(console)
