"""Deep-research benchmark on HotpotQA / MuSiQue data: EM, F1, recall of the gold supporting paragraphs by the
executor's searches, tool calls, tokens and wall time per question, memory off vs on in the same run, and the share
of wall time spent outside model calls.

The corpus is every paragraph of the data file (the questions' gold paragraphs among all the others' distractors),
indexed once into a cache folder. Both passes answer the same questions in the same order with the same model; the
memory-on pass starts from an empty trajectory store and learns as it goes.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["command", "run_bench"]


def command(
    data: Path = typer.Option(..., "--data", help="HotpotQA (.jsonl, HF distractor schema) or MuSiQue (.json) file."),
    format: str = typer.Option("hotpotqa", "--format", help="hotpotqa or musique."),  # noqa: A002
    limit: int = typer.Option(20, "--limit", min=1, help="Questions to answer (from the start of the file)."),
    model: str = typer.Option("local", "--model", help="'local' (bundled SmolLM2) or an OpenAI-compatible URL."),
    memory: str = typer.Option("both", "--memory", help="off, on or both (off then on, same questions)."),
    reflect: bool = typer.Option(True, "--reflect/--no-reflect", help="Reflect and maybe replan."),
    corpus: str = typer.Option("questions", "--corpus", help="questions: the paragraphs of the selected questions "
                               "(distractor setting, fast to index); file: every paragraph of the data file."),
    index_dir: Path = typer.Option(None, "--index-dir", help="Where the corpus index is cached."),
    out: Path = typer.Option(Path("bench-out"), "--out", help="Folder for research.json and the PNG plots."),
    adapters: str = typer.Option("default", "--adapters", help="Adapter sets to compare, comma-separated: base (no "
                                 "adapter), trained (the shipped trained roles), default (whatever the model "
                                 "loads), or a training run folder (its current planner / executor versions)."),
) -> None:
    """Research benchmark: EM/F1, gold-paragraph recall, tool calls, tokens, wall time; memory off vs on."""
    run_bench(data=data, format=format, limit=limit, model=model, memory=memory, reflect=reflect,
              corpus=corpus, index_dir=index_dir, out=out, adapters=[a.strip() for a in adapters.split(",") if a.strip()])


def _subset(data: Path, format: str, limit: int, cache: Path) -> Path:  # noqa: A002
    """The first ``limit`` questions of ``data`` in a file of their own (their paragraphs are the corpus)."""
    import hashlib
    import json

    if format == "hotpotqa":
        with data.open(encoding="utf-8") as fh:
            lines = [ln for ln in fh if ln.strip()][:limit]
        payload, suffix = "".join(lines), ".jsonl"
    else:
        payload, suffix = json.dumps(json.loads(data.read_text(encoding="utf-8"))[:limit]), ".json"
    tag = hashlib.sha1(payload.encode()).hexdigest()[:10]
    folder = cache / f"{data.stem}-first{limit}-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data.stem}{suffix}"
    if not path.exists():
        path.write_text(payload, encoding="utf-8")
    return path


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _adapter_roles(llm, spec: str) -> dict[str, str]:  # noqa: ANN001
    """The role -> adapter map an arm runs with: {} for base, the shipped roles, or a run folder's versions."""
    from ..errors import InvalidInputError

    if spec == "default":
        return dict(getattr(llm, "role_adapters", {}) or {})
    if spec == "base":
        return {}
    if spec == "trained":
        from ..llm.bundled import bundled_adapters

        paths = bundled_adapters()
    else:
        from ..rl.adapters import AdapterRegistry

        run = Path(spec)
        if not run.is_dir():
            raise InvalidInputError(f"--adapters: {spec!r} is neither base, trained, default nor a run folder")
        paths = {r: v.path for r in ("planner", "executor") if (run / r).is_dir()
                 and (v := AdapterRegistry(run / r).current).path is not None}
    if not paths:
        raise InvalidInputError(f"--adapters {spec}: no trained adapter found")
    if not hasattr(llm, "load_adapter"):
        raise InvalidInputError("--adapters needs a local model (adapters are attached to its weights)")
    roles = {}
    for role, path in paths.items():
        name = f"{role}-{spec}" if spec != "trained" else role
        if name not in getattr(llm, "adapters", []):
            llm.load_adapter(name, path)
        roles[role] = name
    return roles


