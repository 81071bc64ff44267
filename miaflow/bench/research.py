"""Deep-research benchmark on HotpotQA / MuSiQue data: EM, F1, recall of the gold supporting paragraphs by the
executor's searches, tool calls, tokens and wall time per question, memory off vs on in the same run, and the share
of wall time spent outside model calls.

The corpus is every paragraph of the data file (the questions' gold paragraphs among all the others' distractors),
indexed once into a cache folder. Both passes answer the same questions in the same order with the same model; the
memory-on pass starts from an empty trajectory store and learns as it goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from .report import Timer, cached_file

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
    import json

    if format == "hotpotqa":
        with data.open(encoding="utf-8") as fh:
            lines = [ln for ln in fh if ln.strip()][:limit]
        payload, suffix = "".join(lines), ".jsonl"
    else:
        payload, suffix = json.dumps(json.loads(data.read_text(encoding="utf-8"))[:limit]), ".json"
    return cached_file(cache, f"{data.stem}-first{limit}", f"{data.stem}{suffix}", payload)


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


@dataclass
class _Setup:
    """What every arm shares: the questions, their corpus index and the model."""

    data: Path
    questions: list[Any]
    index: Any
    llm: Any
    modes: list[str]
    config: Any
    seconds: dict[str, float]


def prepare(*, data: Path, format: str, limit: int, model: str, memory: str, reflect: bool,  # noqa: A002
            corpus: str, index_dir: Path | None, llm: Any = None) -> _Setup:
    """Check the options, cut the data to the questions asked, open (or build) the index and load the model."""
    import hashlib

    from .._cache import cache_dir
    from ..agents import ExecutorConfig, PlannerConfig
    from ..errors import InvalidInputError
    from ..llm import load_chat_model
    from ..tools import CorpusIndex, load_questions
    from ..workflows import ResearchConfig

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
    cache = cache_dir() / "bench-index"
    if corpus == "questions":
        data = _subset(data, format, limit, cache)
    questions = load_questions(data, format)[:limit]
    with Timer() as t_index:
        if index_dir is None:
            index_dir = cache / f"{data.stem}-{hashlib.sha1(str(data).encode()).hexdigest()[:10]}"
        index = CorpusIndex.open(data, index_dir, format=format)
    with Timer() as t_model:
        llm = llm or load_chat_model(model)
    config = ResearchConfig(planner=PlannerConfig(max_tokens=64),
                            executor=ExecutorConfig(answer_max_tokens=24, passage_chars=400), reflect=reflect)
    return _Setup(data=data, questions=questions, index=index, llm=llm, modes=modes, config=config,
                  seconds={"index": t_index.seconds, "model": t_model.seconds})


def _workflow(setup: _Setup, roles: dict[str, str], store: Any) -> Any:
    """The research workflow of one arm: its adapters named in its config (None there means the base model)."""
    from dataclasses import replace

    from ..workflows import ResearchWorkflow

    cfg = setup.config
    arm_config = replace(cfg, planner=replace(cfg.planner, adapter=roles.get("planner")),
                         executor=replace(cfg.executor, adapter=roles.get("executor")))
    llm = setup.llm
    saved_roles = getattr(llm, "role_adapters", None)
    if saved_roles is not None:
        llm.role_adapters = {}
    try:
        return ResearchWorkflow(planner=llm, index=setup.index, store=store, config=arm_config)
    finally:
        if saved_roles is not None:
            llm.role_adapters = saved_roles


def _question_row(q: Any, res: Any, wall: float) -> dict[str, Any]:
    """The measures of one answered question."""
    from ..agents.answer_check import restates_question

    sup = list(q.supporting_ids)
    found = sum(s in res.retrieved_ids for s in sup)
    return {
        "id": q.id, "question": q.question, "gold": q.answer, "answer": res.answer,
        "citations": res.citations, "em": res.em or 0.0, "f1": res.f1 or 0.0,
        "support_recall": found / len(sup) if sup else float("nan"),
        "cited_gold": any(c in sup for c in res.citations), "tool_calls": len(res.steps),
        "tokens": res.tokens["total"], "model_calls": res.tokens["calls"], "wall_s": wall,
        "model_s": res.timings["model"], "replan": res.replan_decision, "plan_fallback": res.plan_fallback,
        "used_memories": len(res.used_memory_ids),
        "restated": not res.answer.strip() or restates_question(res.answer, q.question),
        "answer_fallbacks": int(getattr(res, "answer_fallbacks", 0) or 0),
    }


def measure_arm(setup: _Setup, arm: str, mode: str, roles: dict[str, str], console: Any) -> dict[str, Any]:
    """Every question once with one arm (memory ``mode`` "on" starts from an empty store): per-question rows and
    the memories stored."""
    import tempfile

    from ..memory import TrajectoryStore

    with tempfile.TemporaryDirectory(prefix="miaflow-bench-") as tmp:
        store = TrajectoryStore(Path(tmp) / "memory") if mode == "on" else None
        wf = _workflow(setup, roles, store)
        rows = []
        for qi, q in enumerate(setup.questions, 1):
            with Timer() as t:
                res = wf.run(q.question, gold=[q.answer, *q.answer_aliases], task_id=f"{mode}-{q.id}")
            rows.append(_question_row(q, res, t.seconds))
            console.print(f"[dim]{arm} {qi}/{len(setup.questions)}: F1 {rows[-1]['f1']:.2f}, "
                          f"gold recall {rows[-1]['support_recall']:.2f}, {t.seconds:.1f}s[/]")
        stored = store.count() if store is not None else 0
        if store is not None:
            store.close()
    return {"questions": rows, "memories_stored": stored}


def run_bench(*, data: Path, format: str = "hotpotqa", limit: int = 20, model: str = "local",  # noqa: A002
              memory: str = "both", reflect: bool = True, corpus: str = "questions", index_dir: Path | None = None,
              out: Path | None = Path("bench-out"), llm: Any = None, adapters: list[str] | None = None) -> dict:
    """Prepare, measure every (adapter set, memory) arm on the same questions, report."""
    from rich.console import Console

    from ._research_report import build_report

    setup = prepare(data=data, format=format, limit=limit, model=model, memory=memory, reflect=reflect,
                    corpus=corpus, index_dir=index_dir, llm=llm)
    config: dict[str, Any] = {"data": str(setup.data), "format": format, "limit": limit,
              "model": getattr(setup.llm, "name", model), "memory": memory, "reflect": reflect, "corpus": corpus,
              "corpus_docs": len(setup.index), "index_seconds": setup.seconds["index"],
              "model_load_seconds": setup.seconds["model"], "arms": {}}
    sets = adapters or ["default"]
    measured: dict[str, dict[str, Any]] = {}
    console = Console()
    for aset, mode in [(a, m) for a in sets for m in setup.modes]:
        arm = mode if len(sets) == 1 else f"{aset}_{mode}"
        roles = _adapter_roles(setup.llm, aset)
        config["arms"][arm] = {"adapters": aset, "memory": mode, "roles": roles}
        measured[arm] = measure_arm(setup, arm, mode, roles, console)
    return build_report(out, config, measured, n_questions=len(setup.questions)).finish()
