"""``miaflow research "question" --corpus DIR``: answer one question with citations, showing the plan, the tool
calls and the answer live as the LangGraph run streams them."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register", "render_result"]


def render_result(console, res, titles: dict[str, str] | None = None) -> None:  # noqa: ANN001
    """Print a ResearchResult: answer, citations, judgement and figures."""
    from rich.markup import escape

    titles = titles or {}
    console.print(f"\n[bold green]Answer:[/] {escape(res.answer or '(no answer)')}")
    for c in res.citations:
        console.print(f"  [cyan]{escape('[' + c + ']')}[/] {escape(titles.get(c, ''))}")
    extra = f" em={res.em:.0f} f1={res.f1:.2f}" if res.em is not None else ""
    console.print(f"[dim]judgement={res.judgement} ({res.judge_method}, score {res.score:.2f}){extra}; "
                  f"{res.tokens['calls']} model calls, {res.tokens['total']} tokens, "
                  f"{res.timings['total']:.1f}s ({res.timings['model']:.1f}s in the model)"
                  + (f"; memory {res.memory_id}" if res.memory_id else "") + "[/]")


def register(app: typer.Typer) -> None:
    @app.command("research")
    def research(
        question: str = typer.Argument(..., help="The question to research."),
        corpus: Path = typer.Option(..., "--corpus", help="Folder of .txt/.md files, a JSONL file, or HotpotQA/MuSiQue data."),
        model: str = typer.Option("local", "--model", help="'local' (bundled SmolLM2), a model folder, or an "
                                  "OpenAI-compatible URL http://host:port/v1/NAME."),
        executor_model: str = typer.Option(None, "--executor-model", help="Another model for the executor."),
        memory: Path = typer.Option(None, "--memory", help="Folder of the trajectory memory (off when not given)."),
        gold: str = typer.Option(None, "--gold", help="Gold answer, to score the answer (EM/F1)."),
        checkpoint: Path = typer.Option(None, "--checkpoint", help="SQLite file of resumable checkpoints."),
        thread_id: str = typer.Option(None, "--thread-id", help="Resume or name the checkpointed run."),
        reflect: bool = typer.Option(True, "--reflect/--no-reflect", help="Reflect and maybe replan."),
        best_of_n: int = typer.Option(1, "--best-of-n", min=1, help="Plans to sample; the model picks one."),
        base_model_only: bool = typer.Option(False, "--base-model-only", help="Run the bundled model without its "
                                             "shipped trained planner / executor adapters."),
    ) -> None:
        """Answer a question over a local corpus with citations (plan, search, read, answer, judge, remember)."""
        from rich.console import Console

        from ..errors import MiaflowError

        console = Console()
        try:
            _research(console, question, corpus, model, executor_model, memory, gold, checkpoint, thread_id,
                      reflect, best_of_n, base_model_only)
        except MiaflowError as e:
            console.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2) from None


def _research(console, question, corpus, model, executor_model, memory, gold, checkpoint, thread_id, reflect,
              best_of_n, base_model_only=False) -> None:  # noqa: ANN001
    from ..errors import InvalidInputError
    from ..llm import load_chat_model
    from ..workflows import ResearchConfig, ResearchWorkflow
    from ..workflows.research import open_index

    if not question.strip():
        raise InvalidInputError("the question is empty")
    with console.status("indexing the corpus...", spinner="dots"):
        index = open_index(corpus)
    with console.status("loading the model...", spinner="dots"):
        planner = load_chat_model(model, base_model_only=base_model_only)
        executor = load_chat_model(executor_model, base_model_only=base_model_only) if executor_model else None
    store = None
    if memory is not None:
        from ..memory import TrajectoryStore

        store = TrajectoryStore(memory)
    wf = ResearchWorkflow(planner=planner, executor=executor, index=index, store=store,
                          config=ResearchConfig(reflect=reflect, best_of_n=best_of_n), checkpointer=checkpoint)
    from rich.markup import escape

    console.print(f"[bold]Question:[/] {escape(question)}")
    result = None
    with console.status("recalling memories...", spinner="dots") as status:
        for mode, chunk in wf.stream(question, gold=gold, thread_id=thread_id):
            if mode == "result":
                result = chunk
            elif mode == "updates":
                node = next(iter(chunk))
                status.update(f"{node} done; working...")
            elif mode == "custom":
                _show_event(console, chunk)
    if result is not None:
        titles = {s: t for st in result.steps for s, t in zip(st["output"], st["titles"], strict=False)}
        render_result(console, result, titles)


def _show_event(console, e: dict) -> None:  # noqa: ANN001
    from rich.markup import escape

    kind = e.get("event")
    if kind == "recall":
        console.print(f"[dim]memory: {e['positive']} positive, {e['negative']} negative exemplars[/]")
    elif kind == "plan":
        console.print("[bold]Plan[/]" + (" [yellow](default plan: the model's plan was unusable)[/]"
                                         if e.get("fallback") else ""))
        console.print(escape(e["plan"]))
    elif kind == "search":
        console.print(f"  [magenta]search[/] {escape(e['query'])}")
    elif kind == "answer":
        cites = " ".join("[" + c + "]" for c in e.get("citations", []))
        console.print(f"  [green]answer[/] {escape(e['answer'] + ' ' + cites)}")
    elif kind == "reflect":
        console.print(f"[dim]reflection: {'replan' if e['replan'] else 'keep the answer'}[/]")
    elif kind == "replan":
        console.print("[bold]Replan[/]\n" + escape(e["plan"]))
    elif kind == "judge":
        console.print(f"[dim]judge: {e['judgement']} ({e['score']:.2f})[/]")