def run_bench(*, data: Path, format: str = "hotpotqa", limit: int = 20, model: str = "local",  # noqa: A002
              memory: str = "both", reflect: bool = True, corpus: str = "questions", index_dir: Path | None = None,
              out: Path | None = Path("bench-out"), llm=None, adapters: list[str] | None = None) -> dict:  # noqa: ANN001
    import hashlib
    import tempfile
    import time
    from dataclasses import replace

    from rich.console import Console

    from ..agents import ExecutorConfig, PlannerConfig
    from ..agents.answer_check import restates_question
    from ..errors import InvalidInputError
    from ..llm import load_chat_model
    from ..memory import TrajectoryStore
    from ..tools import CorpusIndex, load_questions
    from ..workflows import ResearchConfig, ResearchWorkflow
    from .report import BenchReport, percentile

    console = Console()

    if format not in ("hotpotqa", "musique"):
        raise InvalidInputError(f"--format must be hotpotqa or musique, got {format!r}")
    modes = {"both": ["off", "on"], "off": ["off"], "on": ["on"]}.get(memory)
    if modes is None:
        raise InvalidInputError(f"--memory must be off, on or both, got {memory!r}")
    if corpus not in ("questions", "file"):
        raise InvalidInputError(f"--corpus must be questions or file, got {corpus!r}")
    data = Path(data).expanduser().resolve()
    if not data.is_file():
        raise InvalidInputError(f"data file not found: {data}")
    from ..llm.bundled import cache_dir

    cache = cache_dir() / "bench-index"
    if corpus == "questions":
        data = _subset(data, format, limit, cache)
    questions = load_questions(data, format)[:limit]
    t0 = time.perf_counter()
    if index_dir is None:
        tag = hashlib.sha1(str(data).encode()).hexdigest()[:10]
        index_dir = cache / f"{data.stem}-{tag}"
    index = CorpusIndex.open(data, index_dir, format=format)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    llm = llm or load_chat_model(model)
    t_model = time.perf_counter() - t0
    config = ResearchConfig(planner=PlannerConfig(max_tokens=64),
                            executor=ExecutorConfig(answer_max_tokens=24, passage_chars=400),
                            reflect=reflect)
    report = BenchReport("research", out, config={
        "data": str(data), "format": format, "limit": limit, "model": getattr(llm, "name", model),
        "memory": memory, "reflect": reflect, "corpus": corpus, "corpus_docs": len(index), "index_seconds": t_index,
        "model_load_seconds": t_model})
    sets = adapters or ["default"]
    arms = [(a, m) for a in sets for m in modes]
    per_mode: dict[str, list[dict]] = {}
    for aset, mode in arms:
        arm = mode if len(sets) == 1 else f"{aset}_{mode}"
        roles = _adapter_roles(llm, aset)
        tmp = tempfile.TemporaryDirectory(prefix="miaflow-bench-") if mode == "on" else None
        store = TrajectoryStore(Path(tmp.name) / "memory") if tmp else None
        arm_config = replace(config, planner=replace(config.planner, adapter=roles.get("planner")),
                             executor=replace(config.executor, adapter=roles.get("executor")))
        saved_roles = getattr(llm, "role_adapters", None)
        if saved_roles is not None:
            llm.role_adapters = {}  # the arm's config names its adapters; None there means the base model
        try:
            wf = ResearchWorkflow(planner=llm, index=index, store=store, config=arm_config)
        finally:
            if saved_roles is not None:
                llm.role_adapters = saved_roles
        report.config.setdefault("arms", {})[arm] = {"adapters": aset, "memory": mode, "roles": roles}
        rows = []
        for qi, q in enumerate(questions, 1):
            gold = [q.answer, *q.answer_aliases]
            w0 = time.perf_counter()
            res = wf.run(q.question, gold=gold, task_id=f"{mode}-{q.id}")
            wall = time.perf_counter() - w0
            sup = list(q.supporting_ids)
            found = sum(s in res.retrieved_ids for s in sup)
            rows.append({
                "id": q.id, "question": q.question, "gold": q.answer, "answer": res.answer,
                "citations": res.citations, "em": res.em or 0.0, "f1": res.f1 or 0.0,
                "support_recall": found / len(sup) if sup else float("nan"),
                "cited_gold": any(c in sup for c in res.citations), "tool_calls": len(res.steps),
                "tokens": res.tokens["total"], "model_calls": res.tokens["calls"], "wall_s": wall,
                "model_s": res.timings["model"], "replan": res.replan_decision, "plan_fallback": res.plan_fallback,
                "used_memories": len(res.used_memory_ids),
                "restated": not res.answer.strip() or restates_question(res.answer, q.question),
                "answer_fallbacks": int(getattr(res, "answer_fallbacks", 0) or 0),
            })
            console.print(f"[dim]{arm} {qi}/{len(questions)}: F1 {rows[-1]['f1']:.2f}, "
                          f"gold recall {rows[-1]['support_recall']:.2f}, {wall:.1f}s[/]")
        if store is not None:
            rows_mem = store.count()
            store.close()
            tmp.cleanup()
        else:
            rows_mem = 0
        per_mode[arm] = rows
        report.results[f"memory_{arm}"] = {"questions": rows, "memories_stored": rows_mem}
    summary_cols = ["arm", "EM", "F1", "gold para recall", "cited gold", "tool calls/q", "tokens/q",
                    "wall s/q (p50)", "wall s/q (p90)", "outside model", "replans", "default plans",
                    "memories used/q", "usable plans", "restated", "answer fallbacks"]
    summary = []
    for mode, rows in per_mode.items():
        wall = [r["wall_s"] for r in rows]
        outside = (sum(wall) - sum(r["model_s"] for r in rows)) / sum(wall)
        s = {
            "em": _mean([r["em"] for r in rows]), "f1": _mean([r["f1"] for r in rows]),
            "support_recall": _mean([r["support_recall"] for r in rows]),
            "cited_gold": _mean([float(r["cited_gold"]) for r in rows]),
            "tool_calls": _mean([r["tool_calls"] for r in rows]), "tokens": _mean([r["tokens"] for r in rows]),
            "wall_p50": percentile(wall, 50), "wall_p90": percentile(wall, 90), "outside_model_share": outside,
            "replans": sum(r["replan"] for r in rows), "plan_fallbacks": sum(r["plan_fallback"] for r in rows),
            "memories_used": _mean([r["used_memories"] for r in rows]),
            "usable_plans": 1.0 - _mean([float(r["plan_fallback"]) for r in rows]),
            "restated": sum(r["restated"] for r in rows),
            "answer_fallbacks": sum(r["answer_fallbacks"] for r in rows),
        }
        report.results[f"summary_{mode}"] = s
        summary.append([mode, s["em"], s["f1"], s["support_recall"], s["cited_gold"], s["tool_calls"], s["tokens"],
                        s["wall_p50"], s["wall_p90"], f"{outside:.1%}", s["replans"], s["plan_fallbacks"],
                        s["memories_used"], f"{s['usable_plans']:.0%}", s["restated"], s["answer_fallbacks"]])
        report.headline[f"em_{mode}"] = s["em"]
        report.headline[f"f1_{mode}"] = s["f1"]
        report.headline[f"recall_{mode}"] = s["support_recall"]
        report.headline[f"outside_model_{mode}"] = round(outside, 4)
        report.headline[f"usable_plans_{mode}"] = round(s["usable_plans"], 3)
        report.headline[f"restated_{mode}"] = s["restated"]
    first = next(iter(per_mode.values()))
    report.table(f"research per question ({next(iter(per_mode))})",
                 ["#", "answer", "gold", "EM", "F1", "gold recall", "tools", "tokens", "wall s"],
                 [[i, r["answer"][:30], r["gold"][:30], r["em"], r["f1"], r["support_recall"], r["tool_calls"],
                   r["tokens"], r["wall_s"]] for i, r in enumerate(first, 1)])
    report.table(f"research: {len(questions)} {format} questions, {report.config['model']}", summary_cols, summary)
    report.headline["questions"] = len(questions)

    def draw(fig) -> None:  # noqa: ANN001
        ax1, ax2 = fig.subplots(1, 2)
        names = list(per_mode)
        x = range(len(first))
        width = 0.8 / len(names)
        for j, m in enumerate(names):
            ax1.bar([i + j * width for i in x], [r["f1"] for r in per_mode[m]], width, label=m)
        ax1.set_xticks([i + width * (len(names) - 1) / 2 for i in x], [str(i + 1) for i in x])
        ax1.set_xlabel("question")
        ax1.set_ylabel("F1")
        ax1.set_title("F1 per question")
        ax1.legend()
        for j, m in enumerate(names):
            rows = per_mode[m]
            model_s = sum(r["model_s"] for r in rows)
            other = sum(r["wall_s"] for r in rows) - model_s
            ax2.bar(j, model_s, color="tab:blue", label="model calls" if j == 0 else None)
            ax2.bar(j, other, bottom=model_s, color="tab:orange", label="everything else" if j == 0 else None)
        ax2.set_xticks(range(len(names)), names)
        ax2.set_ylabel("seconds (all questions)")
        ax2.set_title("where the wall time goes")
        ax2.legend()

    report.plot("research.png", draw)
    return report.finish()
