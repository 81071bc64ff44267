"""``miaflow serve``: the research agent behind an OpenAI-compatible ``/v1/chat/completions`` endpoint."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
        model: str = typer.Option("local", "--model", help="'local' (bundled SmolLM2), a model folder, or an "
                                  "OpenAI-compatible URL http://host:port/v1/NAME. Loaded on the first request."),
        corpus: Path = typer.Option(None, "--corpus", help="Corpus the agent researches (default: the shipped "
                                    "HotpotQA sample)."),
        state: Path = typer.Option(Path("~/.miaflow"), "--state", help="Folder of the trajectory memory."),
        memory: bool = typer.Option(True, "--memory/--no-memory", help="Recall and remember runs."),
        reflect: bool = typer.Option(True, "--reflect/--no-reflect", help="Reflect and maybe replan."),
        name: str = typer.Option("miaflow-research", "--served-model-name", help="Model id clients ask for."),
        progress: str = typer.Option("content", "--stream-progress", help="Where streamed progress lines go: "
                                     "content, reasoning (reasoning_content) or none."),
        warm: bool = typer.Option(False, "--warm", help="Load the model and index the default corpus before "
                                  "serving (default: on the first research request)."),
    ) -> None:
        """OpenAI-compatible server: POST /v1/chat/completions (stream too), GET /v1/models."""
        from rich.console import Console

        from ..errors import MiaflowError

        console = Console(stderr=True)
        try:
            _serve(console, host, port, model, corpus, state, memory, reflect, name, progress, warm)
        except MiaflowError as e:
            console.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2) from None


def _serve(console, host, port, model, corpus, state, memory, reflect, name, progress, warm) -> None:  # noqa: ANN001
    import uvicorn

    from ..errors import InvalidInputError
    from ..serve import AgentConfig, ResearchAgent, build_openai_app

    if progress not in ("content", "reasoning", "none"):
        raise InvalidInputError(f"--stream-progress must be content, reasoning or none, got {progress!r}")
    if not name.strip():
        raise InvalidInputError("--served-model-name is empty")
    agent = ResearchAgent(AgentConfig(model=model, corpus=str(corpus) if corpus else None,
                                      state=str(state.expanduser()), memory=memory, reflect=reflect))
    if warm:
        agent.warm()
    app = build_openai_app(agent, model_id=name, progress=progress)
    console.print(f"miaflow OpenAI-compatible server on http://{host}:{port}/v1 (model {name!r})")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        agent.close()
