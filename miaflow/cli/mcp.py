"""``miaflow mcp``: serve the research agent and both memories as MCP tools, over stdio (the default, for clients
that start the server themselves) or streamable HTTP with ``--port``."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("mcp")
    def mcp(
        state: Path = typer.Option(Path("~/.miaflow"), "--state", help="Folder of the memories (trajectories/ and "
                                   "conversations/)."),
        model: str = typer.Option("local", "--model", help="'local' (bundled SmolLM2), a model folder, or an "
                                  "OpenAI-compatible URL http://host:port/v1/NAME. Loaded on the first research call."),
        corpus: Path = typer.Option(None, "--corpus", help="Default corpus of `research` (default: the shipped "
                                    "HotpotQA sample)."),
        memory: bool = typer.Option(True, "--memory/--no-memory", help="Research runs recall and remember."),
        reflect: bool = typer.Option(True, "--reflect/--no-reflect", help="Reflect and maybe replan."),
        port: int = typer.Option(None, "--port", min=1, max=65535, help="Serve streamable HTTP on this port "
                                 "(path /mcp) instead of stdio."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind with --port."),
        corpus_root: list[Path] = typer.Option(None, "--corpus-root", help="A folder whose corpora `research` may "
                                               "read when a client names one (repeatable; default: the current "
                                               "folder). The --corpus default and the shipped sample are always "
                                               "allowed."),
        warm: bool = typer.Option(False, "--warm", help="Load the model and index the default corpus before "
                                  "serving (default: on the first research request)."),
    ) -> None:
        """MCP server: tools research, recall, remember, add_messages, retrieve."""
        from rich.console import Console

        from ..errors import MiaflowError
        from ..serve import AgentConfig, ResearchAgent

        console = Console(stderr=True)  # stdout carries the protocol over stdio
        try:
            roots = [str(r) for r in corpus_root] if corpus_root else [str(Path.cwd())]
            agent = ResearchAgent(AgentConfig(model=model, corpus=str(corpus) if corpus else None,
                                              state=str(state.expanduser()), memory=memory, reflect=reflect,
                                              corpus_roots=roots))
            if warm:
                agent.warm()
        except MiaflowError as e:
            console.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2) from None
        from ..serve import build_mcp_server

        server = build_mcp_server(agent)
        try:
            if port is None:
                server.run("stdio")
            else:
                console.print(f"miaflow MCP server on http://{host}:{port}/mcp")
                server.run("streamable-http", host=host, port=port)
        except KeyboardInterrupt:
            pass
        finally:
            agent.close()
