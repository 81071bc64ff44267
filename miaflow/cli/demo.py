"""``miaflow demo``: the main job end to end on the shipped HotpotQA sample: index the corpus, answer a handful of
its questions with the bundled model and the trajectory memory on, print each answer with its citations and
EM/F1, then the totals."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register", "run_demo"]


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        questions: int = typer.Option(5, "--questions", "-n", min=1, max=30, help="Sample questions to answer."),
        model: str = typer.Option("local", "--model", help="'local' (bundled SmolLM2) or an OpenAI-compatible URL."),
        memory: Path = typer.Option(None, "--memory", help="Trajectory memory folder (default: a temp folder)."),
        reflect: bool = typer.Option(True, "--reflect/--no-reflect", help="Reflect and maybe replan."),
        base_model_only: bool = typer.Option(False, "--base-model-only", help="Run the bundled model without its "
                                             "shipped trained planner / executor adapters."),
    ) -> None:
        """Index the shipped sample, answer a few of its questions end to end with memory on, show EM/F1."""
        from rich.console import Console

        from ..errors import MiaflowError

        console = Console()
        try:
            run_demo(console, questions=questions, model=model, memory=memory, reflect=reflect,
                     base_model_only=base_model_only)
        except MiaflowError as e:
            console.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2) from None


def run_demo(console, *, questions: int = 5, model: str = "local", memory: Path | None = None,  # noqa: ANN001
             reflect: bool = True, base_model_only: bool = False) -> dict:
    import tempfile
    import time

    from rich.markup import escape
    from rich.table import Table

    from ..agents import ExecutorConfig, PlannerConfig
    from ..llm import load_chat_model
    from ..memory import TrajectoryStore
    from ..tools import CorpusIndex
    from ..tools.sample import sample_corpus_path, sample_questions
    from ..workflows import ResearchConfig, ResearchWorkflow
    from .research import render_result

    t_start = time.perf_counter()
    with console.status("indexing the sample corpus...", spinner="dots"):
        t0 = time.perf_counter()
        index = CorpusIndex.open(sample_corpus_path())
        t_index = time.perf_counter() - t0
    console.print(f"[dim]indexed {len(index)} HotpotQA paragraphs (CC BY-SA 4.0) in {t_index:.1f}s[/]")
    with console.status("loading the model...", spinner="dots"):
        t0 = time.perf_counter()
        llm = load_chat_model(model, base_model_only=base_model_only)
        t_model = time.perf_counter() - t0
    console.print(f"[dim]model {llm.name} loaded in {t_model:.1f}s[/]")
    tmp = None
    if memory is None:
        tmp = tempfile.TemporaryDirectory(prefix="miaflow-demo-")
        memory = Path(tmp.name) / "memory"
    store = TrajectoryStore(memory)
    config = ResearchConfig(planner=PlannerConfig(max_tokens=64),
                            executor=ExecutorConfig(answer_max_tokens=24, passage_chars=400),
                            reflect=reflect)
    wf = ResearchWorkflow(planner=llm, index=index, store=store, config=config)
    serving = {"planner": getattr(getattr(wf.planner, "config", None), "adapter", None),
               "executor": getattr(getattr(wf.executor, "config", None), "adapter", None)}
    console.print("[bold]serving:[/] " + ", ".join(f"{role} = {name or 'base model'}" for role, name in serving.items())
                  + ("" if any(serving.values()) else " (no trained adapters: --base-model-only or none shipped)"))
    rows, results = [], []
    for i, q in enumerate(sample_questions(questions), 1):
        console.rule(f"[bold]Question {i}/{questions}")
        console.print(escape(q.question))
        with console.status("planning, searching, answering...", spinner="dots"):
            res = wf.run(q.question, gold=q.answer, task_id=f"demo-{q.id}")
        console.print("[bold]Plan[/]" + (" [yellow](default)[/]" if res.plan_fallback else ""))
        console.print(escape(res.plan))
        if res.replan:
            console.print("[bold]Replan[/]\n" + escape(res.replan))
        titles = {s: t for st in res.steps for s, t in zip(st["output"], st["titles"], strict=False)}
        render_result(console, res, titles)
        console.print(f"[dim]gold: {escape(q.answer)}[/]")
        found = [s for s in q.supporting_ids if s in res.retrieved_ids]
        rows.append([i, res.answer[:40], q.answer, res.em, round(res.f1 or 0.0, 2),
                     f"{len(found)}/{len(q.supporting_ids)}", len(res.steps), res.tokens["total"],
                     round(res.timings["total"], 1)])
        results.append((res, len(found) / max(len(q.supporting_ids), 1)))
    table = Table(title="miaflow demo: HotpotQA sample, bundled model, memory on")
    for col in ("#", "answer", "gold", "EM", "F1", "gold docs found", "tool calls", "tokens", "seconds"):
        table.add_column(col)
    for r in rows:
        table.add_row(*[str(x) for x in r])
    console.print(table)
    n = len(results)
    totals = {
        "questions": n,
        "em": sum(r.em or 0.0 for r, _ in results) / n,
        "f1": sum(r.f1 or 0.0 for r, _ in results) / n,
        "support_recall": sum(s for _, s in results) / n,
        "tool_calls": sum(len(r.steps) for r, _ in results),
        "tokens": sum(r.tokens["total"] for r, _ in results),
        "memories": store.count(),
        "plan_fallbacks": sum(r.plan_fallback for r, _ in results),
        "seconds": time.perf_counter() - t_start,
        "adapters": serving,
    }
    console.print(f"[bold]totals:[/] EM {totals['em']:.2f}, F1 {totals['f1']:.2f}, gold paragraphs found "
                  f"{totals['support_recall']:.0%}, {totals['tool_calls']} tool calls, {totals['tokens']} tokens, "
                  f"{totals['memories']} memories stored, {totals['plan_fallbacks']} default plans, "
                  f"{totals['seconds']:.0f}s in all")
    if tmp is not None:
        store.close()
        tmp.cleanup()
    return totals
